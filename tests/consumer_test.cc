// The consumer against real PostgreSQL and RabbitMQ: the double-entry posting, inbox dedup, poison messages
// and the dlq tools.
#include <gtest/gtest.h>

#include "ledger_fixture.h"

namespace paypath::testing {
namespace {

class ConsumerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { fx_ = new LedgerFixture("paypath_consumer_test"); }
  static void TearDownTestSuite() { delete fx_; }
  void SetUp() override { fx_->Reset(); }
  static std::unique_ptr<amqp::Connection> Broker() {
    auto c = LedgerFixture::Admin();  // publishes what the relay never would, as the admin
    EXPECT_TRUE(c.ok()) << c.error().ToString();
    return std::move(c.value());
  }
  void Relay(int delivery_limit = amqp::kDefaultDeliveryLimit) {
    metrics::Registry reg;
    auto o = fx_->RelayOpts(reg);
    o.topology.delivery_limit = delivery_limit;
    outbox::Relay relay(o, SystemClock::Instance(), fx_->random());
    auto n = relay.RunOnce();
    ASSERT_TRUE(n.ok()) << n.error().ToString();
  }
  static LedgerFixture* fx_;
};
LedgerFixture* ConsumerTest::fx_ = nullptr;

TEST_F(ConsumerTest, PostsDebitAndCreditAndMovesBalances) {
  fx_->Seed(1, "tenant_a", 2500, "EUR");
  Relay();
  metrics::Registry reg;
  ledger::Consumer consumer(fx_->ConsumerOpts(reg), SystemClock::Instance(), fx_->random());
  ASSERT_TRUE(LedgerFixture::StepUntil(consumer, [&] { return fx_->InboxRows() == 1; }));
  EXPECT_EQ(fx_->Count("SELECT count(*) FROM ledger_entries WHERE direction = 'debit' AND account_id = "
                       "'customer:acct_0' AND amount = 2500 AND currency = 'EUR'"), 1);
  EXPECT_EQ(fx_->Count("SELECT count(*) FROM ledger_entries WHERE direction = 'credit' AND account_id = "
                       "'merchant:tenant_a' AND amount = 2500"), 1);
  EXPECT_EQ(fx_->Count("SELECT balance FROM account_balances WHERE account_id = 'customer:acct_0'"), -2500);
  EXPECT_EQ(fx_->Count("SELECT balance FROM account_balances WHERE account_id = 'merchant:tenant_a'"), 2500);
  EXPECT_EQ(CounterValue(reg, "paypath_ledger_effects_applied_total"), 1);
  auto snap = reg.GetHistogram("paypath_ledger_apply_delay_seconds", "", {}).Read();
  EXPECT_EQ(snap.count, 1u);
  EXPECT_LT(snap.sum, 30.0);  // charge commit to apply: seconds at most in this test
  EXPECT_EQ(fx_->Depth(fx_->queue()), 0);  // acked
  std::string out;
  EXPECT_EQ(fx_->Audit(&out), 0) << out;
}

TEST_F(ConsumerTest, RepublishedEventIsAckedWithoutSecondEffect) {
  fx_->Seed(3);
  Relay();
  // As if the relay had crashed before marking: publish every row again.
  (void)QueryScalar(fx_->url(), "UPDATE outbox SET published_at = NULL");
  Relay();
  EXPECT_EQ(fx_->Depth(fx_->queue()), 6);
  metrics::Registry reg;
  ledger::Consumer consumer(fx_->ConsumerOpts(reg), SystemClock::Instance(), fx_->random());
  ASSERT_TRUE(LedgerFixture::StepUntil(
      consumer, [&] { return CounterValue(reg, "paypath_inbox_duplicates_total") == 3; }));
  EXPECT_EQ(CounterValue(reg, "paypath_ledger_effects_applied_total"), 3);
  EXPECT_EQ(fx_->Postings(), 6);
  EXPECT_EQ(fx_->InboxRows(), 3);
  std::string out;
  EXPECT_EQ(fx_->Audit(&out), 0) << out;
}

TEST_F(ConsumerTest, PoisonIsDeadLetteredAfterDeliveryLimitAndDoesNotBlockOthers) {
  metrics::Registry reg;
  auto o = fx_->ConsumerOpts(reg);
  o.topology.delivery_limit = 2;
  o.prefetch = 1;  // worst case for blocking: the poison message is all the consumer holds
  o.batch = 1;
  // Declare the topology with the test's delivery limit before anything is published.
  fx_->Declare(o.topology);
  auto broker = Broker();
  ASSERT_TRUE(broker->EnableConfirms().ok());
  amqp::Message poison;
  poison.message_id = "11111111-2222-4333-8444-555555555555";
  poison.type = "charge.succeeded";
  poison.body = "{this is not json";
  ASSERT_TRUE(broker->Publish(amqp::kExchange, fx_->queue(), poison).ok());
  amqp::Message invalid = poison;  // parseable, but not a valid ledger event
  invalid.message_id = "11111111-2222-4333-8444-666666666666";
  invalid.body = R"({"charge_id":"ch_x","tenant":"tenant_a","account_id":"acct_1","amount":0,"currency":"USD",)"
                 R"("created_at":"2026-11-28T04:00:00Z"})";
  ASSERT_TRUE(broker->Publish(amqp::kExchange, fx_->queue(), invalid).ok());
  auto confirms = broker->WaitForConfirms(std::chrono::seconds(5));
  ASSERT_TRUE(confirms.ok());
  ASSERT_TRUE(confirms->failed.empty());
  fx_->Seed(5);
  Relay(2);

  ledger::Consumer consumer(o, SystemClock::Instance(), fx_->random());
  ASSERT_TRUE(LedgerFixture::StepUntil(consumer, [&] {
    return fx_->InboxRows() == 5 && fx_->Depth(fx_->queue() + ".dlq") == 2;
  })) << "inbox " << fx_->InboxRows() << " dlq " << fx_->Depth(fx_->queue() + ".dlq");
  EXPECT_EQ(fx_->Postings(), 10);
  EXPECT_EQ(CounterValue(reg, "paypath_dlq_messages_total"), 2);
  // Delivered limit + 1 times each before dead-lettering.
  EXPECT_EQ(CounterValue(reg, "paypath_consumer_poison_rejections_total"), 2 * (2 + 1));
  EXPECT_EQ(fx_->Depth(fx_->queue()), 0);

  // The operator can see them...
  std::string out;
  int st = RunShell(PaypathBinary() + " dlq list --queue " + fx_->queue() + " --delivery-limit 2",
                    &out);
  EXPECT_EQ(st, 0) << out;
  EXPECT_NE(out.find(poison.message_id), std::string::npos) << out;
  EXPECT_NE(out.find(invalid.message_id), std::string::npos) << out;
  EXPECT_NE(out.find("2 message(s) shown"), std::string::npos) << out;
  EXPECT_EQ(fx_->Depth(fx_->queue() + ".dlq"), 2) << "listing must not consume";
  out.clear();
  EXPECT_EQ(fx_->Audit(&out, "--delivery-limit 2"), 0) << out;
  EXPECT_NE(out.find("\"name\":\"dlq_depth\",\"status\":\"info\",\"value\":2"), std::string::npos) << out;
  EXPECT_EQ(fx_->Audit(&out, "--delivery-limit 2 --max-dlq 0"), 1) << out;
}

TEST_F(ConsumerTest, DlqReplayRedrivesAMessageThatNowApplies) {
  // An event dead-lettered while (say) the ledger rejected it, replayed once the cause is fixed.
  auto seeded = fx_->Seed(2);
  auto broker = Broker();
  amqp::Topology t;
  t.queue = fx_->queue();
  ASSERT_TRUE(broker->EnableConfirms().ok());
  // Put the first charge's event straight into the DLQ and the second's... also there; replay only one.
  for (const auto& s : seeded) {
    amqp::Message m;
    m.message_id = s.message_id;
    m.type = "charge.succeeded";
    m.headers = {{"tenant", "tenant_a"}, {"charge_id", s.charge_id}};
    m.body = QueryScalar(fx_->url(), "SELECT payload::text FROM outbox WHERE message_id = '" + s.message_id + "'");
    ASSERT_TRUE(broker->Publish(t.dead_letter_exchange(), t.dead_letter_queue(), m).ok());
  }
  ASSERT_TRUE(broker->WaitForConfirms(std::chrono::seconds(5)).ok());
  (void)QueryScalar(fx_->url(), "UPDATE outbox SET published_at = now()");
  ASSERT_TRUE(WaitUntil([&] { return fx_->Depth(t.dead_letter_queue()) == 2; }, std::chrono::seconds(5)));

  std::string out;
  // As the operator (reads the DLQ) and the relay (republishes): both URLs come from the environment.
  int st = RunShell(PaypathBinary() + " dlq replay --queue " + fx_->queue() + " --message-id " + seeded[0].message_id,
                    &out);
  ASSERT_EQ(st, 0) << out;
  EXPECT_NE(out.find("replayed 1 message(s)"), std::string::npos) << out;
  EXPECT_EQ(fx_->Depth(t.dead_letter_queue()), 1);

  metrics::Registry reg;
  ledger::Consumer consumer(fx_->ConsumerOpts(reg), SystemClock::Instance(), fx_->random());
  ASSERT_TRUE(LedgerFixture::StepUntil(consumer, [&] { return fx_->InboxRows() == 1; }));
  EXPECT_EQ(fx_->Count("SELECT count(*) FROM inbox WHERE message_id = '" + seeded[0].message_id + "'"), 1);

  // Replaying the rest, then replaying an already applied message again, never doubles an effect.
  st = RunShell(PaypathBinary() + " dlq replay --queue " + fx_->queue(), &out);
  ASSERT_EQ(st, 0) << out;
  ASSERT_TRUE(LedgerFixture::StepUntil(consumer, [&] { return fx_->InboxRows() == 2; }));
  EXPECT_EQ(fx_->Postings(), 4);
  EXPECT_EQ(fx_->Audit(&out), 0) << out;
}

}  // namespace
}  // namespace paypath::testing
