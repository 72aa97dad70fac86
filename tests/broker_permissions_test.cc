// The broker's users and permissions (docs/design.md "Who may do what"), against the stack's real RabbitMQ:
// only the relay can publish, only the consumer can read the ledger queue, only the operator can read the
// DLQ, nobody but the admin can declare or delete, and guest is gone.
#include <gtest/gtest.h>
#include <unistd.h>

#include "broker/amqp.h"
#include "broker/topology.h"
#include "ledger_fixture.h"
#include "testing.h"

namespace paypath::testing {
namespace {

amqp::Message Msg(const std::string& id) {
  amqp::Message m;
  m.message_id = id;
  m.type = "charge.succeeded";
  m.body = "{}";
  return m;
}

Result<std::unique_ptr<amqp::Connection>> Open(const std::string& url) {
  amqp::Settings s;
  s.url = url;
  return amqp::Connection::Open(s);
}

class BrokerPermissions : public ::testing::Test {
 protected:
  void SetUp() override {
    topology_.queue = "paypath.test.perms." + std::to_string(::getpid());
    auto admin = Open(AdminAmqpUrl());
    ASSERT_TRUE(admin.ok()) << admin.error().ToString();
    ASSERT_TRUE(amqp::DeclareTopology(*admin.value(), topology_).ok());
  }
  void TearDown() override {
    auto admin = Open(AdminAmqpUrl());
    ASSERT_TRUE(admin.ok());
    EXPECT_TRUE(amqp::DeleteTopology(*admin.value(), topology_).ok());
  }

  // Publishes one message with `url`'s credentials the way the relay does (or to `exchange`); the status.
  Status PublishAs(const std::string& url, const std::string& exchange = amqp::kExchange) {
    auto c = Open(url);
    if (!c.ok()) return c.error();
    Status s = c.value()->EnableConfirms();
    if (!s.ok()) return s;
    auto tag = c.value()->Publish(exchange, topology_.queue, Msg("perm-" + std::to_string(++seq_)));
    if (!tag.ok()) return tag.error();
    auto confirms = c.value()->WaitForConfirms(std::chrono::seconds(5));
    if (!confirms.ok()) return confirms.error();
    if (!confirms->failed.empty()) return Error::Unavailable("nacked or returned");
    return OkStatus();
  }

  int64_t Depth(const std::string& queue) {
    auto c = Open(AdminAmqpUrl());
    if (!c.ok()) return -1;
    auto d = c.value()->QueueDepth(queue);
    return d.ok() ? static_cast<int64_t>(*d) : -1;
  }

  amqp::Topology topology_;
  int seq_ = 0;
};

TEST_F(BrokerPermissions, GuestCannotLogIn) {
  std::string url = RelayAmqpUrl();
  size_t at = url.rfind('@');
  std::string hostport = url.substr(at + 1, url.find('/', at) - at - 1);
  for (const char* vhost : {"%2f", "paypath"}) {
    auto c = Open("amqp://guest:guest@" + hostport + "/" + vhost);
    EXPECT_FALSE(c.ok()) << "guest logged in to vhost " << vhost;
  }
}

TEST_F(BrokerPermissions, OnlyTheRelayCanPublish) {
  Status relay = PublishAs(RelayAmqpUrl());
  EXPECT_TRUE(relay.ok()) << relay.error().ToString();
  EXPECT_EQ(Depth(topology_.queue), 1);
  for (const std::string& url : {ConsumerAmqpUrl(), OperatorAmqpUrl()}) {
    Status s = PublishAs(url);
    ASSERT_FALSE(s.ok()) << "a publish with " << url.substr(0, url.find(':', 7)) << "'s credentials was accepted";
    EXPECT_NE(s.error().message.find("403"), std::string::npos) << s.error().ToString();
  }
  // Not even the relay may use the default exchange (which routes to any queue by name).
  Status direct = PublishAs(RelayAmqpUrl(), "");
  ASSERT_FALSE(direct.ok()) << "the relay published to the default exchange";
  EXPECT_NE(direct.error().message.find("403"), std::string::npos) << direct.error().ToString();
  EXPECT_EQ(Depth(topology_.queue), 1) << "a refused publish reached the queue";
}

TEST_F(BrokerPermissions, NoServiceCanDeclareOrDeleteQueues) {
  for (const std::string& url : {RelayAmqpUrl(), ConsumerAmqpUrl(), OperatorAmqpUrl()}) {
    auto c = Open(url);
    ASSERT_TRUE(c.ok()) << c.error().ToString();
    auto declared = c.value()->DeclareQueue(topology_.queue + ".rogue", {{"x-queue-type", std::string("quorum")}});
    ASSERT_FALSE(declared.ok());
    EXPECT_NE(declared.error().message.find("403"), std::string::npos) << declared.error().ToString();
    auto d = Open(url);
    ASSERT_TRUE(d.ok());
    Status deleted = d.value()->DeleteQueue(topology_.queue);
    ASSERT_FALSE(deleted.ok());
    EXPECT_NE(deleted.error().message.find("403"), std::string::npos) << deleted.error().ToString();
  }
  EXPECT_EQ(Depth(topology_.queue), 0) << "the queue is still there, empty";
}

TEST_F(BrokerPermissions, OnlyTheConsumerReadsTheQueueAndOnlyTheOperatorReadsTheDlq) {
  ASSERT_TRUE(PublishAs(RelayAmqpUrl()).ok());
  auto get = [](const std::string& url, const std::string& queue) -> Status {
    auto c = Open(url);
    if (!c.ok()) return c.error();
    auto d = c.value()->Get(queue);
    if (!d.ok()) return d.error();
    if (d->has_value()) return c.value()->Reject((*d)->tag, /*requeue=*/true);
    return OkStatus();
  };
  EXPECT_TRUE(get(ConsumerAmqpUrl(), topology_.queue).ok());
  EXPECT_TRUE(get(OperatorAmqpUrl(), topology_.dead_letter_queue()).ok());
  for (const auto& [url, queue] : std::vector<std::pair<std::string, std::string>>{
           {ConsumerAmqpUrl(), topology_.dead_letter_queue()},
           {OperatorAmqpUrl(), topology_.queue},
           {RelayAmqpUrl(), topology_.queue}}) {
    Status s = get(url, queue);
    ASSERT_FALSE(s.ok()) << queue << " was readable with " << url.substr(0, url.find(':', 7)) << "'s credentials";
    EXPECT_NE(s.error().message.find("403"), std::string::npos) << s.error().ToString();
  }
  EXPECT_EQ(Depth(topology_.queue), 1) << "the message was returned to the queue";
}

// The services cannot declare, so they verify: a missing queue stops the relay and the consumer with a
// configuration error that names it (and how to declare it), instead of retrying for ever.
TEST_F(BrokerPermissions, RelayAndConsumerStopOnAMissingQueueNamingIt) {
  const std::string missing = "paypath.test.missing." + std::to_string(::getpid());
  metrics::Registry reg;
  outbox::RelayOptions ro;
  ro.pg_url = FreshDatabase("paypath_broker_permissions_test");
  ro.amqp.url = RelayAmqpUrl();
  ro.topology.queue = missing;
  ro.registry = &reg;
  outbox::Relay relay(ro, SystemClock::Instance(), SystemRandom::Instance());
  std::atomic<bool> stop{false};
  Status r = relay.Run(stop);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::kFailedPrecondition) << r.error().ToString();
  EXPECT_NE(r.error().message.find("queue " + missing + " does not exist"), std::string::npos) << r.error().ToString();
  EXPECT_NE(r.error().message.find("paypath broker declare"), std::string::npos) << r.error().ToString();

  ledger::ConsumerOptions co;
  co.ledger_pg_url = FreshLedgerDatabase("paypath_broker_permissions_ledger");
  co.amqp.url = ConsumerAmqpUrl();
  co.topology.queue = missing;
  co.registry = &reg;
  ledger::Consumer consumer(co, SystemClock::Instance(), SystemRandom::Instance());
  Status c = consumer.Run(stop);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.error().code, ErrorCode::kFailedPrecondition) << c.error().ToString();
  EXPECT_NE(c.error().message.find(missing), std::string::npos) << c.error().ToString();
  EXPECT_EQ(Depth(missing), -1) << "verifying declared the queue";
}

}  // namespace
}  // namespace paypath::testing
