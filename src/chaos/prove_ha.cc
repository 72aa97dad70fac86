// `paypath prove --scenario ha` (make prove-ha): the proof run on the clustered stack (scripts/stack-ha).
// Two api processes behind the run's own round-robin, two relays and two consumers, all given the
// cluster's multi-host URLs; an open-loop load while the cluster's members and paypath's processes are
// killed one after the other; then the verdict of `make prove` (every logical operation exactly once in
// both databases, the audit clean, the DLQ empty) plus each fault shown with its old and new leader and the
// time its failover took. The levers are scripts/stack-ha's (docs/ha.md): `leader`, `kill`, `start`,
// `partition pg-primary`, `heal`, `wait-healthy`.
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "broker/amqp.h"
#include "broker/topology.h"
#include "chaos/prove_internal.h"
#include "client/http_transport.h"
#include "client/retry_budget.h"
#include "common/config.h"
#include "common/log.h"
#include "ledger/audit.h"
#include "ledger/schema.h"
#include "store/schema.h"

namespace paypath::chaos {
namespace {

using Steady = std::chrono::steady_clock;

std::vector<std::string> SplitList(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream in(s);
  std::string item;
  while (std::getline(in, item, ','))
    if (!item.empty()) out.push_back(item);
  return out;
}

// Opens the admin's connection; the URL may list every node (amqp::Connection::Open tries them in order).
Result<std::unique_ptr<amqp::Connection>> OpenBroker(const std::string& urls) {
  amqp::Settings s;
  s.url = urls;
  return amqp::Connection::Open(s);
}

// Alternates attempts between the api processes, as a load balancer without health checks would: an
// attempt that lands on a dead one fails to connect and the client's retry takes the next.
class RoundRobin : public client::Transport {
 public:
  explicit RoundRobin(std::vector<client::Transport*> backends) : backends_(std::move(backends)) {}
  client::Exchange RoundTrip(const client::HttpRequest& r, std::chrono::milliseconds timeout) override {
    return backends_[next_++ % backends_.size()]->RoundTrip(r, timeout);
  }

 private:
  std::vector<client::Transport*> backends_;
  std::atomic<uint64_t> next_{0};
};

std::string FirstWord(const std::string& s) {
  size_t b = s.find_first_not_of(" \n\t");
  if (b == std::string::npos) return "";
  size_t e = s.find_first_of(" \n\t", b);
  return s.substr(b, e == std::string::npos ? std::string::npos : e - b);
}

// One injected fault as the verdict and the report show it.
struct Fault {
  std::string kind;        // "pg-primary", ...
  std::string victim;      // the member or process killed ("pg1", "api1")
  std::string new_leader;  // who leads afterwards (empty for process kills and followers)
  double t_kill = -1;      // seconds since the run started
  double t_failover = -1;  // the new leader named and serving (or the process answering again)
  double t_back = -1;      // the victim back in the cluster
  bool ok = false;
  std::string detail;
};

class Levers {
 public:
  Levers(std::string stack, Clock& clock, Steady::time_point t0) : stack_(std::move(stack)), clock_(clock), t0_(t0) {}
  double Now() const { return std::chrono::duration<double>(clock_.Now() - t0_).count(); }
  // stdout of `stack-ha args...`; "" when it failed.
  std::string Run(std::vector<std::string> args) {
    args.insert(args.begin(), stack_);
    std::string out;
    int rc = RunProgramOutput(args, &out);
    return rc == 0 ? out : "";
  }
  bool Ok(std::vector<std::string> args) {
    args.insert(args.begin(), stack_);
    std::string out;
    return RunProgramOutput(args, &out) == 0;
  }
  std::string Leader(const std::string& what, const std::string& queue = "") {
    return FirstWord(queue.empty() ? Run({"leader", what}) : Run({"leader", what, queue}));
  }
  // Polls `leader` until it names someone other than `old` (and not empty), up to `bound`.
  std::string AwaitNewLeader(const std::string& what, const std::string& old, std::chrono::seconds bound,
                             const std::string& queue = "") {
    auto end = clock_.Now() + bound;
    while (clock_.Now() < end) {
      std::string l = Leader(what, queue);
      if (!l.empty() && l != old) return l;
      clock_.SleepFor(std::chrono::milliseconds(200));
    }
    return "";
  }

 private:
  const std::string stack_;
  Clock& clock_;
  const Steady::time_point t0_;
};

// A read-write session through the multi-host URL answers: what a client of the new primary sees.
bool Writable(const std::string& url) {
  auto c = store::PgConn::Connect(url, "paypath-prove-ha");
  if (!c.ok()) return false;
  auto r = c.value()->ExecSimple("SELECT NOT pg_is_in_recovery()");
  return r.ok() && r->rows() == 1 && r->GetString(0, 0) == "t";
}

}  // namespace

int RunProveHa(const ProveOptions& o) {
  log::SetComponent("prove-ha");
  Clock& clock = SystemClock::Instance();
  SystemRandom rng(o.seed);
  const char* stack_env = std::getenv("PAYPATH_STACK");
  const char* ha_env = std::getenv("PAYPATH_HA");
  if (stack_env == nullptr || ha_env == nullptr || std::string(ha_env) != "1") {
    log::Error("prove_setup", {{"error", "--scenario ha runs on the clustered stack: load its settings first "
                                         "(`eval \"$(scripts/stack up --ha)\"`, or `make prove-ha`)"}});
    return 2;
  }
  const std::string stack = stack_env;
  Env e;
  e.opt = o;
  auto keys = ParseApiKeys(o.api_keys);
  Status name = CheckProveDatabaseName(o.prove_db);
  if (!keys.ok() || !name.ok()) {
    log::Error("prove_setup", {{"error", !keys.ok() ? keys.error().ToString() : name.error().ToString()}});
    return 2;
  }
  e.api_key = keys->begin()->first;
  e.tenant = keys->begin()->second;
  namespace fs = std::filesystem;
  std::error_code ec;
  for (const char* sub : {"metrics", "logs"}) fs::create_directories(fs::path(o.report_dir) / sub, ec);
  for (const auto& entry : fs::directory_iterator(fs::path(o.report_dir) / "logs", ec))
    if (entry.path().extension() == ".log") fs::remove(entry.path(), ec);

  // The run's own databases on the cluster (through the multi-host URL: they are created on the primary).
  auto db_url = FreshDatabase(o.pg_admin_url, o.prove_db);
  auto ledger_url = db_url.ok() ? FreshDatabase(o.pg_admin_url, o.prove_db + "_ledger") : db_url;
  Status migrated = !db_url.ok() ? Status(db_url.error()) : !ledger_url.ok() ? Status(ledger_url.error()) : OkStatus();
  if (migrated.ok()) {
    auto db = store::PgConn::Connect(db_url.value(), "paypath-prove-ha");
    migrated = db.ok() ? store::Migrate(*db.value()) : Status(db.error());
  }
  if (migrated.ok()) migrated = ledger::MigrateDatabase(ledger_url.value());
  if (!migrated.ok()) {
    log::Error("prove_setup", {{"error", migrated.error().ToString()}});
    return 2;
  }
  e.db_url = db_url.value();
  e.ledger_db_url = ledger_url.value();
  e.queue = "paypath.prove.ha." + SystemRandom::Instance().Hex128().substr(0, 8);
  amqp::Topology topology;
  topology.queue = e.queue;
  {
    auto admin = OpenBroker(o.admin_amqp_url);
    Status d = admin.ok() ? amqp::DeclareTopology(*admin.value(), topology) : Status(admin.error());
    if (!d.ok()) {
      log::Error("prove_setup", {{"error", "declaring the run's queue: " + d.error().ToString()}});
      return 2;
    }
  }

  auto supervisor = StartSupervisor(o.report_dir + "/logs", clock);
  if (!supervisor) return 2;
  Supervisor& sup = *supervisor;

  // Two of each. Secrets through the environment only.
  const std::map<std::string, std::string> api_env = {
      {"PAYPATH_PG_URL", e.db_url}, {"PAYPATH_REDIS_URL", o.redis_url}, {"PAYPATH_API_KEYS", o.api_keys}};
  const std::map<std::string, std::string> relay_env = {{"PAYPATH_PG_URL", e.db_url},
                                                        {"PAYPATH_RELAY_AMQP_URL", o.relay_amqp_url}};
  const std::map<std::string, std::string> consumer_env = {{"PAYPATH_LEDGER_PG_URL", e.ledger_db_url},
                                                           {"PAYPATH_CONSUMER_AMQP_URL", o.consumer_amqp_url}};
  std::vector<int> api_ports;
  std::vector<std::string> names;
  bool started = true;
  for (int i = 1; i <= 2 && started; ++i) {
    std::string id = std::to_string(i);
    int ap = FreePort(), rp = FreePort(), cp = FreePort();
    api_ports.push_back(ap);
    started = sup.Start({"api" + id, {"api", "--listen", Hp(ap), "--no-migrate"}, api_env, api_env, Hp(ap), "/readyz", ""},
                        std::chrono::seconds(60)) &&
              sup.Start({"relay" + id, {"relay", "--queue", e.queue, "--metrics-listen", Hp(rp)}, relay_env, relay_env,
                         Hp(rp), "/healthz", ""},
                        std::chrono::seconds(60)) &&
              sup.Start({"consumer" + id, {"consumer", "--no-migrate", "--queue", e.queue, "--metrics-listen", Hp(cp)},
                         consumer_env, consumer_env, Hp(cp), "/healthz", ""},
                        std::chrono::seconds(60));
    for (const char* k : {"api", "relay", "consumer"}) names.push_back(k + id);
  }
  if (!started) {
    log::Error("prove_setup", {{"error", "a process did not become ready; see " + o.report_dir + "/logs"}});
    return 2;
  }

  ReportData report;
  report.title = "paypath proof run on the clustered stack: " + Fmt(o.ha_rate, 0) + " charges/s while members fail";
  const auto t0 = clock.Now();
  Levers lever(stack, clock, t0);
  std::mutex timeline_mu;
  std::atomic<bool> sampling{true};
  std::thread sampler([&] {
    std::unique_ptr<store::PgConn> a, l;
    while (sampling.load()) {
      sup.Scrape();
      if (!a || !a->healthy()) {
        auto c = store::PgConn::Connect(e.db_url, "paypath-prove-sampler");
        a = c.ok() ? std::move(c.value()) : nullptr;
      }
      if (!l || !l->healthy()) {
        auto c = store::PgConn::Connect(e.ledger_db_url, "paypath-prove-sampler");
        l = c.ok() ? std::move(c.value()) : nullptr;
      }
      TimePoint p;
      if (a && l && SampleTimeline(*a, *l, lever.Now(), &p)) {
        std::lock_guard lock(timeline_mu);
        report.timeline.push_back(p);
      }
      clock.SleepFor(std::chrono::milliseconds(500));
    }
  });

  // The load: open loop at ha_rate until the faults are over and the tail has run; 5% of the operations
  // are sent again right after they ended (a client's duplicate).
  std::vector<std::unique_ptr<client::HttpTransport>> transports;
  std::vector<client::Transport*> backends;
  for (int p : api_ports) {
    transports.push_back(std::make_unique<client::HttpTransport>(client::ParseHttpUrl("http://" + Hp(p)).value(), clock));
    backends.push_back(transports.back().get());
  }
  RoundRobin rr(backends);
  client::RetryBudget budget("prove_ha", client::RetryBudgetOptions{});
  auto transcript = client::FileTranscript::Open(o.report_dir + "/transcript.jsonl");
  if (!transcript.ok()) return 2;
  client::RetryingClient cl(rr, clock, rng, ProveClientOptions("prove_ha"), &budget, transcript.value().get());
  std::atomic<bool> issuing{true};
  std::atomic<int> next{0}, issued{0};
  std::mutex ops_mu;
  std::vector<client::ChargeRequest> unfinished;
  std::map<int, int> attempts;
  const char* currencies[] = {"USD", "EUR", "GBP"};
  std::vector<std::thread> workers;
  for (int w = 0; w < 128; ++w) {
    workers.emplace_back([&] {
      Random& r = SystemRandom::Instance();
      for (int i = next++;; i = next++) {
        auto at = t0 + std::chrono::duration_cast<Steady::duration>(std::chrono::duration<double>(i / o.ha_rate));
        while (clock.Now() < at && issuing.load()) clock.SleepFor(std::min<Steady::duration>(at - clock.Now(), std::chrono::milliseconds(50)));
        if (!issuing.load()) break;
        issued++;
        client::ChargeRequest c{"acct_" + std::to_string(i % 97), 100 + static_cast<int64_t>(r.UniformInclusive(99900)),
                                currencies[i % 3], "", r.Uuid4()};
        client::CallResult res = cl.Charge(c, e.api_key);
        bool ok = res.ok();
        if (r.Uniform01() < 0.05) {
          client::CallResult again = cl.Charge(c, e.api_key);
          ok = ok || again.ok();
        }
        std::lock_guard lock(ops_mu);
        attempts[res.attempts]++;
        if (!ok) unfinished.push_back(c);
      }
    });
  }

  // The faults, one after the other, each waited out before the next; the cluster whole in between.
  std::vector<Fault> faults;
  const std::string& q = e.queue;
  auto healthy = [&] { return lever.Ok({"wait-healthy", "240"}); };
  // A few seconds of steady load first, and between faults, so the time lines show the level each fault
  // disturbs and its recovery.
  auto steady_load = [&](double seconds) {
    auto end = clock.Now() + std::chrono::duration_cast<Steady::duration>(std::chrono::duration<double>(seconds));
    while (clock.Now() < end) clock.SleepFor(std::chrono::milliseconds(100));
  };
  steady_load(3);
  for (const std::string& kind : SplitList(o.ha_faults)) {
    steady_load(2);
    Fault f;
    f.kind = kind;
    if (kind == "queue-leader" || kind == "rabbit-follower") {
      std::string leader = lever.Leader("queue", q);
      if (kind == "queue-leader") {
        f.victim = leader;
      } else {
        for (const char* m : {"rabbit1", "rabbit2", "rabbit3"})
          if (m != leader && f.victim.empty()) f.victim = m;
      }
      f.t_kill = lever.Now();
      bool killed = !leader.empty() && lever.Ok({"kill", f.victim});
      // A leader's death elects another; a follower's leaves the leader where it was.
      std::string after = !killed ? ""
                          : kind == "queue-leader" ? lever.AwaitNewLeader("queue", leader, std::chrono::seconds(90), q)
                                                   : lever.Leader("queue", q);
      f.t_failover = lever.Now();
      bool back = lever.Ok({"start", f.victim});
      f.t_back = lever.Now();
      if (kind == "queue-leader") {
        f.new_leader = after;
        f.ok = killed && back && !after.empty() && after != leader;
        f.detail = "the leader of queue " + q;
      } else {
        f.ok = killed && back && after == leader;
        f.detail = "a follower of queue " + q + "; its leader " + (after.empty() ? std::string("?") : after) +
                   (after == leader ? " kept" : " changed (was " + leader + ")");
      }
    } else if (kind == "pg-primary" || kind == "pg-partition") {
      std::string leader = lever.Leader("pg");
      f.victim = leader;
      f.t_kill = lever.Now();
      bool injected = !leader.empty() && (kind == "pg-primary" ? lever.Ok({"kill", leader})
                                                                : lever.Ok({"partition", "pg-primary"}));
      f.new_leader = injected ? lever.AwaitNewLeader("pg", leader, std::chrono::seconds(120)) : "";
      // Failover ends when a client of the multi-host URL can write again.
      auto end = clock.Now() + std::chrono::seconds(60);
      bool writable = false;
      while (!f.new_leader.empty() && !(writable = Writable(e.db_url)) && clock.Now() < end)
        clock.SleepFor(std::chrono::milliseconds(200));
      f.t_failover = lever.Now();
      bool back = kind == "pg-primary" ? lever.Ok({"start", leader}) : lever.Ok({"heal"});
      f.t_back = lever.Now();
      f.ok = injected && writable && back && !f.new_leader.empty();
      f.detail = kind == "pg-primary" ? "Patroni leader SIGKILLed (patroni + postgres)"
                                      : "primary's network cut both ways, its processes running";
    } else if (kind == "etcd") {
      std::string leader = lever.Leader("etcd");
      f.victim = leader;
      f.t_kill = lever.Now();
      bool killed = !leader.empty() && lever.Ok({"kill", leader});
      f.new_leader = killed ? lever.AwaitNewLeader("etcd", leader, std::chrono::seconds(60)) : "";
      f.t_failover = lever.Now();
      bool back = lever.Ok({"start", leader});
      f.t_back = lever.Now();
      f.ok = killed && back && !f.new_leader.empty();
      f.detail = "etcd Raft leader";
    } else if (kind == "api" || kind == "relay" || kind == "consumer") {
      f.victim = kind + "1";
      int before = sup.Crashes(f.victim);
      f.t_kill = lever.Now();
      bool killed = sup.Kill(f.victim);
      auto end = clock.Now() + std::chrono::seconds(90);
      while (killed && sup.Crashes(f.victim) == before && clock.Now() < end) clock.SleepFor(std::chrono::milliseconds(50));
      f.t_failover = f.t_back = lever.Now();  // the supervisor restarted it and it answered ready
      f.ok = killed && sup.Crashes(f.victim) == before + 1;
      f.detail = "SIGKILL; the other " + kind + " carried on, the supervisor restarted this one";
    } else {
      f.detail = "unknown fault";
    }
    log::Warn("prove_ha_fault", {{"fault", kind}, {"victim", f.victim}, {"new_leader", f.new_leader},
                                 {"failover_s", f.t_failover - f.t_kill}, {"ok", f.ok ? "yes" : "no"}});
    if (!healthy()) {
      f.ok = false;
      f.detail += "; the cluster did not become healthy again";
    }
    faults.push_back(f);
  }
  steady_load(o.ha_tail_s);
  issuing.store(false);
  for (auto& w : workers) w.join();
  const int logical = issued.load();

  // Calls that ended without an answer may or may not have charged: the same key settles each.
  int settled = static_cast<int>(unfinished.size());
  client::RetryingClient settle(rr, clock, rng, ProveClientOptions("prove_ha_settle"), nullptr, transcript.value().get());
  SettleUnfinished(settle, e.api_key, unfinished);
  const int unanswered = static_cast<int>(unfinished.size());

  // Quiescence, on fresh sessions (the failovers ended the old ones).
  auto db = store::PgConn::Connect(e.db_url, "paypath-prove-ha");
  auto ledger_db = store::PgConn::Connect(e.ledger_db_url, "paypath-prove-ha");
  if (!db.ok() || !ledger_db.ok()) {
    sampling.store(false);
    sampler.join();
    log::Error("prove_judge", {{"error", "cannot reach the cluster's PostgreSQL after the run"}});
    return 2;
  }
  const bool quiet = AwaitQuiescence(*db.value(), *ledger_db.value(), clock,
                                     clock.Now() + std::chrono::seconds(std::max(o.quiesce_timeout_s, 300)));
  sampling.store(false);
  sampler.join();
  sup.Scrape();

  ledger::AuditOptions ao;
  ao.pg_url = e.db_url;
  ao.ledger_pg_url = e.ledger_db_url;
  ao.amqp_url = o.operator_amqp_url;  // every node: the first may be the one still rejoining
  ao.topology = topology;
  ao.max_dlq = 0;
  auto audit = ledger::RunAudit(ao);

  const int64_t charges_db = Scalar(*db.value(), "SELECT count(*) FROM charges");
  const int64_t effects_db = Scalar(*ledger_db.value(), "SELECT count(*) FROM ledger_entries WHERE direction = 'debit'");
  const int64_t inbox_db = Scalar(*ledger_db.value(), "SELECT count(*) FROM inbox");
  double api_created = 0, dup = 0, dlq = 0;
  for (const char* a : {"api1", "api2"}) {
    auto m = sup.Totals(a);
    api_created += m.count("paypath_charges_created_total") ? m["paypath_charges_created_total"] : 0;
  }
  for (const char* c : {"consumer1", "consumer2"})
    for (const auto& [k, v] : sup.Totals(c)) {
      if (k.rfind("paypath_inbox_duplicates_total", 0) == 0) dup += v;
      if (k.rfind("paypath_dlq_messages_total{", 0) == 0) dlq += v;
    }
  const std::string L = std::to_string(logical);
  auto& v = report.verdict;
  v.push_back({"logical operations", L, "", true,
               "issued at " + Fmt(o.ha_rate, 0) + "/s through the round-robin over api1 and api2"});
  v.push_back({"charges in PostgreSQL", std::to_string(charges_db), L, charges_db == logical,
               "SELECT count(*) FROM charges (the cluster's primary)"});
  v.push_back({"ledger effects applied", std::to_string(effects_db), L, effects_db == logical,
               "debit postings in the ledger database"});
  v.push_back({"inbox messages applied", std::to_string(inbox_db), L, inbox_db == logical, "SELECT count(*) FROM inbox"});
  v.push_back({"charges created (api /metrics, both)", Fmt(api_created, 0), "", true,
               "a SIGKILLed api loses its unscraped increments: information only"});
  v.push_back({"inbox duplicates absorbed", Fmt(dup, 0), "", true, "consumers' /metrics (republishes after kills)"});
  v.push_back({"messages the consumers dead-lettered", Fmt(dlq, 0), "0", dlq == 0, "consumers' /metrics"});
  v.push_back({"operations without a final answer", std::to_string(unanswered), "0", unanswered == 0,
               "client (after settling " + std::to_string(settled) + " calls with their keys)"});
  v.push_back({"quiescence reached", quiet ? "yes" : "no", "yes", quiet, "outbox empty and every charge posted"});
  AddAuditRows(audit, &v);
  for (const auto& f : faults) {
    std::string value = f.victim + (f.new_leader.empty() ? "" : " -> " + f.new_leader);
    std::string took = f.t_failover >= 0 && f.t_kill >= 0 ? Fmt(f.t_failover - f.t_kill, 1) + " s" : "?";
    v.push_back({"fault " + f.kind, value + " in " + took, "recovered", f.ok,
                 f.detail + "; at " + Fmt(f.t_kill, 1) + " s, member back after " + Fmt(f.t_back - f.t_kill, 1) + " s"});
    std::string label = f.kind + ": " + f.victim + (f.new_leader.empty() ? "" : " -> " + f.new_leader) + " (" + took + ")";
    report.faults.push_back({f.t_kill, f.t_failover, label});
  }
  for (const auto& name : names)
    for (auto t : sup.CrashTimes(name))
      if (std::none_of(faults.begin(), faults.end(), [&](const Fault& f) { return f.victim == name; }))
        report.faults.push_back({std::chrono::duration<double>(t - t0).count(), 0, name + " crashed (not injected)"});
  report.pass = true;
  for (const auto& row : v)
    if (!row.ok) report.pass = false;
  report.attempts_per_operation = attempts;
  {
    std::ifstream in(o.report_dir + "/transcript.jsonl");
    std::string line;
    while (std::getline(in, line)) {
      double d = JsonNumber(line, "delay_ms");
      if (d > 0) report.retry_delays_ms.push_back(d);
    }
  }
  report.notes.push_back("Databases " + o.prove_db + " and " + o.prove_db + "_ledger on the Patroni cluster; queue " +
                         e.queue + " (a quorum queue with a member on each RabbitMQ node).");
  report.notes.push_back("A fault's band runs from the kill to the failover's end: for RabbitMQ the queue's new Raft "
                         "leader named, for PostgreSQL a read-write session through the multi-host URL answering, for "
                         "etcd a new Raft leader, for a process its restart answering ready.");

  for (const auto& name : names) std::ofstream(o.report_dir + "/metrics/" + name + ".prom") << sup.LastScrapeText(name);
  std::ofstream(o.report_dir + "/report.html") << RenderHtml(report);
  {
    std::ofstream j(o.report_dir + "/verdict.json");
    j << "{\"pass\":" << (report.pass ? "true" : "false") << ",\"logical_operations\":" << logical
      << ",\"charges_in_db\":" << charges_db << ",\"ledger_effects\":" << effects_db << ",\"faults\":[";
    for (size_t i = 0; i < faults.size(); ++i)
      j << (i ? "," : "") << "{\"kind\":\"" << faults[i].kind << "\",\"victim\":\"" << faults[i].victim
        << "\",\"new_leader\":\"" << faults[i].new_leader << "\",\"failover_s\":" << Fmt(faults[i].t_failover - faults[i].t_kill, 2)
        << ",\"ok\":" << (faults[i].ok ? "true" : "false") << "}";
    j << "]}\n";
  }
  sup.StopAll();
  if (report.pass) {
    auto admin = OpenBroker(o.admin_amqp_url);
    if (admin.ok()) (void)amqp::DeleteTopology(*admin.value(), topology);
  }
  std::string table = RenderVerdictTable(report);
  ssize_t w = ::write(1, table.data(), table.size());
  std::string where = "report: " + o.report_dir + "/report.html\n";
  w = ::write(1, where.data(), where.size());
  (void)w;
  return report.pass ? 0 : 1;
}

}  // namespace paypath::chaos
