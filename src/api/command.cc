// `paypath api` (the HTTP service) and `paypath migrate` (apply the schema).
#include "api/command.h"

#include <signal.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <fstream>
#include <functional>
#include <optional>
#include <thread>

#include "api/charges.h"
#include "api/router.h"
#include "common/cli.h"
#include "common/config.h"
#include "common/failpoints.h"
#include "common/log.h"
#include "common/metrics.h"
#include "http/server.h"
#include "ledger/schema.h"
#include "store/hot_tier.h"
#include "store/idempotency_store.h"
#include "store/instance_id.h"
#include "store/pg.h"
#include "store/schema.h"

namespace paypath::api {
namespace {

struct ApiFlags {
  std::string pg_url;
  std::string redis_url;
  std::string listen = "127.0.0.1:8080";
  std::string api_keys;
  // 4: no I/O thread waits for Redis or a batch any more, so more threads only add wake-ups (every Redis
  // reply and batch result is posted to a request's strand, waking an idle thread): on this 2-core machine
  // (wrk -c32/-c64, same-minute A/B) 2 threads served 4,890/6,064 new charges/s at 90/72 us api CPU each,
  // 4 threads 3,817/4,971 at 126/101 us, 32 threads 2,698-3,075/3,352-3,386 at 213-266 us; replays from
  // Redis 37-39k/s at 2-4 threads against 9-12k/s at 32. 4 rather than 2 keeps requests moving while one
  // thread is in a rare blocking PostgreSQL read (an in-doubt settling attempt may take ~1 s).
  int threads = 4;
  int64_t lease_ms = 10000;
  int64_t retention_s = 24 * 3600;
  int64_t purge_interval_ms = 60000;
  bool migrate = true;
  std::string final_metrics;
  // Connection limits and timeouts of the HTTP server; the defaults (and why) live in http::ServerOptions.
  int max_connections = http::ServerOptions{}.max_connections;
  int64_t read_timeout_ms = http::ServerOptions{}.read_timeout.count();
  int64_t idle_timeout_ms = http::ServerOptions{}.idle_timeout.count();
  // host:port of the ops listener (/metrics, /healthz, /readyz); empty: they are served on --listen.
  std::string ops_listen;
  // Server-side bounds of the api's PostgreSQL sessions; defaults (and why) in store::PgSessionOptions.
  int64_t pg_statement_timeout_ms = store::PgSessionOptions{}.statement_timeout.count();
  int64_t pg_idle_in_transaction_timeout_ms = store::PgSessionOptions{}.idle_in_transaction_timeout.count();
  // Group commit of claims and completions; defaults (and why) in store::GroupCommitOptions.
  bool group_commit = store::GroupCommitOptions{}.enabled;
  int batch_max = store::GroupCommitOptions{}.max_batch;
  int64_t batch_max_wait_us = store::GroupCommitOptions{}.max_wait.count();
  int batch_connections = store::GroupCommitOptions{}.connections;
  // Completed responses kept in process in front of Redis. 8192: a few MiB (a response is a few hundred
  // bytes), enough for every replay a client makes within a minute at a few hundred new charges/s.
  int64_t local_cache_entries = 8192;
  // Charges admitted and waiting for PostgreSQL before new ones are shed with 503; default (and why) in
  // api::ChargeOptions.
  int max_pending = ChargeOptions{}.max_pending;
};

// The ops listener: a scraper and a few probes, each answered in microseconds (or one PostgreSQL ping
// for /readyz). Two threads, so a /readyz waiting on a slow database never delays a scrape; 64
// connections, so a flood on the public port cannot reach it and it cannot take descriptors from it.
constexpr int kOpsThreads = 2;
constexpr int kOpsMaxConnections = 64;


int WaitForSignal() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  int sig = 0;
  sigwait(&set, &sig);
  return sig;
}

void BlockSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

// How often a running api re-reads the database instance namespace, so a failover or a restore behind a
// stable address (new timeline, rotated id) stops cache replays within this long even without a restart.
constexpr auto kNamespaceRefresh = std::chrono::seconds(5);
// How often the in-doubt resolver's background pass runs; each entry also waits its own retry interval.
constexpr auto kResolverInterval = std::chrono::milliseconds(200);
// At SIGTERM, how long requests in flight get to finish on their own (a charge takes milliseconds; 5 s is
// within common supervisors' 10-30 s grace period, leaving room for a hung batch's own timeouts).
constexpr auto kShutdownDrain = std::chrono::seconds(5);

int RunMigrate(const std::string& pg_url, bool rotate_instance_id = false) {
  auto conn = store::PgConn::Connect(pg_url, "paypath-migrate");
  if (!conn.ok()) {
    log::Error("migrate_failed", {{"error", conn.error().ToString()}});
    return 1;
  }
  Status s = store::Migrate(*conn.value());
  if (!s.ok()) {
    log::Error("migrate_failed", {{"error", s.error().ToString()}});
    return 1;
  }
  log::Info("migrated", {{"schema_version", 1}});
  if (rotate_instance_id) {
    // After a restore: every cached response of the database as it was is unreachable from now on.
    auto id = store::RotateInstanceId(*conn.value());
    if (!id.ok()) {
      log::Error("rotate_instance_id_failed", {{"error", id.error().ToString()}});
      return 1;
    }
    log::Info("instance_id_rotated", {{"instance_id", id.value()}});
  }
  return 0;
}

// The hot tier's namespace for the database at `pool`, or "" when it cannot be read now.
std::string ReadNamespace(store::PgPool& pool) {
  auto conn = pool.Acquire();
  if (!conn.ok()) return "";
  auto id = store::ReadInstanceIdentity(*conn.value());
  if (!id.ok()) {
    log::Warn("instance_namespace_unreadable", {{"error", id.error().ToString()}});
    return "";
  }
  return id->Namespace();
}

int RunApi(const ApiFlags& f) {
  log::SetComponent("api");
  if (Status s = failpoints::ConfigureFromEnv(); !s.ok()) {
    log::Error("bad_failpoints", {{"error", s.error().message}});
    return 2;
  }
  auto keys = ParseApiKeys(f.api_keys);
  if (!keys.ok()) {
    log::Error("bad_api_keys", {{"error", keys.error().message}});
    return 2;
  }
  auto hp = ParseHostPort(f.listen);
  if (!hp.ok()) {
    log::Error("bad_listen", {{"error", hp.error().message}});
    return 2;
  }
  std::optional<HostPort> ops_hp;
  if (!f.ops_listen.empty()) {
    auto o = ParseHostPort(f.ops_listen);
    if (!o.ok()) {
      log::Error("bad_ops_listen", {{"error", o.error().message}});
      return 2;
    }
    ops_hp = o.value();
  }
  if (f.pg_url.empty()) {
    log::Error("missing_setting", {{"setting", "PAYPATH_PG_URL / --pg-url"}});
    return 2;
  }
  ChargeOptions opts;
  opts.lease = std::chrono::milliseconds(f.lease_ms);
  opts.retention = std::chrono::milliseconds(f.retention_s * 1000);
  opts.max_pending = f.max_pending;
  if (Status s = opts.Validate(); !s.ok()) {
    log::Error("bad_retention", {{"error", s.error().message}});
    return 2;
  }
  if (f.migrate && RunMigrate(f.pg_url) != 0) return 1;

  BlockSignals();  // before any thread starts, so only WaitForSignal receives SIGINT/SIGTERM
  Clock& clock = SystemClock::Instance();
  Random& random = SystemRandom::Instance();
  // One connection per handler thread plus one for the purge loop and readiness checks.
  store::PgSessionOptions session = store::PgSessionOptions::Api();
  session.statement_timeout = std::chrono::milliseconds(f.pg_statement_timeout_ms);
  session.idle_in_transaction_timeout = std::chrono::milliseconds(f.pg_idle_in_transaction_timeout_ms);
  store::GroupCommitOptions gc;
  gc.enabled = f.group_commit;
  gc.max_batch = f.batch_max;
  gc.max_wait = std::chrono::microseconds(f.batch_max_wait_us);
  gc.connections = f.batch_connections;
  if (Status s = gc.Validate(); !s.ok()) {
    log::Error("bad_group_commit", {{"error", s.error().message}});
    return 2;
  }
  // Plus one connection per batch in flight (two phases).
  store::PgPool pool(f.pg_url, "paypath-api", f.threads + 2 + (gc.enabled ? 2 * gc.connections : 0), session);
  store::IdempotencyStore store(pool, gc, clock);
  // The database instance namespaces the hot tier (see store/instance_id.h). Unknown yet (database down at
  // start with --no-migrate): the tier stays cold until the refresher below reads it.
  std::string ns = ReadNamespace(pool);
  store::HotTier hot(f.redis_url, ns, clock, std::chrono::milliseconds(100), std::chrono::milliseconds(1000),
                     static_cast<size_t>(f.local_cache_entries));
  log::Info("hot_tier_namespace", {{"namespace", ns}});
  ChargeApi charges(keys.value(), store, hot, clock, random, opts);
  Router router(charges, store, clock, ops_hp ? Routes::kApi : Routes::kAll);
  Router ops_router(charges, store, clock, Routes::kOps);

  http::ServerOptions so;
  so.host = hp->host;
  so.port = hp->port;
  so.threads = f.threads;
  so.max_connections = f.max_connections;
  so.read_timeout = std::chrono::milliseconds(f.read_timeout_ms);
  so.idle_timeout = std::chrono::milliseconds(f.idle_timeout_ms);
  auto server = http::Server::Start(
      so, [&router](const http::HttpRequest& r, http::ResponderPtr out) { router.HandleAsync(r, std::move(out)); });
  if (!server.ok()) {
    log::Error("listen_failed", {{"error", server.error().message}});
    return 1;
  }
  log::Info("api_listening", {{"host", hp->host}, {"port", static_cast<int>(server.value()->port())},
                              {"threads", f.threads}, {"redis", !f.redis_url.empty()}});

  // After the API port: a probe that gets 200 from /healthz knows the API port is bound too.
  std::unique_ptr<http::Server> ops_server;
  if (ops_hp) {
    http::ServerOptions oo;
    oo.name = "ops";
    oo.host = ops_hp->host;
    oo.port = ops_hp->port;
    oo.threads = kOpsThreads;
    oo.max_connections = kOpsMaxConnections;
    oo.fd_reserve = 0;  // inside the api listener's reserve
    auto s = http::Server::Start(oo, [&ops_router](const http::HttpRequest& r) { return ops_router.Handle(r); });
    if (!s.ok()) {
      log::Error("listen_failed", {{"listener", "ops"}, {"error", s.error().message}});
      return 1;
    }
    ops_server = std::move(s.value());
    log::Info("ops_listening", {{"host", ops_hp->host}, {"port", static_cast<int>(ops_server->port())}});
  }

  // Background loops share one stop flag: the signal sets it, each loop checks it between runs and sleeps
  // on it in between.
  std::mutex stop_mu;
  std::condition_variable stop_cv;
  bool stop = false;  // protected by stop_mu
  auto stopped = [&] {
    std::lock_guard lock(stop_mu);
    return stop;
  };
  auto every = [&](std::chrono::milliseconds interval, std::function<void()> run) {
    return std::thread([&, interval, run] {
      while (!stopped()) {
        run();
        std::unique_lock lock(stop_mu);
        stop_cv.wait_for(lock, interval, [&] { return stop; });
      }
    });
  };
  // Retention: a bounded loop deletes expired keys in batches of 1000 so no single DELETE holds locks long.
  std::thread purger = every(std::chrono::milliseconds(f.purge_interval_ms), [&] {
    for (int i = 0; i < 100 && !stopped(); ++i) {
      auto n = store.PurgeExpired(1000, opts.retention);
      if (!n.ok() || n.value() < 1000) break;
    }
  });
  // In-doubt attempts are settled as soon as the database answers (api/in_doubt.h).
  std::thread resolver = every(kResolverInterval, [&] { (void)charges.resolver().RunOnce(); });
  // A restore or failover behind the same address changes the namespace; follow it.
  std::thread namespacer = every(kNamespaceRefresh, [&] {
    std::string now = ReadNamespace(pool);
    if (now.empty() || now == hot.ns()) return;
    log::Warn("hot_tier_namespace_changed", {{"from", hot.ns()}, {"to", now}});
    hot.SetNamespace(now);
  });

  int sig = WaitForSignal();
  log::Info("api_stopping", {{"signal", sig}});
  {
    std::lock_guard lock(stop_mu);
    stop = true;
  }
  stop_cv.notify_all();
  purger.join();
  resolver.join();
  namespacer.join();
  // In-flight requests finish first. One that still waits for a batch after the drain (a database that
  // stopped answering) is answered by stopping the batches, which waits for the batch in flight (bounded
  // by the session's statement and TCP timeouts) and fails the queued items, while the I/O threads still
  // run to write the answers; only then do the server's threads and ChargeApi go away.
  if (int left = server.value()->Drain(kShutdownDrain); left > 0)
    log::Warn("api_stopping_with_requests_waiting", {{"requests", left}});
  store.StopBatches();
  server.value().reset();
  ops_server.reset();
  if (!f.final_metrics.empty()) {
    // A supervisor that stops us still learns the counts incremented after its last scrape.
    std::ofstream(f.final_metrics) << metrics::Registry::Default().Render();
  }
  return 0;
}

}  // namespace

void AddCommands(CLI::App& app) {
  auto flags = std::make_shared<ApiFlags>();
  CLI::App* api = app.add_subcommand("api", "Serve the charges HTTP API");
  api->add_option("--pg-url", flags->pg_url, "PostgreSQL URL")->envname("PAYPATH_PG_URL");
  api->add_option("--redis-url", flags->redis_url, "Redis URL for the hot tier (empty: no hot tier)")
      ->envname("PAYPATH_REDIS_URL");
  api->add_option("--listen", flags->listen, "host:port to listen on")->envname("PAYPATH_LISTEN")->capture_default_str();
  api->add_option("--api-keys", flags->api_keys, "API keys as key:tenant,key:tenant")->envname("PAYPATH_API_KEYS");
  api->add_option("--threads", flags->threads, "I/O threads (none waits for Redis or PostgreSQL batches)")->capture_default_str()->check(CLI::Range(1, 256));
  api->add_option("--lease-ms", flags->lease_ms, "In-flight lease on an idempotency key, ms")->capture_default_str()
      ->check(CLI::Range(int64_t{50}, int64_t{600000}));
  api->add_option("--retention-s", flags->retention_s,
                  "How long a completed key's stored response is kept, s (at least the lease plus the 600 s client "
                  "retry horizon; the key never charges twice even after)")
      ->capture_default_str()->check(CLI::Range(int64_t{1}, int64_t{30 * 86400}));
  api->add_option("--purge-interval-ms", flags->purge_interval_ms, "How often the retention loop runs, ms")
      ->capture_default_str()->check(CLI::Range(int64_t{10}, int64_t{3600000}));
  api->add_option("--max-connections", flags->max_connections,
                  "Open HTTP connections at most; more get 503 too-many-connections and are closed")
      ->envname("PAYPATH_MAX_CONNECTIONS")->capture_default_str()->check(CLI::Range(1, 1000000));
  api->add_option("--read-timeout-ms", flags->read_timeout_ms,
                  "A request (from its first byte, or the connection's start) must arrive within this, ms")
      ->envname("PAYPATH_READ_TIMEOUT_MS")->capture_default_str()->check(CLI::Range(int64_t{100}, int64_t{600000}));
  api->add_option("--idle-timeout-ms", flags->idle_timeout_ms,
                  "An idle keep-alive connection is closed after this, ms")
      ->envname("PAYPATH_IDLE_TIMEOUT_MS")->capture_default_str()->check(CLI::Range(int64_t{100}, int64_t{3600000}));
  api->add_option("--ops-listen", flags->ops_listen,
                  "host:port for /metrics, /healthz and /readyz (then absent from --listen); empty: on --listen")
      ->envname("PAYPATH_OPS_LISTEN");
  api->add_option("--pg-statement-timeout-ms", flags->pg_statement_timeout_ms,
                  "PostgreSQL statement_timeout of the api's sessions, ms")
      ->envname("PAYPATH_PG_STATEMENT_TIMEOUT_MS")->capture_default_str()
      ->check(CLI::Range(int64_t{100}, int64_t{3600000}));
  api->add_option("--pg-idle-in-transaction-timeout-ms", flags->pg_idle_in_transaction_timeout_ms,
                  "PostgreSQL idle_in_transaction_session_timeout of the api's sessions, ms")
      ->envname("PAYPATH_PG_IDLE_IN_TRANSACTION_TIMEOUT_MS")->capture_default_str()
      ->check(CLI::Range(int64_t{100}, int64_t{3600000}));
  api->add_flag("!--no-group-commit", flags->group_commit,
                "One statement/transaction per claim and per completion instead of batches");
  api->add_option("--max-pending", flags->max_pending,
                  "Charges waiting for PostgreSQL at most; beyond it new charges get 503 /problems/overloaded")
      ->envname("PAYPATH_MAX_PENDING")->capture_default_str()
      ->check(CLI::Range(1, 1 << 20));
  api->add_option("--batch-max", flags->batch_max, "Group commit: items per batch at most")
      ->envname("PAYPATH_BATCH_MAX")->capture_default_str()->check(CLI::Range(1, 4096));
  api->add_option("--batch-max-wait-us", flags->batch_max_wait_us,
                  "Group commit: the longest a request waits for a fuller batch while another is in flight, us")
      ->envname("PAYPATH_BATCH_MAX_WAIT_US")->capture_default_str()->check(CLI::Range(int64_t{0}, int64_t{100000}));
  api->add_option("--batch-connections", flags->batch_connections,
                  "Group commit: batches in flight at once per phase (claim, complete)")
      ->envname("PAYPATH_BATCH_CONNECTIONS")->capture_default_str()->check(CLI::Range(1, 16));
  api->add_option("--local-cache-entries", flags->local_cache_entries,
                  "Completed responses cached in process in front of Redis (0: none)")
      ->envname("PAYPATH_LOCAL_CACHE_ENTRIES")->capture_default_str()->check(CLI::Range(int64_t{0}, int64_t{1000000}));
  api->add_flag("!--no-migrate", flags->migrate, "Do not apply the schema at start");
  api->add_option("--final-metrics", flags->final_metrics, "On a graceful stop, write the final /metrics text here");
  api->callback([flags] { cli::SetExitCode(RunApi(*flags)); });

  struct MigrateFlags {
    std::string pg_url;
    std::string ledger_pg_url;
    bool rotate = false;
  };
  auto mf = std::make_shared<MigrateFlags>();
  CLI::App* mig = app.add_subcommand("migrate", "Apply the database schema (idempotent)");
  mig->add_option("--pg-url", mf->pg_url, "PostgreSQL URL")->envname("PAYPATH_PG_URL")->required();
  mig->add_flag("--rotate-instance-id", mf->rotate,
                "Give the database a new instance id (after a restore: the hot tier then never replays what the "
                "restored database does not hold)");
  mig->add_option("--ledger-pg-url", mf->ledger_pg_url,
                  "The ledger's PostgreSQL URL: migrate it too (sql/ledger_schema.sql)")
      ->envname("PAYPATH_LEDGER_PG_URL");
  mig->callback([mf] {
    log::SetComponent("migrate");
    int rc = RunMigrate(mf->pg_url, mf->rotate);
    if (rc == 0 && !mf->ledger_pg_url.empty()) {
      Status s = ledger::MigrateDatabase(mf->ledger_pg_url);
      if (!s.ok()) log::Error("ledger_migrate_failed", {{"error", s.error().ToString()}});
      else log::Info("ledger_migrated", {{"schema_version", 1}});
      rc = s.ok() ? 0 : 1;
    }
    cli::SetExitCode(rc);
  });
}

}  // namespace paypath::api
