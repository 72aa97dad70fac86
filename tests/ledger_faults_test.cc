// Crash and outage faults on the path from outbox to ledger, with the real `paypath relay` and
// `paypath consumer` binaries killed by failpoints (SIGKILL) and a real RabbitMQ stopped and restarted.
// After each: every charge's effect is applied exactly once and `paypath audit` passes.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <atomic>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>

#include "common/failpoints.h"
#include "ledger_fixture.h"

namespace paypath::testing {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

class LedgerFaultsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { fx_ = new LedgerFixture("paypath_ledger_faults_test"); }
  static void TearDownTestSuite() { delete fx_; }
  void SetUp() override { fx_->Reset(); }
  static std::string LogPath(const std::string& name) {
    return "/tmp/paypath-ledger-faults-" + std::to_string(::getpid()) + "-" + name + ".log";
  }
  static void ExpectKilled(Child& child, const std::string& what) {
    int status = 0;
    ASSERT_TRUE(child.Wait(seconds(20), &status)) << what << " did not reach its failpoint";
    ASSERT_TRUE(WIFSIGNALED(status)) << what << " exited normally with " << WEXITSTATUS(status);
    EXPECT_EQ(WTERMSIG(status), SIGKILL) << what;
  }
  static void ExpectGracefulStop(Child& child, const std::string& what) {
    child.Kill(SIGTERM);
    int status = 0;
    ASSERT_TRUE(child.Wait(seconds(10), &status)) << what << " ignored SIGTERM";
    ASSERT_TRUE(WIFEXITED(status)) << what;
    EXPECT_EQ(WEXITSTATUS(status), 0) << what;
  }
  void RelayInProcess() {
    metrics::Registry reg;
    outbox::Relay relay(fx_->RelayOpts(reg), SystemClock::Instance(), fx_->random());
    auto n = relay.RunOnce();
    ASSERT_TRUE(n.ok()) << n.error().ToString();
  }
  // How many lines of a JSON log carry "msg":"<msg>".
  static int LogLines(const std::string& path, const std::string& msg) {
    std::ifstream in(path);
    std::string line;
    int n = 0;
    while (std::getline(in, line))
      if (line.find("\"msg\":\"" + msg + "\"") != std::string::npos) n++;
    return n;
  }
  static LedgerFixture* fx_;
};
LedgerFixture* LedgerFaultsTest::fx_ = nullptr;

// The ledger database turns read-only (a failover, a full disk) while charges keep arriving: the api's
// database is unaffected, so a backlog builds in the queue while the consumer gets SQLSTATE 25006 on every
// posting. Those messages are healthy: none may be dead-lettered, and every one is applied once the database
// is writable again, without restarting the consumer (it must reconnect by itself to see the change).
TEST_F(LedgerFaultsTest, ReadOnlyLedgerDatabaseDeadLettersNothingAndAppliesTheBacklogAfter) {
  const int kBacklog = 40;
  const std::string db = LedgerFixture::DbName(fx_->ledger_url());
  metrics::Registry reg;
  std::atomic<bool> stop{false};
  ledger::Consumer consumer(fx_->ConsumerOpts(reg), SystemClock::Instance(), fx_->random());
  std::thread worker([&] { (void)consumer.Run(stop); });
  fx_->Seed(1);
  RelayInProcess();
  ASSERT_TRUE(WaitUntil([&] { return fx_->InboxRows() == 1; }, seconds(20))) << "the consumer is not applying";

  // What a failover to a read-only node looks like to the consumer: its sessions end, new ones are read-only.
  ASSERT_EQ(QueryScalar(PgUrl(), "ALTER DATABASE " + db + " SET default_transaction_read_only = on"), "");
  ASSERT_EQ(QueryScalar(PgUrl(), "SELECT count(pg_terminate_backend(pid)) > 0 FROM pg_stat_activity WHERE datname = '" +
                                     db + "' AND application_name = 'paypath-consumer'"), "t");
  fx_->Seed(kBacklog);
  RelayInProcess();
  auto read_only_errors = [&] {
    return reg.GetCounter("paypath_consumer_database_errors_total", "", {{"sqlstate", "25006"}}).Value();
  };
  EXPECT_TRUE(WaitUntil([&] { return read_only_errors() >= 5 || fx_->Depth(fx_->queue() + ".dlq") > 0; },
                        seconds(30)))
      << "the consumer never hit the read-only database";
  EXPECT_EQ(fx_->Depth(fx_->queue() + ".dlq"), 0) << "healthy messages were dead-lettered while the database was read-only";
  EXPECT_EQ(fx_->Depth(fx_->queue()), 0) << "the consumer should hold the backlog (prefetch 200)";
  EXPECT_EQ(fx_->InboxRows(), 1);

  ASSERT_EQ(QueryScalar(PgUrl(), "ALTER DATABASE " + db + " RESET default_transaction_read_only"), "");
  EXPECT_TRUE(WaitUntil([&] { return fx_->InboxRows() == 1 + kBacklog; }, seconds(30)))
      << fx_->InboxRows() - 1 << " of " << kBacklog << " applied after the database became writable; dlq "
      << fx_->Depth(fx_->queue() + ".dlq");
  stop.store(true);
  worker.join();
  std::printf("read-only ledger: %.0f attempts refused with 25006, %.0f redeliveries, 0 dead letters\n",
              read_only_errors(), CounterValue(reg, "paypath_consumer_redeliveries_total"));
  EXPECT_EQ(CounterValue(reg, "paypath_consumer_redeliveries_total"), 0) << "held messages went back to the queue";
  EXPECT_EQ(fx_->Depth(fx_->queue() + ".dlq"), 0);
  EXPECT_EQ(fx_->Postings(), 2 * (1 + kBacklog));
  std::string out;
  EXPECT_EQ(fx_->Audit(&out), 0) << out;
}

// PostgreSQL stops for 30 s while the consumer holds messages (unacked, in the middle of a transaction).
// The consumer must keep its broker connection alive (heartbeats) the whole time, so nothing is returned to
// the queue, nothing is dead-lettered, and everything is applied once PostgreSQL is back.
TEST_F(LedgerFaultsTest, PostgresStoppedThirtySecondsWhileTheConsumerHoldsMessagesLosesNothing) {
  const int kHeld = 20;
  fx_->Seed(kHeld);
  RelayInProcess();
  const std::string log = LogPath("pg-outage-consumer");
  std::remove(log.c_str());
  // The first transaction waits 3 s before its COMMIT: the messages are held when PostgreSQL goes away.
  Child consumer(fx_->Worker("consumer"), {{"PAYPATH_FAILPOINTS", "consumer.before_commit=delay(3000)@1"}}, log);
  ASSERT_TRUE(WaitUntil([&] { return fx_->Depth(fx_->queue()) == 0; }, seconds(20))) << "consumer took nothing";
  std::string out;
  ASSERT_EQ(RunShell(StackScript() + " stop postgres", &out), 0) << out;
  auto started = std::chrono::steady_clock::now();
  // 30 s of outage, watched: the consumer stays up and the DLQ stays empty throughout.
  bool broke = WaitUntil([&] { return !consumer.running() || fx_->Depth(fx_->queue() + ".dlq") > 0; }, seconds(30),
                         milliseconds(500));
  double outage = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  int rc = RunShell(StackScript() + " start postgres", &out);
  ASSERT_EQ(rc, 0) << out;
  EXPECT_FALSE(broke) << "after " << outage << " s: consumer running " << consumer.running() << ", dlq "
                      << fx_->Depth(fx_->queue() + ".dlq");
  EXPECT_TRUE(WaitUntil([&] { return fx_->InboxRows() == kHeld; }, seconds(60)))
      << fx_->InboxRows() << " of " << kHeld << " applied after PostgreSQL came back";
  ExpectGracefulStop(consumer, "consumer");
  std::printf("postgres outage: %.1f s with %d messages held; consumer_batch_failed logged %d times\n", outage, kHeld,
              LogLines(log, "consumer_batch_failed"));
  EXPECT_GE(LogLines(log, "consumer_batch_failed"), 5) << "the consumer did not see the outage";
  EXPECT_EQ(LogLines(log, "message_redelivered"), 0);
  EXPECT_EQ(LogLines(log, "consumer_connected"), 1)
      << "the broker connection was lost during the outage (heartbeats not serviced): messages were returned";
  EXPECT_EQ(fx_->Depth(fx_->queue() + ".dlq"), 0);
  EXPECT_EQ(fx_->Postings(), 2 * kHeld);
  EXPECT_EQ(fx_->Audit(&out), 0) << out;
}

// The consumer is SIGKILLed ten times in a row while it holds messages. Every kill returns them to the queue
// (a quorum queue counts each return); none may be dead-lettered, and all are applied exactly once after.
TEST_F(LedgerFaultsTest, ConsumerSigkilledTenTimesWhileHoldingMessagesDeadLettersNothing) {
  const int kHeld = 20;
  fx_->Seed(kHeld);
  RelayInProcess();
  for (int i = 1; i <= 10; ++i) {
    ASSERT_TRUE(WaitUntil([&] { return fx_->Depth(fx_->queue()) == kHeld; }, seconds(20)))
        << "before kill " << i << ": queue " << fx_->Depth(fx_->queue()) << ", dlq "
        << fx_->Depth(fx_->queue() + ".dlq") << ", applied " << fx_->InboxRows();
    // Its first transaction waits 3 s before COMMIT: long enough to be killed while holding everything.
    Child consumer(fx_->Worker("consumer"), {{"PAYPATH_FAILPOINTS", "consumer.before_commit=delay(3000)@1"}},
                   LogPath("sigkill-consumer"));
    ASSERT_TRUE(WaitUntil([&] { return fx_->Depth(fx_->queue()) == 0; }, seconds(20)))
        << "kill " << i << ": the consumer never took the messages";
    consumer.Kill(SIGKILL);
    ExpectKilled(consumer, "consumer");
    EXPECT_EQ(fx_->InboxRows(), 0) << "kill " << i << " came too late: something committed";
  }
  ASSERT_TRUE(WaitUntil([&] { return fx_->Depth(fx_->queue()) == kHeld; }, seconds(20)));
  EXPECT_EQ(fx_->Depth(fx_->queue() + ".dlq"), 0);
  {
    Child consumer(fx_->Worker("consumer"), {}, LogPath("sigkill-consumer-final"));
    ASSERT_TRUE(WaitUntil([&] { return fx_->InboxRows() == kHeld; }, seconds(30))) << fx_->InboxRows() << " applied";
    ExpectGracefulStop(consumer, "consumer");
  }
  EXPECT_EQ(fx_->Postings(), 2 * kHeld);
  EXPECT_EQ(fx_->Depth(fx_->queue()), 0);
  EXPECT_EQ(fx_->Depth(fx_->queue() + ".dlq"), 0);
  std::string out;
  EXPECT_EQ(fx_->Audit(&out), 0) << out;
}

TEST_F(LedgerFaultsTest, RelayCrashAfterPublishRepublishesAndInboxKeepsOneEffect) {
  fx_->Seed(1);
  {
    Child relay(fx_->Worker("relay"), {{"PAYPATH_FAILPOINTS", "relay.after_publish=crash@1"}}, LogPath("relay-crash"));
    ExpectKilled(relay, "relay");
  }
  // The broker has the event, the row is still unpublished: the window the failpoint opened.
  EXPECT_EQ(fx_->Unpublished(), 1);
  EXPECT_EQ(fx_->Depth(fx_->queue()), 1);
  {
    Child relay(fx_->Worker("relay"), {}, LogPath("relay-restart"));
    ASSERT_TRUE(WaitUntil([&] { return fx_->Unpublished() == 0; }, seconds(20)));
    ExpectGracefulStop(relay, "relay");
  }
  EXPECT_EQ(fx_->Depth(fx_->queue()), 2) << "the restarted relay must publish the event again";

  metrics::Registry reg;
  ledger::Consumer consumer(fx_->ConsumerOpts(reg), SystemClock::Instance(), fx_->random());
  ASSERT_TRUE(LedgerFixture::StepUntil(consumer, [&] {
    return CounterValue(reg, "paypath_inbox_duplicates_total") == 1;
  }));
  EXPECT_EQ(CounterValue(reg, "paypath_ledger_effects_applied_total"), 1);
  EXPECT_EQ(fx_->Postings(), 2);
  EXPECT_EQ(fx_->InboxRows(), 1);
  std::string out;
  EXPECT_EQ(fx_->Audit(&out), 0) << out;
}

TEST_F(LedgerFaultsTest, ConsumerCrashAfterCommitRedeliversWithoutSecondEffect) {
  fx_->Seed(1);
  RelayInProcess();
  {
    Child consumer(fx_->Worker("consumer"), {{"PAYPATH_FAILPOINTS", "consumer.after_commit=crash@1"}},
                   LogPath("consumer-after-commit"));
    ExpectKilled(consumer, "consumer");
  }
  EXPECT_EQ(fx_->Postings(), 2) << "the effect committed before the crash";
  EXPECT_EQ(fx_->InboxRows(), 1);
  metrics::Registry reg;
  ledger::Consumer consumer(fx_->ConsumerOpts(reg), SystemClock::Instance(), fx_->random());
  ASSERT_TRUE(LedgerFixture::StepUntil(consumer, [&] {
    return CounterValue(reg, "paypath_inbox_duplicates_total") == 1;
  })) << "the unacked message was not redelivered";
  EXPECT_EQ(CounterValue(reg, "paypath_ledger_effects_applied_total"), 0);
  EXPECT_EQ(fx_->Postings(), 2);
  EXPECT_EQ(fx_->Depth(fx_->queue()), 0);
  std::string out;
  EXPECT_EQ(fx_->Audit(&out), 0) << out;
}

TEST_F(LedgerFaultsTest, ConsumerCrashBeforeCommitRedeliversAndAppliesExactlyOnce) {
  fx_->Seed(3);
  RelayInProcess();
  {
    Child consumer(fx_->Worker("consumer"), {{"PAYPATH_FAILPOINTS", "consumer.before_commit=crash@1"}},
                   LogPath("consumer-before-commit"));
    ExpectKilled(consumer, "consumer");
  }
  EXPECT_EQ(fx_->Postings(), 0) << "nothing may survive a crash before COMMIT";
  EXPECT_EQ(fx_->InboxRows(), 0);
  {
    Child consumer(fx_->Worker("consumer"), {}, LogPath("consumer-restart"));
    ASSERT_TRUE(WaitUntil([&] { return fx_->InboxRows() == 3; }, seconds(20)));
    ExpectGracefulStop(consumer, "consumer");
  }
  EXPECT_EQ(fx_->Postings(), 6);
  EXPECT_EQ(fx_->Depth(fx_->queue()), 0);
  std::string out;
  EXPECT_EQ(fx_->Audit(&out), 0) << out;
}

TEST_F(LedgerFaultsTest, BrokerOutageLosesNothingAndBacklogDrainsAtConfiguredRate) {
  const double kRate = 200;
  const int kBurst = 20;
  const int kBacklog = 1000;
  Child relay(fx_->Worker("relay", {"--rate", "200", "--burst", "20", "--batch", "50"}), {}, LogPath("outage-relay"));
  Child consumer(fx_->Worker("consumer"), {}, LogPath("outage-consumer"));
  fx_->Seed(50);
  ASSERT_TRUE(WaitUntil([&] { return fx_->InboxRows() == 50; }, seconds(30)));

  std::string out;
  ASSERT_EQ(RunShell(StackScript() + " stop rabbitmq", &out), 0) << out;
  int64_t before = fx_->Count("SELECT coalesce(max(id), 0) FROM outbox");
  // Charges keep arriving while the broker is down.
  for (int i = 0; i < 10; ++i) fx_->Seed(kBacklog / 10);
  EXPECT_EQ(fx_->Unpublished(), kBacklog) << "nothing can be marked published without a broker confirm";
  EXPECT_TRUE(relay.running());
  EXPECT_TRUE(consumer.running());

  ASSERT_EQ(RunShell(StackScript() + " start rabbitmq", &out), 0) << out;
  ASSERT_TRUE(WaitUntil([&] { return fx_->Unpublished() == 0; }, seconds(60))) << fx_->Unpublished() << " left";
  ASSERT_TRUE(WaitUntil([&] { return fx_->InboxRows() == 50 + kBacklog; }, seconds(60)))
      << fx_->InboxRows() << " applied";

  // Drain rate from the rows' own timestamps: tokens available = burst + rate * span >= rows published.
  std::string span_s = QueryScalar(fx_->url(),
                                   "SELECT extract(epoch FROM max(published_at) - min(published_at)) FROM outbox "
                                   "WHERE id > " + std::to_string(before));
  double span = std::strtod(span_s.c_str(), nullptr);
  double measured = (kBacklog - kBurst) / span;
  std::printf("outage backlog %d rows drained in %.2f s: %.1f rows/s (configured %.0f/s, burst %d)\n", kBacklog,
              span, measured, kRate, kBurst);
  EXPECT_GT(measured, kRate * 0.6) << "drained too slowly";
  EXPECT_LT(measured, kRate * 1.15) << "the token bucket let the backlog through too fast";

  ExpectGracefulStop(relay, "relay");
  ExpectGracefulStop(consumer, "consumer");
  EXPECT_EQ(fx_->Postings(), 2 * (50 + kBacklog));
  EXPECT_EQ(fx_->Depth(fx_->queue()), 0);
  EXPECT_EQ(fx_->Audit(&out), 0) << out;
}

// One message crashes the consumer every time it is applied (a consumer bug its data triggers). The messages
// around it, and those published after it, must still be applied; it is never dead-lettered automatically
// (it is not the message's fault), its redeliveries are visible, and an operator can park it by hand.
TEST_F(LedgerFaultsTest, AMessageThatCrashesTheConsumerEveryTimeStallsNoOtherAndCanBeParked) {
  auto seeded = fx_->Seed(6);
  RelayInProcess();
  const std::string crasher = seeded[2].message_id;
  const std::map<std::string, std::string> faults = {{"PAYPATH_FAILPOINTS", "consumer.apply." + crasher + "=crash"}};
  int crashes = 0;
  bool published_behind = false;
  // A supervisor's restarts: each run ends with the crash; stop once every other message is in.
  for (int run = 1; run <= 12 && fx_->InboxRows() < 7; ++run) {
    Child consumer(fx_->Worker("consumer"), faults, LogPath("crash-loop"));
    int status = 0;
    bool exited = consumer.Wait(seconds(20), &status);
    ASSERT_TRUE(exited) << "run " << run << ": the consumer neither crashed nor finished (applied " << fx_->InboxRows() << ")";
    ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << "run " << run;
    crashes++;
    if (!published_behind && fx_->InboxRows() == 5) {  // everything but the crasher: now two more behind it
      fx_->Seed(2);
      RelayInProcess();
      published_behind = true;
    }
  }
  std::printf("crash loop: %d crashes, %lld of 7 other messages applied, crasher attempted alone %lld times\n", crashes,
              static_cast<long long>(fx_->InboxRows()),
              static_cast<long long>(fx_->LedgerCount("SELECT attempts FROM delivery_attempts WHERE message_id = '" +
                                                      crasher + "'")));
  ASSERT_TRUE(published_behind);
  EXPECT_EQ(fx_->InboxRows(), 7) << "messages stalled behind the crashing one";
  EXPECT_EQ(fx_->LedgerCount("SELECT count(*) FROM inbox WHERE message_id = '" + crasher + "'"), 0);
  EXPECT_EQ(fx_->Depth(fx_->queue() + ".dlq"), 0) << "a crash is not the message's fault: never dead-lettered by itself";
  EXPECT_GE(fx_->LedgerCount("SELECT attempts FROM delivery_attempts WHERE message_id = '" + crasher + "'"), 2);

  // The redeliveries are exposed: a consumer that (with the bug turned into an error) receives it sees its count.
  {
    ASSERT_TRUE(failpoints::Configure("consumer.apply." + crasher + "=error").ok());
    metrics::Registry reg;
    ledger::Consumer consumer(fx_->ConsumerOpts(reg), SystemClock::Instance(), fx_->random());
    ASSERT_TRUE(LedgerFixture::StepUntil(consumer, [&] { return consumer.held() == 1; }));
    EXPECT_GE(reg.GetGauge("paypath_consumer_max_redeliveries", "").Value(), crashes - 1);
    EXPECT_EQ(CounterValue(reg, "paypath_consumer_redeliveries_total"), 1);
    ASSERT_TRUE(failpoints::Configure("").ok());
  }  // its connection closes: the message is ready again

  // Parked by hand (docs/runbook.md), with its reason recorded; the audit then names the missing charge.
  ASSERT_TRUE(WaitUntil([&] { return fx_->Depth(fx_->queue()) == 1; }, seconds(10)));
  std::string out;
  int st = RunShell(PaypathBinary() + " dlq park --queue " + fx_->queue() +
                        " --ledger-pg-url '" + fx_->ledger_url() + "' --message-id " + crasher,
                    &out);
  ASSERT_EQ(st, 0) << out;
  EXPECT_EQ(fx_->Depth(fx_->queue()), 0);
  EXPECT_EQ(fx_->Depth(fx_->queue() + ".dlq"), 1);
  EXPECT_EQ(fx_->LedgerCount("SELECT count(*) FROM dead_letters WHERE message_id = '" + crasher +
                             "' AND reason = 'parked_by_operator'"), 1);
  EXPECT_EQ(fx_->Audit(&out, "--max-dlq 0"), 1) << out;
  EXPECT_NE(out.find("\"name\":\"charges_posted_once\",\"status\":\"FAIL\",\"value\":1"), std::string::npos) << out;

  // Once the consumer is fixed (no failpoint), a replay applies it and the ledger is whole.
  st = RunShell(PaypathBinary() + " dlq replay --queue " + fx_->queue(), &out);
  ASSERT_EQ(st, 0) << out;
  {
    Child consumer(fx_->Worker("consumer"), {}, LogPath("crash-loop-fixed"));
    ASSERT_TRUE(WaitUntil([&] { return fx_->InboxRows() == 8; }, seconds(20)));
    ExpectGracefulStop(consumer, "consumer");
  }
  EXPECT_EQ(fx_->LedgerCount("SELECT count(*) FROM delivery_attempts"), 0) << "applied messages keep no attempt row";
  EXPECT_EQ(fx_->Audit(&out, "--max-dlq 0"), 0) << out;
}

}  // namespace
}  // namespace paypath::testing
