// Shared by the proof run's default flow (prove.cc) and its named scenarios (prove_scenarios.cc).
#pragma once

#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

#include "chaos/prove.h"
#include "chaos/report.h"
#include "chaos/supervisor.h"
#include "client/client.h"
#include "common/clock.h"
#include "common/random.h"
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
// First column of the first row as an integer; -1 on error or NULL.
int64_t Scalar(store::PgConn& c, const std::string& sql);
// "key":<number> / "key":"<string>" from a flat JSON line (the client's transcript).
double JsonNumber(const std::string& line, const std::string& key);
std::string JsonString(const std::string& line, const std::string& key);
client::ClientOptions ProveClientOptions(const std::string& call_site);

// Named scenarios. Each drives its load, adds verdict rows, steps and figures to ctx.report, and returns
// the number of logical operations it issued (every one must end as exactly one charge and one effect),
// or -1 when it could not run.
int RunOutageScenario(RunContext& ctx, std::chrono::steady_clock::time_point t0);
int RunBacklogScenario(RunContext& ctx, std::chrono::steady_clock::time_point t0);

}  // namespace paypath::chaos
