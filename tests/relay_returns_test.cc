// Broker returns (basic.return of a mandatory, unroutable message) against the real RabbitMQ: each return
// fails exactly the returned message's delivery tag, however the returns and acks interleave, and the
// relay leaves exactly that row unpublished.
#include <gtest/gtest.h>
#include <unistd.h>

#include <set>

#include "broker/amqp.h"
#include "amqp_reorder_proxy.h"
#include "broker/topology.h"
#include "common/failpoints.h"
#include "ledger_fixture.h"
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
  amqp::Topology t;
  t.queue = queue;
  {
    amqp::Settings as;
    as.url = AdminAmqpUrl();
    auto admin = amqp::Connection::Open(as);
    ASSERT_TRUE(admin.ok()) << admin.error().ToString();
    ASSERT_TRUE(amqp::DeclareTopology(*admin.value(), t).ok());
  }
  auto c = amqp::Connection::Open(s);
  ASSERT_TRUE(c.ok()) << c.error().ToString();
  amqp::Connection& conn = *c.value();
  ASSERT_TRUE(conn.EnableConfirms().ok());
  std::set<uint64_t> unroutable;
  for (int i = 1; i <= 9; ++i) {
    bool lost = i == 6 || i == 7;
    auto tag = conn.Publish(t.exchange(), lost ? queue + ".nowhere" : queue, Msg("m" + std::to_string(i)));
    ASSERT_TRUE(tag.ok()) << tag.error().ToString();
    EXPECT_EQ(*tag, static_cast<uint64_t>(i));
    if (lost) unroutable.insert(*tag);
  }
  auto confirms = conn.WaitForConfirms(std::chrono::seconds(10));
  ASSERT_TRUE(confirms.ok()) << confirms.error().ToString();
  EXPECT_EQ(confirms->failed, unroutable);
  EXPECT_EQ(confirms->returned, unroutable);
  EXPECT_NE(confirms->return_reason.find("NO_ROUTE"), std::string::npos) << confirms->return_reason;
  amqp::Settings as;
  as.url = AdminAmqpUrl();
  auto admin = amqp::Connection::Open(as);
  ASSERT_TRUE(admin.ok());
  EXPECT_EQ(admin.value()->QueueDepth(queue).value(), 7u) << "every routable message is in the queue";
  EXPECT_TRUE(amqp::DeleteTopology(*admin.value(), t).ok());
}

TEST(RelayReturns, UnroutableMessagesMidBatchFailExactlyTheirOwnTags) {
  PublishMidBatchReturns(RelayAmqpUrl(), "paypath.test.returns." + std::to_string(::getpid()));
}

// RabbitMQ 3.10 happens to send each return right before its own ack; the protocol promises only that a
// return precedes its ack. Here both returns arrive before any ack (return 6, return 7, ack ..., ack 7).
TEST(RelayReturns, ReturnsArrivingBeforeTheirAcksFailExactlyTheReturnedTags) {
  AmqpReorderProxy proxy("127.0.0.1", BrokerPort(RelayAmqpUrl()), /*returns=*/2);
  PublishMidBatchReturns(Redirect(RelayAmqpUrl(), proxy.port()), "paypath.test.reorder." + std::to_string(::getpid()));
  EXPECT_GT(proxy.acks_held(), 0) << "the proxy never held an ack back: the interleaving was not exercised";
}

// A batch of five where the third row's message cannot be routed (failpoint relay.publish_unroutable: as
// if its binding had been removed just then): rows 1, 2, 4 and 5 are marked, row 3 stays unpublished and
// goes out with the next batch.
TEST(RelayReturns, AnUnroutableRowMidBatchStaysUnpublishedAndTheOthersAreMarked) {
  LedgerFixture fx("paypath_relay_returns_test");
  fx.Reset();
  auto seeded = fx.Seed(5);
  metrics::Registry reg;
  outbox::Relay relay(fx.RelayOpts(reg), SystemClock::Instance(), fx.random());
  ASSERT_TRUE(failpoints::Configure("relay.publish_unroutable=error@3").ok());
  auto n = relay.RunOnce();
  ASSERT_TRUE(failpoints::Configure("").ok());
  ASSERT_TRUE(n.ok()) << n.error().ToString();
  EXPECT_EQ(*n, 4);
  EXPECT_EQ(relay.nacked(), 1);
  EXPECT_EQ(CounterValue(reg, "paypath_relay_returned_total"), 1);
  EXPECT_EQ(fx.Count("SELECT count(*) FROM outbox WHERE published_at IS NULL AND message_id = '" +
                     seeded[2].message_id + "'"),
            1)
      << "the returned row was marked published";
  EXPECT_EQ(fx.Unpublished(), 1);
  EXPECT_EQ(fx.Depth(fx.queue()), 4);
  n = relay.RunOnce();
  ASSERT_TRUE(n.ok()) << n.error().ToString();
  EXPECT_EQ(*n, 1);
  EXPECT_EQ(fx.Unpublished(), 0);
  EXPECT_EQ(fx.Depth(fx.queue()), 5);
}

}  // namespace
}  // namespace paypath::testing
