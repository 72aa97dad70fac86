// Broker returns (basic.return of a mandatory, unroutable message) against the real RabbitMQ: each return
// fails exactly the returned message's delivery tag, however the returns and acks interleave.
#include <gtest/gtest.h>
#include <unistd.h>

#include <set>

#include "broker/amqp.h"
#include "amqp_reorder_proxy.h"
#include "broker/topology.h"
#include "testing.h"

namespace paypath::testing {
namespace {

amqp::Message Msg(const std::string& id) {
  amqp::Message m;
  m.message_id = id;
  m.type = "charge.succeeded";
  m.body = "{\"n\":\"" + id + "\"}";
  return m;
}

// amqp://user:pass@host:port/vhost with host:port replaced.
std::string Redirect(const std::string& url, int port) {
  size_t at = url.rfind('@');
  size_t slash = url.find('/', at);
  return url.substr(0, at + 1) + "127.0.0.1:" + std::to_string(port) + url.substr(slash);
}

int BrokerPort(const std::string& url) {
  size_t at = url.rfind('@');
  size_t colon = url.find(':', at);
  return std::atoi(url.c_str() + colon + 1);
}

// Publishes tags 1-5 routable, 6 and 7 unroutable (no queue has that name), 8-9 routable, through `url`,
// and checks that exactly 6 and 7 are reported failed.
void PublishMidBatchReturns(const std::string& url, const std::string& queue) {
  amqp::Settings s;
  s.url = url;
  auto c = amqp::Connection::Open(s);
  ASSERT_TRUE(c.ok()) << c.error().ToString();
  amqp::Connection& conn = *c.value();
  amqp::Topology t;
  t.queue = queue;
  ASSERT_TRUE(amqp::DeclareTopology(conn, t).ok());
  ASSERT_TRUE(conn.EnableConfirms().ok());
  std::set<uint64_t> unroutable;
  for (int i = 1; i <= 9; ++i) {
    bool lost = i == 6 || i == 7;
    auto tag = conn.Publish(lost ? queue + ".nowhere" : queue, Msg("m" + std::to_string(i)));
    ASSERT_TRUE(tag.ok()) << tag.error().ToString();
    EXPECT_EQ(*tag, static_cast<uint64_t>(i));
    if (lost) unroutable.insert(*tag);
  }
  auto confirms = conn.WaitForConfirms(std::chrono::seconds(10));
  ASSERT_TRUE(confirms.ok()) << confirms.error().ToString();
  EXPECT_EQ(confirms->failed, unroutable);
  (void)conn.DeleteQueue(queue);
  (void)conn.DeleteQueue(t.dead_letter_queue());
}

TEST(RelayReturns, UnroutableMessagesMidBatchFailExactlyTheirOwnTags) {
  PublishMidBatchReturns(AmqpUrl(), "paypath.test.returns." + std::to_string(::getpid()));
}

// RabbitMQ 3.10 happens to send each return right before its own ack; the protocol promises only that a
// return precedes its ack. Here both returns arrive before any ack (return 6, return 7, ack ..., ack 7).
TEST(RelayReturns, ReturnsArrivingBeforeTheirAcksFailExactlyTheReturnedTags) {
  AmqpReorderProxy proxy("127.0.0.1", BrokerPort(AmqpUrl()), /*returns=*/2);
  PublishMidBatchReturns(Redirect(AmqpUrl(), proxy.port()), "paypath.test.reorder." + std::to_string(::getpid()));
  EXPECT_GT(proxy.acks_held(), 0) << "the proxy never held an ack back: the interleaving was not exercised";
}

}  // namespace
}  // namespace paypath::testing
