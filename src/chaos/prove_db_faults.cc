// The default proof run's database faults (prove_internal.h, DbFaults): in-doubt COMMITs, a PostgreSQL
// restart and a read-only ledger database, each injected under load and each shown to have happened.
#include <libpq-fe.h>

#include <cstdio>

#include "chaos/prove_internal.h"
#include "common/log.h"

namespace paypath::chaos {
namespace {

// The operation indexes (in tenths of the load) at which each fault starts and from which the operations
// wait for it: the restart begins once 1/10 are done and holds back operations from 3/10; the read-only
// window begins once 4/10 are done and holds back those from 6/10. A threshold never exceeds its gate, so
// the operations a fault waits for are never themselves held back.
constexpr int kRestartAt = 1, kRestartGate = 3, kReadOnlyAt = 4, kReadOnlyGate = 6;
// How long any wait of the injector or a held-back worker may last before it gives up (the run then fails
// on the fault's row, never hangs).
constexpr auto kWaitBound = std::chrono::seconds(120);

std::string StartTime(const std::string& admin_url, Clock& clock) {
  // Right after a restart the server may still be starting: retry the connection for a while.
  auto deadline = clock.Now() + std::chrono::seconds(30);
  while (true) {
    auto c = store::PgConn::Connect(admin_url, "paypath-prove-faults");
    if (c.ok()) {
      auto r = c.value()->ExecSimple("SELECT to_char(pg_postmaster_start_time() AT TIME ZONE 'UTC', 'HH24:MI:SS.MS')");
      if (r.ok() && r->rows() == 1) return r->GetString(0, 0);
    }
    if (clock.Now() > deadline) return "";
    clock.SleepFor(std::chrono::milliseconds(100));
  }
}

Status Exec(const std::string& url, const std::string& sql) {
  auto c = store::PgConn::Connect(url, "paypath-prove-faults");
  if (!c.ok()) return c.error();
  auto r = c.value()->ExecSimple(sql);
  if (!r.ok()) return r.error();
  return OkStatus();
}

double Sum(const std::map<std::string, double>& m, const std::string& name, const std::string& label) {
  double total = 0;
  bool any = false;
  for (const auto& [k, v] : m) {
    if (k.rfind(name + "{", 0) == 0 && k.find(label) != std::string::npos) {
      total += v;
      any = true;
    }
  }
  return any ? total : 0;
}

}  // namespace

double DbFaults::Now() const { return std::chrono::duration<double>(clock_.Now() - t0_).count(); }

void DbFaults::Mark(double t0, double t1, std::string label) {
  std::lock_guard lock(mu_);
  markers_.push_back({t0, t1, std::move(label)});
}

void DbFaults::SetStage(int s) {
  {
    std::lock_guard lock(mu_);
    stage_ = std::max(stage_, s);
  }
  cv_.notify_all();
}

void DbFaults::WaitDone(int n) {
  std::unique_lock lock(mu_);
  cv_.wait_for(lock, kWaitBound, [&] { return done_ >= n; });
}

void DbFaults::Start() { thread_ = std::thread([this] { Run(); }); }

void DbFaults::Join() {
  if (thread_.joinable()) thread_.join();
}

void DbFaults::BeforeOperation(int index) {
  const int n = o_.operations;
  int need = index >= kReadOnlyGate * n / 10 ? 2 : (index >= kRestartGate * n / 10 ? 1 : 0);
  std::unique_lock lock(mu_);
  cv_.wait_for(lock, kWaitBound, [&] { return stage_ >= need; });
}

void DbFaults::OperationDone() {
  {
    std::lock_guard lock(mu_);
    done_++;
  }
  cv_.notify_all();
}

void DbFaults::Run() {
  const int n = o_.operations;
  // 1. In-doubt COMMITs: armed now; the api's next commits consume them. Their moments are read from the
  // proxy's counters while the later faults run (polled, so a marker is within ~50 ms of its cut).
  proxy_.Arm(PgCutTarget::kCommit, o_.commit_cuts, PgCutMode::kForwardThenCut);
  int64_t cuts_marked = 0;
  auto mark_cuts = [&] {
    int64_t c = proxy_.counts().commit_cuts;
    for (; cuts_marked < c; ++cuts_marked) Mark(Now(), 0, "COMMIT answer cut");
  };

  // 2. PostgreSQL restarted under load.
  WaitDone(kRestartAt * n / 10);
  mark_cuts();
  restart_before_ = StartTime(o_.admin_url, clock_);
  double r0 = Now();
  log::Warn("prove_fault", {{"fault", "postgres_restart"}, {"phase", "begin"}});
  int stop_rc = RunProgram({o_.stack, "stop", "postgres"});
  int start_rc = RunProgram({o_.stack, "start", "postgres"});
  restart_after_ = StartTime(o_.admin_url, clock_);
  double r1 = Now();
  restart_s_ = r1 - r0;
  if (stop_rc != 0 || start_rc != 0)
    restart_error_ = "stack stop/start postgres exited " + std::to_string(stop_rc) + "/" + std::to_string(start_rc);
  Mark(r0, r1, "PostgreSQL restarted");
  log::Warn("prove_fault", {{"fault", "postgres_restart"}, {"phase", "end"}, {"seconds", restart_s_}});
  SetStage(1);

  // 3. The ledger database read-only while the api keeps committing.
  WaitDone(kReadOnlyAt * n / 10);
  mark_cuts();
  std::string ident, literal;
  {
    auto c = store::PgConn::Connect(o_.admin_url, "paypath-prove-faults");
    char* q = c.ok() ? PQescapeIdentifier(c.value()->raw(), o_.ledger_db.c_str(), o_.ledger_db.size()) : nullptr;
    char* l = c.ok() ? PQescapeLiteral(c.value()->raw(), o_.ledger_db.c_str(), o_.ledger_db.size()) : nullptr;
    if (q && l) {
      ident = q;
      literal = l;
    }
    if (q) PQfreemem(q);
    if (l) PQfreemem(l);
  }
  double w0 = Now();
  Status ro = ident.empty() ? Status(Error::Unavailable("cannot quote the ledger database's name"))
                            : Exec(o_.admin_url, "ALTER DATABASE " + ident + " SET default_transaction_read_only = on");
  // What a failover to a read-only node looks like to the consumer: its sessions end, new ones are read-only.
  if (ro.ok())
    ro = Exec(o_.admin_url, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = " + literal +
                                " AND application_name = 'paypath-consumer'");
  log::Warn("prove_fault", {{"fault", "ledger_read_only"}, {"phase", "begin"}});
  SetStage(2);
  // The window itself is the fault's duration (not a synchronisation): hold it, noting COMMIT cuts meanwhile.
  while (Now() - w0 < o_.read_only_s) {
    mark_cuts();
    clock_.SleepFor(std::chrono::milliseconds(50));
  }
  // Charges committed but not yet posted: the backlog that waited on the read-only ledger.
  {
    auto a = store::PgConn::Connect(o_.api_db_url, "paypath-prove-faults");
    auto l = store::PgConn::Connect(o_.ledger_db_url, "paypath-prove-faults");
    if (a.ok() && l.ok())
      backlog_at_lift_ = Scalar(*a.value(), "SELECT count(*) FROM charges") -
                         Scalar(*l.value(), "SELECT count(*) FROM ledger_entries WHERE direction = 'debit'");
  }
  Status lift = ident.empty() ? ro : Exec(o_.admin_url, "ALTER DATABASE " + ident + " RESET default_transaction_read_only");
  double w1 = Now();
  read_only_held_s_ = w1 - w0;
  if (!ro.ok()) read_only_error_ = ro.error().ToString();
  else if (!lift.ok()) read_only_error_ = "lifting read-only: " + lift.error().ToString();
  Mark(w0, w1, "ledger database read-only");
  log::Warn("prove_fault", {{"fault", "ledger_read_only"}, {"phase", "end"}, {"seconds", read_only_held_s_}});
  SetStage(3);

  // Cuts not yet consumed are waited for until the load ends (the api commits on every charge).
  WaitDone(n);
  mark_cuts();
  proxy_.Arm(PgCutTarget::kCommit, 0);
  std::lock_guard lock(mu_);
  finished_ = true;
}

std::vector<VerdictRow> DbFaults::Rows(const std::map<std::string, double>& api,
                                       const std::map<std::string, double>& consumer) {
  std::vector<VerdictRow> v;
  const int64_t cuts = proxy_.counts().commit_cuts;
  const std::string want_cuts = std::to_string(o_.commit_cuts);
  v.push_back({"COMMIT answers cut after reaching PostgreSQL", std::to_string(cuts), want_cuts, cuts == o_.commit_cuts,
               "in-process PostgreSQL proxy between the api and the server (forward the COMMIT, cut the reply)"});
  double in_doubt = Sum(api, "paypath_idempotency_in_doubt_total", "phase=\"commit\"");
  v.push_back({"in-doubt COMMITs the api settled or named", Fmt(in_doubt, 0), ">= " + want_cuts, in_doubt >= o_.commit_cuts,
               "api /metrics paypath_idempotency_in_doubt_total{phase=\"commit\"} (a restart may add its own)"});
  bool restarted = restart_error_.empty() && !restart_before_.empty() && !restart_after_.empty() &&
                   restart_before_ != restart_after_;
  v.push_back({"PostgreSQL restarted under load",
               restart_before_.empty() ? "?" : restart_before_ + " -> " + (restart_after_.empty() ? "?" : restart_after_) +
                                                   " UTC (" + Fmt(restart_s_, 1) + " s)",
               "restarted", restarted,
               restart_error_.empty() ? "pg_postmaster_start_time() before and after `stack stop/start postgres`"
                                      : restart_error_});
  v.push_back({"api answers 503 (database unavailable)",
               Fmt(Sum(api, "paypath_idempotency_requests_total", "outcome=\"unavailable\""), 0), "", true,
               "api /metrics; the client retries them with the same key"});
  bool ro_ok = read_only_error_.empty() && read_only_held_s_ >= o_.read_only_s;
  v.push_back({"ledger database read-only", Fmt(read_only_held_s_, 1) + " s", Fmt(o_.read_only_s, 0) + " s", ro_ok,
               read_only_error_.empty() ? "ALTER DATABASE ... SET default_transaction_read_only = on, consumer "
                                          "sessions ended; RESET after"
                                        : read_only_error_});
  double refused = Sum(consumer, "paypath_consumer_database_errors_total", "sqlstate=\"25006\"");
  v.push_back({"consumer writes refused as read-only (25006)", Fmt(refused, 0), "> 0", refused > 0,
               "consumer /metrics paypath_consumer_database_errors_total{sqlstate=\"25006\"} (retried, never "
               "dead-lettered)"});
  v.push_back({"backlog waiting when read-only lifted", std::to_string(backlog_at_lift_), "> 0", backlog_at_lift_ > 0,
               "charges committed minus ledger effects applied, at the end of the window"});
  double dead = Sum(consumer, "paypath_dlq_messages_total", "reason=");
  v.push_back({"messages the consumer dead-lettered", Fmt(dead, 0), "0", dead == 0,
               "consumer /metrics paypath_dlq_messages_total (every reason)"});
  return v;
}

std::vector<FaultMarker> DbFaults::Markers() {
  std::lock_guard lock(mu_);
  return markers_;
}

}  // namespace paypath::chaos
