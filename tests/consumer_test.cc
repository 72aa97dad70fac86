// The consumer against real PostgreSQL and RabbitMQ: the double-entry posting, inbox dedup, poison messages
// and the dlq tools.
#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <set>
#include <thread>

#include "common/failpoints.h"
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
  void Relay() {
    metrics::Registry reg;
    auto o = fx_->RelayOpts(reg);
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
  EXPECT_EQ(fx_->LedgerCount("SELECT count(*) FROM ledger_entries WHERE direction = 'debit' AND account_id = "
                             "'customer:acct_0' AND amount = 2500 AND currency = 'EUR'"), 1);
  EXPECT_EQ(fx_->LedgerCount("SELECT count(*) FROM ledger_entries WHERE direction = 'credit' AND account_id = "
                             "'merchant:tenant_a' AND amount = 2500"), 1);
  EXPECT_EQ(fx_->LedgerCount("SELECT balance FROM account_balances WHERE account_id = 'customer:acct_0'"), -2500);
  EXPECT_EQ(fx_->LedgerCount("SELECT balance FROM account_balances WHERE account_id = 'merchant:tenant_a'"), 2500);
  EXPECT_EQ(CounterValue(reg, "paypath_ledger_effects_applied_total"), 1);
  auto snap = reg.GetHistogram("paypath_ledger_apply_delay_seconds", "", {}).Read();
  EXPECT_EQ(snap.count, 1u);
  EXPECT_LT(snap.sum, 30.0);  // charge commit to apply: seconds at most in this test
  EXPECT_EQ(fx_->Depth(fx_->queue()), 0);  // acked
  std::string out;
  EXPECT_EQ(fx_->Audit(&out), 0) << out;
}

// The defaults' contract (ledger/consumer.h): while one batch is in its transaction, the broker has already
// delivered the next, so a busy consumer never waits a broker round trip between batches. With prefetch equal
// to the batch size the broker could send nothing until the batch was acked: under load the messages queued
// in RabbitMQ (bench/results.md, end to end at 1,000 charges/s: relay claim to consumer 198 ms p50).
TEST_F(ConsumerTest, DefaultsKeepTheNextBatchInFlightWhileOneCommits) {
  const ledger::ConsumerOptions defaults;
  const int total = 3 * defaults.batch;
  fx_->Seed(total);
  while (fx_->Unpublished() > 0) Relay();
  ASSERT_EQ(fx_->Depth(fx_->queue()), total);

  metrics::Registry reg;
  ledger::Consumer consumer(fx_->ConsumerOpts(reg), SystemClock::Instance(), fx_->random());
  // The first batch sits in its transaction for 3 s, between ApplyBatch and COMMIT.
  ASSERT_TRUE(failpoints::Configure("consumer.before_commit=delay(3000)@1").ok());
  std::atomic<bool> stop{false};
  std::thread worker([&] { (void)consumer.Run(stop); });
  ASSERT_TRUE(WaitUntil([] { return failpoints::FiredCount("consumer.before_commit") == 1; }, std::chrono::seconds(10)))
      << "the first batch never reached its COMMIT";
  // Within that window the broker has handed the consumer at least the next batch too.
  EXPECT_TRUE(WaitUntil([&] { return fx_->Depth(fx_->queue()) <= total - 2 * defaults.batch; },
                        std::chrono::milliseconds(2500)))
      << "while the first batch committed, " << fx_->Depth(fx_->queue()) << " of " << total
      << " messages were still queued in the broker (prefetch " << defaults.prefetch << ", batch " << defaults.batch
      << ")";
  EXPECT_TRUE(WaitUntil([&] { return fx_->InboxRows() == total; }, std::chrono::seconds(30)));
  stop.store(true);
  worker.join();
  ASSERT_TRUE(failpoints::Configure("").ok());
  EXPECT_EQ(fx_->Depth(fx_->queue()), 0);
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

TEST_F(ConsumerTest, PoisonIsDeadLetteredOnItsFirstDeliveryAndDoesNotBlockOthers) {
  metrics::Registry reg;
  auto o = fx_->ConsumerOpts(reg);
  o.prefetch = 1;  // worst case for blocking: the poison message is all the consumer holds
  o.batch = 1;
  // Declare the topology with the test's delivery limit before anything is published.
  fx_->Declare(o.topology);
  auto broker = Broker();
  ASSERT_TRUE(broker->EnableConfirms().ok());
  amqp::Message poison;
  poison.message_id = "11111111-2222-4333-8444-555555555555";
  poison.type = "charge.succeeded";
  poison.headers = {{"tenant", "tenant_a"}, {"charge_id", "ch_x"}};
  poison.body = "{this is not json";
  ASSERT_TRUE(broker->Publish(amqp::kExchange, fx_->queue(), poison).ok());
  // Decodable, but outside the limits: amount 0.
  events::ChargeEvent zero{"11111111-2222-4333-8444-666666666666", "ch_x", "tenant_a", "acct_1", 0, "USD",
                           std::chrono::system_clock::now()};
  amqp::Message invalid = events::EncodeMessage(
      {1, zero.message_id, zero.tenant, zero.charge_id, events::kChargeSucceeded, events::EncodePayload(zero), 0});
  ASSERT_TRUE(broker->Publish(amqp::kExchange, fx_->queue(), invalid).ok());
  auto confirms = broker->WaitForConfirms(std::chrono::seconds(5));
  ASSERT_TRUE(confirms.ok());
  ASSERT_TRUE(confirms->failed.empty());
  fx_->Seed(5);
  Relay();

  ledger::Consumer consumer(o, SystemClock::Instance(), fx_->random());
  ASSERT_TRUE(LedgerFixture::StepUntil(consumer, [&] {
    return fx_->InboxRows() == 5 && fx_->Depth(fx_->queue() + ".dlq") == 2;
  })) << "inbox " << fx_->InboxRows() << " dlq " << fx_->Depth(fx_->queue() + ".dlq");
  EXPECT_EQ(fx_->Postings(), 10);
  EXPECT_EQ(reg.GetCounter("paypath_dlq_messages_total", "", {{"reason", "undecodable"}}).Value(), 1);
  EXPECT_EQ(reg.GetCounter("paypath_dlq_messages_total", "", {{"reason", "invalid_field"}}).Value(), 1);
  // Each rejected once, on its first delivery: no delivery limit is involved.
  EXPECT_EQ(CounterValue(reg, "paypath_consumer_poison_rejections_total"), 2);
  EXPECT_EQ(CounterValue(reg, "paypath_consumer_redeliveries_total"), 0);
  EXPECT_EQ(fx_->Depth(fx_->queue()), 0);
  EXPECT_EQ(fx_->LedgerCount("SELECT count(*) FROM dead_letters WHERE message_id = '" + poison.message_id +
                             "' AND reason = 'undecodable'"), 1);

  // The operator can see them, with the consumer's reasons when given the ledger database...
  std::string out;
  int st = RunShell(PaypathBinary() + " dlq list --queue " + fx_->queue() + " --ledger-pg-url '" +
                        fx_->ledger_url() + "'",
                    &out);
  EXPECT_EQ(st, 0) << out;
  EXPECT_NE(out.find(poison.message_id), std::string::npos) << out;
  EXPECT_NE(out.find(invalid.message_id), std::string::npos) << out;
  EXPECT_NE(out.find("undecodable"), std::string::npos) << out;
  EXPECT_NE(out.find("invalid_field"), std::string::npos) << out;
  EXPECT_NE(out.find("2 message(s) shown"), std::string::npos) << out;
  // ...and the broker's own word without it.
  st = RunShell(PaypathBinary() + " dlq list --queue " + fx_->queue(), &out);
  EXPECT_EQ(st, 0) << out;
  EXPECT_NE(out.find("rejected"), std::string::npos) << out;
  EXPECT_EQ(fx_->Depth(fx_->queue() + ".dlq"), 2) << "listing must not consume";
  out.clear();
  EXPECT_EQ(fx_->Audit(&out), 0) << out;
  EXPECT_NE(out.find("\"name\":\"dlq_depth\",\"status\":\"info\",\"value\":2"), std::string::npos) << out;
  EXPECT_EQ(fx_->Audit(&out, "--max-dlq 0"), 1) << out;
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
  EXPECT_EQ(fx_->LedgerCount("SELECT count(*) FROM inbox WHERE message_id = '" + seeded[0].message_id + "'"), 1);

  // Replaying the rest, then replaying an already applied message again, never doubles an effect.
  st = RunShell(PaypathBinary() + " dlq replay --queue " + fx_->queue(), &out);
  ASSERT_EQ(st, 0) << out;
  ASSERT_TRUE(LedgerFixture::StepUntil(consumer, [&] { return fx_->InboxRows() == 2; }));
  EXPECT_EQ(fx_->Postings(), 4);
  EXPECT_EQ(fx_->Audit(&out), 0) << out;
}

// Forged events, each published straight to the queue (as anyone with publish rights could): the consumer
// verifies the event before it posts, dead-letters each with its reason, and posts nothing for any of them.
TEST_F(ConsumerTest, ForgedEventsAreDeadLetteredWithTheirReasonAndPostNothing) {
  auto seeded = fx_->Seed(1);  // one genuine event, relayed as usual, must still apply
  Relay();
  auto broker = Broker();
  ASSERT_TRUE(broker->EnableConfirms().ok());
  // A well-formed event for a charge that does not exist; each case breaks one rule.
  auto event = [&](const std::string& suffix) {
    amqp::Message m;
    m.message_id = "22222222-3333-4444-8555-0000000000" + suffix;
    m.type = "charge.succeeded";
    m.headers = {{"tenant", "tenant_a"}, {"charge_id", "ch_forged_" + suffix}, {"event_type", "charge.succeeded"}};
    m.body = R"({"type":"charge.succeeded","version":1,"message_id":")" + m.message_id +
             R"(","charge_id":"ch_forged_)" + suffix +
             R"(","tenant":"tenant_a","account_id":"acct_1","amount":5000,"currency":"USD",)"
             R"("created_at":"2026-11-28T04:00:00.000000Z"})";
    return m;
  };
  std::map<std::string, amqp::Message> forged;
  forged["tenant_header_missing"] = event("01");
  forged["tenant_header_missing"].headers.erase("tenant");
  forged["charge_id_header_mismatch"] = event("02");
  forged["charge_id_header_mismatch"].headers["charge_id"] = "ch_someone_else";
  forged["unknown_type"] = event("03");
  forged["unknown_type"].type = "charge.refunded";
  forged["unknown_type"].headers["event_type"] = "charge.refunded";
  {
    std::string& b = forged["unknown_type"].body;
    b.replace(b.find("charge.succeeded"), 16, "charge.refunded");
  }
  forged["unknown_version"] = event("04");
  {
    std::string& b = forged["unknown_version"].body;
    b.replace(b.find("\"version\":1"), 11, "\"version\":9");
  }
  forged["message_id_mismatch"] = event("05");
  forged["message_id_mismatch"].message_id = "22222222-3333-4444-8555-999999999999";
  for (const auto& [reason, m] : forged) ASSERT_TRUE(broker->Publish(amqp::kExchange, fx_->queue(), m).ok()) << reason;
  auto confirms = broker->WaitForConfirms(std::chrono::seconds(5));
  ASSERT_TRUE(confirms.ok() && confirms->failed.empty());

  metrics::Registry reg;
  ledger::Consumer consumer(fx_->ConsumerOpts(reg), SystemClock::Instance(), fx_->random());
  bool settled = LedgerFixture::StepUntil(consumer, [&] {
    return fx_->InboxRows() >= 1 && fx_->Depth(fx_->queue()) == 0 &&
           fx_->Depth(fx_->queue() + ".dlq") == static_cast<int64_t>(forged.size());
  });
  EXPECT_TRUE(settled) << "dlq " << fx_->Depth(fx_->queue() + ".dlq") << ", queue " << fx_->Depth(fx_->queue())
                       << ", postings " << fx_->Postings();
  EXPECT_EQ(fx_->Postings(), 2) << "a forged event moved money";
  EXPECT_EQ(fx_->LedgerCount("SELECT count(*) FROM ledger_entries WHERE charge_id LIKE 'ch_forged_%'"), 0);
  EXPECT_EQ(fx_->LedgerCount("SELECT count(*) FROM inbox WHERE message_id = '" + seeded[0].message_id + "'"), 1);
  for (const auto& [reason, m] : forged) {
    EXPECT_EQ(reg.GetCounter("paypath_dlq_messages_total", "", {{"reason", reason}}).Value(), 1) << reason;
    // The reason an operator finds by message_id (the DLQ itself only says "rejected").
    EXPECT_EQ(fx_->LedgerCount("SELECT count(*) FROM dead_letters WHERE message_id = '" + m.message_id +
                               "' AND reason = '" + reason + "'"), 1) << reason;
  }
  // The DLQ holds exactly the forged messages.
  std::set<std::string> in_dlq;
  for (int i = 0; i < static_cast<int>(forged.size()); ++i) {
    auto d = broker->Get(fx_->queue() + ".dlq");
    ASSERT_TRUE(d.ok() && d->has_value());
    in_dlq.insert((*d)->message.message_id);
  }
  for (const auto& [reason, m] : forged) EXPECT_EQ(in_dlq.count(m.message_id), 1u) << reason;
}

// The database refuses one posting as data (a CHECK violation, SQLSTATE class 23). Applying that message
// alone finds it; it is dead-lettered at once (on its first delivery) and the rest of its batch applies.
TEST_F(ConsumerTest, PostingRefusedAsDataIsDeadLetteredAloneWhileItsBatchApplies) {
  ASSERT_EQ(QueryScalar(fx_->ledger_url(), "ALTER TABLE ledger_entries ADD CONSTRAINT test_refuse_acct "
                                           "CHECK (account_id <> 'customer:acct_refused')"), "");
  fx_->Seed(2);
  auto refused = fx_->Seed(1, "tenant_a", 1234, "USD", "acct_refused");
  fx_->Seed(2);
  Relay();
  metrics::Registry reg;
  ledger::Consumer consumer(fx_->ConsumerOpts(reg), SystemClock::Instance(), fx_->random());
  bool settled = LedgerFixture::StepUntil(
      consumer, [&] { return fx_->InboxRows() == 4 && fx_->Depth(fx_->queue() + ".dlq") == 1; });
  (void)QueryScalar(fx_->ledger_url(), "ALTER TABLE ledger_entries DROP CONSTRAINT test_refuse_acct");
  ASSERT_TRUE(settled) << "inbox " << fx_->InboxRows() << " dlq " << fx_->Depth(fx_->queue() + ".dlq");
  EXPECT_EQ(fx_->Postings(), 8);
  EXPECT_EQ(fx_->Depth(fx_->queue()), 0);
  EXPECT_EQ(reg.GetCounter("paypath_dlq_messages_total", "", {{"reason", "posting_refused"}}).Value(), 1);
  EXPECT_EQ(fx_->LedgerCount("SELECT count(*) FROM dead_letters WHERE message_id = '" + refused[0].message_id +
                             "' AND reason = 'posting_refused' AND detail LIKE '%23514%'"), 1);
  auto broker = Broker();
  auto d = broker->Get(fx_->queue() + ".dlq");
  ASSERT_TRUE(d.ok() && d->has_value());
  EXPECT_EQ((*d)->message.message_id, refused[0].message_id);
  // Rejected by the consumer on its first delivery, not dropped by a broker delivery limit after retries.
  EXPECT_EQ((*d)->message.headers["x-first-death-reason"], "rejected");
}

// The ledger itself is inconsistent for one charge (half of its posting pair exists already): the consumer
// refuses to add the other half. That is not the message's fault, so it is held and retried, never
// dead-lettered, and the messages of its batch are still applied.
TEST_F(ConsumerTest, AMessageTheLedgerRefusesAsInconsistentIsHeldWithoutStallingTheOthers) {
  auto seeded = fx_->Seed(4);
  ASSERT_EQ(QueryScalar(fx_->ledger_url(),
                        "INSERT INTO ledger_entries (charge_id, tenant, account_id, direction, amount, currency, "
                        "message_id) VALUES ('" + seeded[0].charge_id + "', 'tenant_a', 'customer:acct_0', 'debit', "
                        "1234, 'USD', gen_random_uuid())"), "");
  Relay();
  metrics::Registry reg;
  ledger::Consumer consumer(fx_->ConsumerOpts(reg), SystemClock::Instance(), fx_->random());
  ASSERT_TRUE(LedgerFixture::StepUntil(consumer, [&] { return fx_->InboxRows() == 3; })) << fx_->InboxRows();
  (void)consumer.RunOnce();  // and again: still held, still nothing else
  EXPECT_EQ(consumer.held(), 1u);
  EXPECT_EQ(fx_->Depth(fx_->queue() + ".dlq"), 0);
  EXPECT_EQ(fx_->LedgerCount("SELECT count(*) FROM inbox WHERE message_id = '" + seeded[0].message_id + "'"), 0);
  EXPECT_EQ(fx_->Postings(), 3 * 2 + 1);
}

// Issue 12 item 3: the ledger dedups on the charge, not only on the message id. A second message for a
// charge already posted, under another message id (a charge committed on a primary the failover lost, then
// again on the new primary, with ids that were not derived from the key), is acked as a duplicate of the
// charge (reason "charge"), posts nothing and leaves the audit clean. A third one for the same charge whose
// money fields disagree with what was posted is not a duplicate but a forgery or a corruption: poison,
// dead-lettered with the reason charge_conflict, nothing posted, its message id not kept in the inbox.
TEST_F(ConsumerTest, ASecondMessageForAPostedChargeIsADuplicateAndOneThatDisagreesIsPoison) {
  auto seeded = fx_->Seed(1, "tenant_a", 1234, "USD", "acct_dup");
  Relay();
  auto broker = Broker();
  ASSERT_TRUE(broker->EnableConfirms().ok());
  auto publish = [&](const std::string& message_id, int64_t amount) {
    events::ChargeEvent e{message_id, seeded[0].charge_id, "tenant_a", "acct_dup", amount, "USD",
                          std::chrono::system_clock::now()};
    amqp::Message m = events::EncodeMessage(
        {1, e.message_id, e.tenant, e.charge_id, events::kChargeSucceeded, events::EncodePayload(e), 0});
    ASSERT_TRUE(broker->Publish(amqp::kExchange, fx_->queue(), m).ok());
  };
  const std::string same = "33333333-4444-4555-8666-000000000001";
  const std::string disagrees = "33333333-4444-4555-8666-000000000002";
  publish(same, 1234);
  publish(disagrees, 999999);
  auto confirms = broker->WaitForConfirms(std::chrono::seconds(5));
  ASSERT_TRUE(confirms.ok() && confirms->failed.empty());

  metrics::Registry reg;
  ledger::Consumer consumer(fx_->ConsumerOpts(reg), SystemClock::Instance(), fx_->random());
  bool settled = LedgerFixture::StepUntil(consumer, [&] {
    return fx_->Depth(fx_->queue()) == 0 && consumer.held() == 0 && fx_->Depth(fx_->queue() + ".dlq") == 1;
  });
  EXPECT_TRUE(settled) << "queue " << fx_->Depth(fx_->queue()) << " held " << consumer.held() << " dlq "
                       << fx_->Depth(fx_->queue() + ".dlq");
  EXPECT_EQ(fx_->Postings(), 2) << "the charge was posted twice";
  EXPECT_EQ(fx_->LedgerCount("SELECT count(*) FROM ledger_entries WHERE amount <> 1234"), 0);
  EXPECT_EQ(fx_->LedgerCount("SELECT balance FROM account_balances WHERE account_id = 'customer:acct_dup'"), -1234);
  EXPECT_EQ(CounterValue(reg, "paypath_ledger_effects_applied_total"), 1);
  EXPECT_EQ(CounterValue(reg, "paypath_inbox_duplicates_total"), 1);
  EXPECT_EQ(reg.GetCounter("paypath_consumer_duplicates_total", "", {{"reason", "charge"}}).Value(), 1);
  EXPECT_EQ(reg.GetCounter("paypath_consumer_duplicates_total", "", {{"reason", "message_id"}}).Value(), 0);
  EXPECT_EQ(reg.GetCounter("paypath_dlq_messages_total", "", {{"reason", "charge_conflict"}}).Value(), 1);
  EXPECT_EQ(fx_->LedgerCount("SELECT count(*) FROM dead_letters WHERE message_id = '" + disagrees +
                             "' AND reason = 'charge_conflict'"), 1);
  EXPECT_EQ(fx_->LedgerCount("SELECT count(*) FROM inbox WHERE message_id = '" + disagrees + "'"), 0);
  auto d = broker->Get(fx_->queue() + ".dlq");
  ASSERT_TRUE(d.ok() && d->has_value());
  EXPECT_EQ((*d)->message.message_id, disagrees);
  std::string out;
  EXPECT_EQ(fx_->Audit(&out), 0) << out;
}

}  // namespace
}  // namespace paypath::testing
