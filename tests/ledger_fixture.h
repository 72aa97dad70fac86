// Helpers shared by the relay / consumer / ledger fault / audit suites: a fresh api database, a fresh ledger
// database and a private queue per suite, seeding charges the way the api writes them (charge row +
// outbox::Append in one transaction, the payload from the event contract), in-process relay and consumer
// with their own metrics registries, and counters of both databases.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <ctime>
#include <memory>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/metrics.h"
#include "common/random.h"
#include "events/charge_event.h"
#include "ledger/consumer.h"
#include "broker/amqp.h"
#include "outbox/outbox.h"
#include "outbox/relay.h"
#include "broker/topology.h"
#include "store/pg.h"
#include "testing.h"

namespace paypath::testing {

struct SeededCharge {
  std::string charge_id;
  std::string message_id;
};

class LedgerFixture {
 public:
  // db: the api database's name (unique per suite; the ledger's is db + "_ledger"); the queue name adds the
  // pid so reruns never see old messages.
  explicit LedgerFixture(const std::string& db)
      : url_(FreshDatabase(db)),
        ledger_url_(FreshLedgerDatabase(db + "_ledger")),
        queue_("paypath.test." + db + "." + std::to_string(::getpid())),
        random_(42) {}

  ~LedgerFixture() { DeleteQueues(); }

  // Empties both databases' tables and re-creates the suite's queues empty: each test starts from nothing.
  // The services only verify the topology, so the admin declares it, as `paypath broker declare` would.
  void Reset() {
    (void)QueryScalar(url_, "TRUNCATE outbox, charges");
    (void)QueryScalar(ledger_url_,
                      "TRUNCATE inbox, ledger_entries, account_balances, delivery_attempts, dead_letters");
    amqp::Topology t;
    t.queue = queue_;
    Declare(t);
  }

  // Deletes the suite's queues and declares them again with `t`'s arguments (t.queue must be queue()).
  void Declare(const amqp::Topology& t) {
    DeleteQueues();
    auto c = Admin();
    ASSERT_TRUE(c.ok()) << c.error().ToString();
    Status s = amqp::DeclareTopology(*c.value(), t);
    ASSERT_TRUE(s.ok()) << s.error().ToString();
  }

  void DeleteQueues() {
    auto c = Admin();
    amqp::Topology t;
    t.queue = queue_;
    if (c.ok()) (void)amqp::DeleteTopology(*c.value(), t);
  }

  static Result<std::unique_ptr<amqp::Connection>> Admin() {
    amqp::Settings s;
    s.url = AdminAmqpUrl();
    return amqp::Connection::Open(s);
  }

  const std::string& url() const { return url_; }
  const std::string& ledger_url() const { return ledger_url_; }
  // The database name in a URL (the part after the last '/').
  static std::string DbName(const std::string& url) { return url.substr(url.rfind('/') + 1); }
  const std::string& queue() const { return queue_; }
  Random& random() { return random_; }

  // Inserts `n` charges (charge row + outbox row per charge) in one transaction, like the api does.
  std::vector<SeededCharge> Seed(int n, const std::string& tenant = "tenant_a", int64_t amount = 1234,
                                 const std::string& currency = "USD", const std::string& account_id = "") {
    auto conn = store::PgConn::Connect(url_, "test-seed");
    EXPECT_TRUE(conn.ok());
    std::vector<SeededCharge> out;
    if (!conn.ok()) return out;
    auto& c = *conn.value();
    auto tx = store::Transaction::Start(c);
    EXPECT_TRUE(tx.ok());
    for (int i = 0; i < n; ++i) {
      SeededCharge s{"ch_" + random_.Hex128(), random_.Uuid4()};
      std::string account = account_id.empty() ? "acct_" + std::to_string(seq_++ % 7) : account_id;
      auto ins = c.Exec(
          "INSERT INTO charges (id, tenant, idem_key, fingerprint, account_id, amount, currency, status, created_at) "
          "VALUES ($1, $2, $3, repeat('0', 64), $4, $5::bigint, $6, 'succeeded', now())",
          {s.charge_id, tenant, "key_" + s.charge_id, account, std::to_string(amount), currency});
      EXPECT_TRUE(ins.ok()) << ins.error().ToString();
      std::string payload = events::EncodePayload(
          {s.message_id, s.charge_id, tenant, account, amount, currency, std::chrono::system_clock::now()});
      Status st = outbox::Append(c, {s.message_id, tenant, s.charge_id, events::kChargeSucceeded, payload});
      EXPECT_TRUE(st.ok()) << st.error().ToString();
      out.push_back(s);
    }
    EXPECT_TRUE((*tx)->Commit().ok());
    return out;
  }

  outbox::RelayOptions RelayOpts(metrics::Registry& reg) {
    outbox::RelayOptions o;
    o.pg_url = url_;
    o.amqp.url = RelayAmqpUrl();
    o.topology.queue = queue_;
    o.rate = 100000;
    o.burst = 100000;
    o.registry = &reg;
    return o;
  }

  ledger::ConsumerOptions ConsumerOpts(metrics::Registry& reg) {
    ledger::ConsumerOptions o;
    o.ledger_pg_url = ledger_url_;
    o.amqp.url = ConsumerAmqpUrl();
    o.topology.queue = queue_;
    o.poll = std::chrono::milliseconds(100);
    o.registry = &reg;
    return o;
  }

  // One integer from the api database (Count) or the ledger database (LedgerCount).
  int64_t Count(const std::string& sql) {
    std::string v = QueryScalar(url_, sql);
    return std::strtoll(v.c_str(), nullptr, 10);
  }
  int64_t LedgerCount(const std::string& sql) {
    std::string v = QueryScalar(ledger_url_, sql);
    return std::strtoll(v.c_str(), nullptr, 10);
  }
  int64_t Unpublished() { return Count("SELECT count(*) FROM outbox WHERE published_at IS NULL"); }
  int64_t Postings() { return LedgerCount("SELECT count(*) FROM ledger_entries"); }
  int64_t InboxRows() { return LedgerCount("SELECT count(*) FROM inbox"); }

  // Messages ready in a queue (passive declare), -1 if unreachable.
  int64_t Depth(const std::string& queue) {
    auto c = Admin();
    if (!c.ok()) return -1;
    auto d = c.value()->QueueDepth(queue);
    return d.ok() ? static_cast<int64_t>(*d) : -1;
  }

  // Runs `paypath audit` for this database and queue; returns its exit code, output in *out. The
  // operator's AMQP URL comes from the environment (PAYPATH_OPERATOR_AMQP_URL), never the command line.
  int Audit(std::string* out, const std::string& extra = "") {
    std::string cmd = PaypathBinary() + " audit --json --pg-url '" + url_ + "' --ledger-pg-url '" + ledger_url_ +
                      "' --queue " + queue_ + " " + extra;
    int st = RunShell(cmd, out);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  }

  // Steps `consumer` until cond holds or the deadline passes.
  static bool StepUntil(ledger::Consumer& consumer, const std::function<bool()>& cond,
                        std::chrono::milliseconds deadline = std::chrono::seconds(20)) {
    return WaitUntil(
        [&] {
          (void)consumer.RunOnce();
          return cond();
        },
        deadline, std::chrono::milliseconds(0));
  }

  // Command line of a worker subprocess for this database and queue; its AMQP URL (a secret) comes from
  // the inherited environment: PAYPATH_RELAY_AMQP_URL or PAYPATH_CONSUMER_AMQP_URL.
  std::vector<std::string> Worker(const std::string& sub, const std::vector<std::string>& extra = {}) {
    std::vector<std::string> argv = {PaypathBinary(), sub, sub == "consumer" ? "--ledger-pg-url" : "--pg-url",
                                     sub == "consumer" ? ledger_url_ : url_, "--queue", queue_};
    argv.insert(argv.end(), extra.begin(), extra.end());
    return argv;
  }

 private:
  std::string url_;
  std::string ledger_url_;
  std::string queue_;
  SystemRandom random_;
  int seq_ = 0;
};

inline double CounterValue(metrics::Registry& reg, const std::string& name) {
  return reg.GetCounter(name, "").Value();
}

}  // namespace paypath::testing
