// Shared by the proof run's default flow (prove.cc) and its named scenarios (prove_scenarios.cc).
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>
#include <string>
#include <vector>

#include "chaos/pg_fault_proxy.h"
#include "chaos/prove.h"
#include "chaos/report.h"
#include "chaos/supervisor.h"
#include "client/client.h"
#include "common/clock.h"
#include "common/random.h"
#include "ledger/audit.h"
#include "store/pg.h"

namespace paypath::chaos {

struct Env {
  ProveOptions opt;
  std::string db_url;
  std::string ledger_db_url;  // the ledger's own database: the consumer writes here
  std::string queue;
  std::string tenant;
  std::string api_key;
  int api_port = 0, proxy_port = 0, proxy_metrics_port = 0, relay_port = 0, consumer_port = 0;
  ChildSpec api, relay;  // kept to restart them (outage: api; backlog: relay without its rate limit)
};

struct RunContext {
  const ProveOptions& o;
  Env& e;
  Supervisor& sup;
  Clock& clock;
  Random& rng;
  store::PgConn& db;
  store::PgConn& ledger_db;
  ReportData& report;
  std::mutex& timeline_mu;  // guards report.timeline, which the sampler thread appends to
};

std::string Hp(int port);
// Drops (WITH FORCE) and creates database `name` on the server of `admin_url` and returns a libpq
// conninfo for it (the admin URL's settings with dbname replaced). The name must pass
// CheckProveDatabaseName; it is quoted as an identifier all the same. Migrating is the caller's business.
Result<std::string> FreshDatabase(const std::string& admin_url, const std::string& name);
// Runs a program (no shell) with the inherited environment, its stdout going to stderr; its exit status,
// or -1 when it could not be run.
int RunProgram(const std::vector<std::string>& argv);
// The same, capturing the program's stdout into *out (its stderr is the prover's).
int RunProgramOutput(const std::vector<std::string>& argv, std::string* out);
// First column of the first row as an integer; -1 on error or NULL.
int64_t Scalar(store::PgConn& c, const std::string& sql);
// "key":<number> / "key":"<string>" from a flat JSON line (the client's transcript).
double JsonNumber(const std::string& line, const std::string& key);
std::string JsonString(const std::string& line, const std::string& key);
client::ClientOptions ProveClientOptions(const std::string& call_site);
// A figure with `decimals` digits after the point, for verdict rows and figure titles.
std::string Fmt(double v, int decimals = 2);

// The run's supervisor of this executable's children, with SIGINT and SIGTERM blocked and one thread that
// waits for them, stops every child and ends the process (the children run in their own process groups:
// Ctrl-C must not orphan them). Call before any other thread starts. Null if /proc/self/exe is unreadable.
std::unique_ptr<Supervisor> StartSupervisor(const std::string& log_dir, Clock& clock);
// One time-line sample: the outbox backlog and its oldest row's age (api database), the effects applied so
// far (ledger database), at `t` seconds. False when either query failed.
bool SampleTimeline(store::PgConn& api_db, store::PgConn& ledger_db, double t, TimePoint* p);
// Waits until everything committed has been published and applied (outbox empty, one debit posting per
// charge), polling every 100 ms up to `deadline`. False if it never got there.
bool AwaitQuiescence(store::PgConn& api_db, store::PgConn& ledger_db, Clock& clock,
                     std::chrono::steady_clock::time_point deadline);
// One verdict row per audit check (judged rows expect 0), or one failing row if the audit could not run.
void AddAuditRows(const Result<ledger::AuditReport>& audit, std::vector<VerdictRow>* v);
// Repeats each call that ended without an answer with its own key (it may or may not have charged), up to
// five rounds; leaves in `unfinished` those still without one.
void SettleUnfinished(client::RetryingClient& cl, const std::string& api_key,
                      std::vector<client::ChargeRequest>& unfinished);

// The settings of libpq `url` (URI or key=value; password, host lists and options kept) with each keyword of
// `overrides` replaced (or added), as a key=value conninfo. kInvalidArgument (naming no part of the URL, which
// may hold a password) when it does not parse.
Result<std::string> WithSettings(const std::string& url, const std::map<std::string, std::string>& overrides);
// The value libpq would use for `keyword` of `url` ("" when unset).
std::string ConninfoSetting(const std::string& url, const std::string& keyword);

// The default run's database faults, injected while its main workload runs, in this order (each waits for
// the load to have made progress, and holds back the later operations until it has started, so every fault
// lands under load whatever the number of operations):
//   1. the next `commit_cuts` COMMITs of the api cut after they reached PostgreSQL (in-process PgFaultProxy
//      between the api and the server, kForwardThenCut): in-doubt commits the api must settle;
//   2. PostgreSQL restarted (`$PAYPATH_STACK stop postgres`, `start postgres`) once a tenth of the load is
//      done: every connection of every process breaks;
//   3. the ledger database read-only for `read_only_s` (ALTER DATABASE ... default_transaction_read_only,
//      the consumer's sessions ended) once four tenths are done, while the rest of the load keeps the
//      api committing, so a backlog waits on the consumer.
// Rows() gives the verdict rows that show each fault really happened; Markers() their times for the report.
class DbFaults {
 public:
  struct Options {
    int operations = 0;
    int commit_cuts = 3;
    double read_only_s = 3;
    std::string stack;          // scripts/stack, the restart lever
    std::string admin_url;      // ALTER DATABASE, pg_terminate_backend, pg_postmaster_start_time()
    std::string api_db_url;     // the api's database (charges committed)
    std::string ledger_db_url;  // the ledger's database (effects applied)
    std::string ledger_db;      // its name
  };
  DbFaults(Options o, PgFaultProxy& proxy, Clock& clock, std::chrono::steady_clock::time_point t0)
      : o_(std::move(o)), proxy_(proxy), clock_(clock), t0_(t0) {}
  ~DbFaults() { Join(); }

  void Start();
  // Called by a worker before operation `index` (blocks until the fault that operation must follow has
  // begun) and after it ended.
  void BeforeOperation(int index);
  void OperationDone();
  // Waits for the injector to finish (it ends the read-only window and lifts every gate first).
  void Join();

  // `api` and `consumer` are the supervisor's metric totals after the run.
  std::vector<VerdictRow> Rows(const std::map<std::string, double>& api, const std::map<std::string, double>& consumer);
  std::vector<FaultMarker> Markers();

 private:
  void Run();
  void WaitDone(int n);
  void SetStage(int s);
  double Now() const;
  void Mark(double t0, double t1, std::string label);

  const Options o_;
  PgFaultProxy& proxy_;
  Clock& clock_;
  const std::chrono::steady_clock::time_point t0_;
  std::thread thread_;

  std::mutex mu_;
  std::condition_variable cv_;
  int stage_ = 0;  // 0 before the restart, 1 restarted, 2 read-only begun, 3 every fault over
  int done_ = 0;
  bool finished_ = false;
  std::vector<FaultMarker> markers_;
  std::string restart_before_, restart_after_, restart_error_;
  double restart_s_ = -1;
  std::string read_only_error_;
  double read_only_held_s_ = -1;
  int64_t backlog_at_lift_ = -1;
};

// Named scenarios. Each drives its load, adds verdict rows, steps and figures to ctx.report, and returns
// the number of logical operations it issued (every one must end as exactly one charge and one effect),
// or -1 when it could not run.
int RunOutageScenario(RunContext& ctx, std::chrono::steady_clock::time_point t0);
int RunBacklogScenario(RunContext& ctx, std::chrono::steady_clock::time_point t0);

// The proof run on the clustered stack (scripts/stack-ha): its own flow, prove_ha.cc.
int RunProveHa(const ProveOptions& o);

}  // namespace paypath::chaos
