#include "chaos/prove.h"
#include "chaos/prove_internal.h"

#include <libpq-fe.h>
#include <pthread.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <atomic>
#include <barrier>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <thread>

#include "api/validation.h"
#include "broker/amqp.h"
#include "broker/topology.h"
#include "chaos/report.h"
#include "chaos/supervisor.h"
#include "client/client.h"
#include "client/http_transport.h"
#include "common/config.h"
#include "common/log.h"
#include "common/metrics.h"
#include "common/random.h"
#include "http/metrics_server.h"
#include "ledger/audit.h"
#include "ledger/schema.h"
#include "store/idempotency_store.h"
#include "store/pg.h"
#include "store/schema.h"

namespace paypath::chaos {

std::string Hp(int port) { return "127.0.0.1:" + std::to_string(port); }

int64_t Scalar(store::PgConn& c, const std::string& sql) {
  auto r = c.ExecSimple(sql);
  if (!r.ok() || r->rows() == 0 || r->IsNull(0, 0)) return -1;
  return r->GetInt(0, 0);
}

// Reads "key":<number> from a transcript line (the client writes flat JSON objects).
double JsonNumber(const std::string& line, const std::string& key) {
  size_t p = line.find("\"" + key + "\":");
  if (p == std::string::npos) return -1;
  return std::strtod(line.c_str() + p + key.size() + 3, nullptr);
}

std::string JsonString(const std::string& line, const std::string& key) {
  size_t p = line.find("\"" + key + "\":\"");
  if (p == std::string::npos) return "";
  size_t s = p + key.size() + 4;
  size_t e = line.find('"', s);
  return line.substr(s, e - s);
}

client::ClientOptions ProveClientOptions(const std::string& call_site) {
  client::ClientOptions o;
  o.call_site = call_site;
  // Generous attempts and deadline: under injected faults a call should end with an answer, not give up.
  o.max_attempts = 8;
  o.base = std::chrono::milliseconds(50);
  o.cap = std::chrono::milliseconds(1000);
  o.attempt_timeout = std::chrono::milliseconds(3000);
  o.deadline = std::chrono::milliseconds(30000);
  return o;
}

std::string Fmt(double v, int decimals) {
  char b[32];
  std::snprintf(b, sizeof b, "%.*f", decimals, v);
  return b;
}

std::unique_ptr<Supervisor> StartSupervisor(const std::string& log_dir, Clock& clock) {
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  char self[4096];
  ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  if (n <= 0) return nullptr;
  self[n] = '\0';
  auto sup = std::make_unique<Supervisor>(self, log_dir, clock);
  std::thread([s = sup.get(), stop_signals] {
    int sig = 0;
    sigwait(&stop_signals, &sig);
    log::Warn("prove_interrupted", {{"signal", sig}});
    s->StopAll();
    std::_Exit(128 + sig);
  }).detach();
  return sup;
}

bool SampleTimeline(store::PgConn& api_db, store::PgConn& ledger_db, double t, TimePoint* p) {
  auto r = api_db.ExecSimple(
      "SELECT (SELECT count(*) FROM outbox WHERE published_at IS NULL), "
      "COALESCE((SELECT EXTRACT(EPOCH FROM now() - min(created_at)) FROM outbox WHERE published_at IS NULL), 0)");
  auto l = ledger_db.ExecSimple("SELECT count(*) FROM ledger_entries WHERE direction = 'debit'");
  if (!r.ok() || r->rows() != 1 || !l.ok() || l->rows() != 1) return false;
  p->t = t;
  p->outbox_backlog = r->GetDouble(0, 0);
  p->outbox_oldest_age_s = r->GetDouble(0, 1);
  p->effects_total = l->GetDouble(0, 0);
  return true;
}

bool AwaitQuiescence(store::PgConn& api_db, store::PgConn& ledger_db, Clock& clock,
                     std::chrono::steady_clock::time_point deadline) {
  while (clock.Now() < deadline) {
    int64_t backlog = Scalar(api_db, "SELECT count(*) FROM outbox WHERE published_at IS NULL");
    int64_t charges = Scalar(api_db, "SELECT count(*) FROM charges");
    int64_t applied = Scalar(ledger_db, "SELECT count(*) FROM ledger_entries WHERE direction = 'debit'");
    if (backlog == 0 && charges >= 0 && applied == charges) return true;
    clock.SleepFor(std::chrono::milliseconds(100));
  }
  return false;
}

void AddAuditRows(const Result<ledger::AuditReport>& audit, std::vector<VerdictRow>* v) {
  if (!audit.ok()) {
    v->push_back({"audit", audit.error().ToString(), "ran", false, "paypath audit"});
    return;
  }
  for (const auto& c : audit->checks) {
    bool judged = c.status == "ok" || c.status == "FAIL";
    v->push_back({"audit: " + c.name, std::to_string(c.value), judged ? "0" : "", c.status != "FAIL",
                  "paypath audit" + (c.detail.empty() ? "" : ": " + c.detail)});
  }
}

void SettleUnfinished(client::RetryingClient& cl, const std::string& api_key,
                      std::vector<client::ChargeRequest>& unfinished) {
  for (int round = 0; round < 5 && !unfinished.empty(); ++round) {
    std::vector<client::ChargeRequest> still;
    for (auto& req : unfinished)
      if (!cl.Charge(req, api_key).ok()) still.push_back(req);
    unfinished = std::move(still);
  }
}

Status CheckProveDatabaseName(const std::string& name) {
  static const std::string kPrefix = "paypath_prove";
  bool ok = name.rfind(kPrefix, 0) == 0 && name.size() <= kPrefix.size() + kMaxProveSuffix &&
            std::all_of(name.begin(), name.end(), [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'; });
  if (ok) return OkStatus();
  return Error::InvalidArgument("--database must be paypath_prove followed by at most " +
                                std::to_string(kMaxProveSuffix) +
                                " of [a-z0-9_] (the run drops and re-creates it, so it takes no other name)");
}

namespace {

// libpq conninfo values go in single quotes with \ and \' escaped.
std::string ConninfoValue(const char* v) {
  std::string out = "'";
  for (const char* p = v; *p; ++p) {
    if (*p == '\\' || *p == '\'') out += '\\';
    out += *p;
  }
  return out + "'";
}

}  // namespace

Result<std::string> WithSettings(const std::string& url, const std::map<std::string, std::string>& overrides) {
  char* err = nullptr;
  PQconninfoOption* opts = PQconninfoParse(url.c_str(), &err);
  if (opts == nullptr) {
    // libpq's message may quote the input, password included: say only what is wrong.
    if (err) PQfreemem(err);
    return Error::InvalidArgument("the PostgreSQL admin URL is not a libpq URI or conninfo string");
  }
  std::string out;
  for (PQconninfoOption* o = opts; o->keyword; ++o) {
    if (overrides.count(o->keyword) || o->val == nullptr || *o->val == '\0') continue;
    out += std::string(o->keyword) + "=" + ConninfoValue(o->val) + " ";
  }
  PQconninfoFree(opts);
  for (const auto& [k, v] : overrides) out += k + "=" + ConninfoValue(v.c_str()) + " ";
  out.pop_back();
  return out;
}

std::string ConninfoSetting(const std::string& url, const std::string& keyword) {
  char* err = nullptr;
  PQconninfoOption* opts = PQconninfoParse(url.c_str(), &err);
  if (opts == nullptr) {
    if (err) PQfreemem(err);
    return "";
  }
  std::string v;
  for (PQconninfoOption* o = opts; o->keyword; ++o)
    if (keyword == o->keyword && o->val != nullptr) v = o->val;
  PQconninfoFree(opts);
  return v;
}

Result<std::string> FreshDatabase(const std::string& admin_url, const std::string& name) {
  Status valid = CheckProveDatabaseName(name);
  if (!valid.ok()) return valid.error();
  auto url = WithSettings(admin_url, {{"dbname", name}});
  if (!url.ok()) return url.error();
  auto admin = store::PgConn::Connect(admin_url, "paypath-prove");
  if (!admin.ok()) return admin.error();
  char* quoted = PQescapeIdentifier(admin.value()->raw(), name.c_str(), name.size());
  if (quoted == nullptr) return Error::InvalidArgument("cannot quote database name " + name);
  std::string ident = quoted;
  PQfreemem(quoted);
  auto dropped = admin.value()->ExecSimple("DROP DATABASE IF EXISTS " + ident + " WITH (FORCE)");
  if (!dropped.ok()) return dropped.error();
  auto created = admin.value()->ExecSimple("CREATE DATABASE " + ident);
  if (!created.ok()) return created.error();
  return url;
}

int RunProgram(const std::vector<std::string>& argv) {
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    dup2(2, 1);  // the prover's stdout is the verdict table
    execv(args[0], args.data());
    _exit(127);
  }
  int st = 0;
  if (waitpid(pid, &st, 0) != pid) return -1;
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

int RunProgramOutput(const std::vector<std::string>& argv, std::string* out) {
  int fds[2];
  if (pipe(fds) != 0) return -1;
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = fork();
  if (pid < 0) {
    close(fds[0]);
    close(fds[1]);
    return -1;
  }
  if (pid == 0) {
    dup2(fds[1], 1);
    close(fds[0]);
    close(fds[1]);
    execv(args[0], args.data());
    _exit(127);
  }
  close(fds[1]);
  char buf[4096];
  ssize_t n;
  while ((n = read(fds[0], buf, sizeof buf)) > 0 || (n < 0 && errno == EINTR))
    if (n > 0) out->append(buf, static_cast<size_t>(n));
  close(fds[0]);
  int st = 0;
  if (waitpid(pid, &st, 0) != pid) return -1;
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

namespace {

// report/metrics and report/logs exist, and nothing of an earlier run's logs or transcript is left.
Status PrepareReportDir(const std::string& dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  for (const char* sub : {"metrics", "logs"}) {
    fs::create_directories(fs::path(dir) / sub, ec);
    if (ec) return Error::Unavailable("cannot create " + (fs::path(dir) / sub).string() + ": " + ec.message());
  }
  for (const auto& entry : fs::directory_iterator(fs::path(dir) / "logs", ec))
    if (entry.path().extension() == ".log") fs::remove(entry.path(), ec);
  fs::remove(fs::path(dir) / "transcript.jsonl", ec);
  return OkStatus();
}

// Step: two requests with one key released together, straight to the api (no proxy, no retries).
StepResult StepSimultaneous(const Env& e, Clock& clock, Random& rng, store::PgConn& db) {
  auto url = client::ParseHttpUrl("http://" + Hp(e.api_port));
  client::HttpTransport t(url.value(), clock);
  std::string key = "prove-simultaneous-" + SystemRandom::Instance().Hex128();
  client::HttpRequest req;
  req.method = "POST";
  req.target = "/v1/charges";
  req.headers = {{"Authorization", "Bearer " + e.api_key}, {"Idempotency-Key", key},
                 {"Content-Type", "application/json"}};
  req.body = R"({"account_id":"acct_sim","amount":777,"currency":"USD"})";
  std::barrier sync(2);
  client::Exchange out[2];
  auto go = [&](int i) {
    sync.arrive_and_wait();
    out[i] = t.RoundTrip(req, std::chrono::seconds(5));
  };
  std::thread a(go, 0), b(go, 1);
  a.join();
  b.join();
  int created = 0, other = 0;
  std::string seen;
  for (auto& x : out) {
    int st = x.kind == client::Exchange::Kind::kResponse ? x.response.status : 0;
    bool replayed = x.response.Header("Idempotent-Replayed").value_or("") == "true";
    seen += (seen.empty() ? "" : ", ") + std::to_string(st) + (replayed ? " (replay)" : "");
    if (st == 201 && !replayed) created++;
    else if (st == 409 || (st == 201 && replayed)) other++;
  }
  int64_t charges = Scalar(db, "SELECT count(*) FROM charges WHERE idem_key = '" + key + "'");
  bool ok = created == 1 && other == 1 && charges == 1;
  return {"two simultaneous requests with one key", ok,
          "answers: " + seen + "; charges for the key: " + std::to_string(charges) + " (want one 201, the other 409 "
          "or a replay, one charge)"};
}

// Step: a key reused with a changed body gets 422 and no second charge.
StepResult StepChangedBody(const Env& e, client::RetryingClient& direct, store::PgConn& db, Random& rng) {
  client::ChargeRequest c{"acct_422", 4200, "EUR", "", "prove-422-" + SystemRandom::Instance().Hex128()};
  auto first = direct.Charge(c, e.api_key);
  c.amount = 4300;
  auto second = direct.Charge(c, e.api_key);
  int64_t charges = Scalar(db, "SELECT count(*) FROM charges WHERE idem_key = '" + c.idempotency_key + "'");
  bool ok = first.outcome == client::Outcome::kCreated && second.last.response.status == 422 && charges == 1;
  return {"key reused with a changed body", ok,
          std::string("first: ") + client::OutcomeName(first.outcome) + ", changed body: " +
              std::to_string(second.last.response.status) + " after " + std::to_string(second.attempts) +
              " attempt(s) (never retried); charges for the key: " + std::to_string(charges)};
}

// Step: a key held in flight by a "crashed" owner: the client gets 409 + Retry-After, waits at least that
// long, and completes once the lease expires and is taken over.
StepResult StepRetryAfter(const Env& e, Clock& clock, Random& rng, store::PgPool& pool) {
  client::ChargeRequest c{"acct_ra", 999, "GBP", "", "prove-retry-after-" + SystemRandom::Instance().Hex128()};
  auto parsed = api::ParseChargeRequest(client::ChargeBody(c));
  if (!std::holds_alternative<api::ChargeRequest>(parsed)) return {"409 with Retry-After honoured", false, "bad body"};
  std::string fp = api::Fingerprint("POST", "/v1/charges", std::get<api::ChargeRequest>(parsed).canonical_body);
  store::IdempotencyStore st(pool);
  auto claim = st.Claim(e.tenant, c.idempotency_key, fp, "crashed-owner", std::chrono::milliseconds(1500));
  if (!claim.ok()) return {"409 with Retry-After honoured", false, claim.error().ToString()};
  auto url = client::ParseHttpUrl("http://" + Hp(e.api_port));
  client::HttpTransport t(url.value(), clock);
  client::MemoryTranscript transcript;
  client::RetryingClient cl(t, clock, rng, ProveClientOptions("prove_retry_after"), nullptr, &transcript);
  auto res = cl.Charge(c, e.api_key);
  bool saw_409 = false, honoured = true;
  std::string waits;
  for (const auto& line : transcript.lines()) {
    std::string ra = JsonString(line, "retry_after");
    double delay = JsonNumber(line, "delay_ms");
    if (JsonNumber(line, "status") == 409) saw_409 = true;
    if (!ra.empty() && delay > 0) {
      waits += (waits.empty() ? "" : ", ") + std::to_string(static_cast<int>(delay)) + " ms (Retry-After " + ra + " s)";
      if (delay < std::atof(ra.c_str()) * 1000) honoured = false;
    }
  }
  bool ok = saw_409 && honoured && res.outcome == client::Outcome::kCreated && !waits.empty();
  return {"409 with Retry-After honoured", ok,
          "waits chosen after a Retry-After: " + (waits.empty() ? std::string("none") : waits) + "; final: " +
              client::OutcomeName(res.outcome) + " after " + std::to_string(res.attempts) + " attempts"};
}

// Step: 64 calls fail at the same instant (connection refused); full jitter spreads their first retries
// uniformly over [0, min(cap, base*2)). Judged by a Kolmogorov-Smirnov test against that uniform law.
StepResult StepJitter(Clock& clock, Random& rng, std::vector<double>* delays, double* window_ms) {
  const int kCalls = 64;
  auto url = client::ParseHttpUrl("http://" + Hp(FreePort()));  // nothing listens there
  client::HttpTransport t(url.value(), clock);
  client::ClientOptions o = ProveClientOptions("prove_jitter");
  o.max_attempts = 2;
  o.base = std::chrono::milliseconds(100);
  o.cap = std::chrono::milliseconds(1000);
  *window_ms = static_cast<double>(std::min(o.cap.count(), o.base.count() * 2));
  client::MemoryTranscript transcript;
  client::RetryingClient cl(t, clock, rng, o, nullptr, &transcript);
  std::barrier sync(kCalls);
  std::vector<std::thread> threads;
  for (int i = 0; i < kCalls; ++i)
    threads.emplace_back([&] {
      sync.arrive_and_wait();
      (void)cl.Charge({"acct_jitter", 1, "USD", "", ""}, "unused");
    });
  for (auto& th : threads) th.join();
  for (const auto& line : transcript.lines())
    if (JsonNumber(line, "attempt") == 1) delays->push_back(JsonNumber(line, "delay_ms"));
  std::vector<double> s = *delays;
  std::sort(s.begin(), s.end());
  double d = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    double f = std::clamp(s[i] / *window_ms, 0.0, 1.0);
    d = std::max({d, std::fabs(f - static_cast<double>(i) / s.size()), std::fabs(f - static_cast<double>(i + 1) / s.size())});
  }
  // 1.63/sqrt(n): the KS critical value at the 1% level.
  double critical = s.empty() ? 0 : 1.63 / std::sqrt(static_cast<double>(s.size()));
  double spread = s.empty() ? 0 : s.back() - s.front();
  bool ok = static_cast<int>(s.size()) == kCalls && d < critical && spread > *window_ms / 2;
  char buf[256];
  std::snprintf(buf, sizeof buf,
                "%zu synchronized failures; first-retry waits from %.0f to %.0f ms over a %.0f ms window; "
                "KS distance to uniform %.3f (critical %.3f at 1%%)",
                s.size(), s.empty() ? 0 : s.front(), s.empty() ? 0 : s.back(), *window_ms, d, critical);
  return {"synchronized failures spread out (full jitter)", ok, buf};
}

}  // namespace

int RunProve(const ProveOptions& o) {
  if (o.scenario == "ha") return RunProveHa(o);
  log::SetComponent("prove");
  Clock& clock = SystemClock::Instance();
  SystemRandom rng(o.seed);
  Env e;
  e.opt = o;
  auto keys = ParseApiKeys(o.api_keys);
  if (!keys.ok()) {
    log::Error("prove_setup", {{"error", keys.error().message}});
    return 2;
  }
  e.api_key = keys->begin()->first;
  e.tenant = keys->begin()->second;
  Status name = CheckProveDatabaseName(o.prove_db);
  if (!name.ok()) {
    log::Error("prove_setup", {{"error", name.error().ToString()}});
    return 2;
  }
  Status dir = PrepareReportDir(o.report_dir);
  if (!dir.ok()) {
    log::Error("prove_setup", {{"error", dir.error().ToString()}});
    return 2;
  }
  auto db_url = FreshDatabase(o.pg_admin_url, o.prove_db);
  if (!db_url.ok()) {
    log::Error("prove_setup", {{"error", db_url.error().ToString()}});
    return 2;
  }
  e.db_url = db_url.value();
  {
    auto db = store::PgConn::Connect(e.db_url, "paypath-prove");
    Status m = db.ok() ? store::Migrate(*db.value()) : Status(db.error());
    if (!m.ok()) {
      log::Error("prove_setup", {{"error", m.error().ToString()}});
      return 2;
    }
  }
  // The ledger's own database, on the same server: a second fresh one, migrated with the ledger's schema.
  auto ledger_db_url = FreshDatabase(o.pg_admin_url, o.prove_db + "_ledger");
  Status ledger_migrated =
      ledger_db_url.ok() ? ledger::MigrateDatabase(ledger_db_url.value()) : Status(ledger_db_url.error());
  if (!ledger_migrated.ok()) {
    log::Error("prove_setup", {{"error", ledger_migrated.error().ToString()}});
    return 2;
  }
  e.ledger_db_url = ledger_db_url.value();
  // A fresh queue per run (not per seed): a crashed earlier run may have left messages in its queue. The
  // services may not declare (they only verify), so the admin does, as `paypath broker declare` would.
  e.queue = "paypath.prove." + SystemRandom::Instance().Hex128().substr(0, 8);
  {
    amqp::Settings as;
    as.url = o.admin_amqp_url;
    auto admin = amqp::Connection::Open(as);
    amqp::Topology t;
    t.queue = e.queue;
    Status d = admin.ok() ? amqp::DeclareTopology(*admin.value(), t) : Status(admin.error());
    if (!d.ok()) {
      log::Error("prove_setup", {{"error", "declaring the run's queue as the admin: " + d.error().ToString()}});
      return 2;
    }
    // Named in the log: an interrupted or failed run keeps its queues, and this says which to delete.
    log::Info("prove_queue_declared", {{"queue", e.queue}, {"database", o.prove_db}});
  }
  e.api_port = FreePort();
  e.proxy_port = FreePort();
  e.proxy_metrics_port = FreePort();
  e.relay_port = FreePort();
  e.consumer_port = FreePort();

  std::unique_ptr<http::MetricsServer> client_metrics;
  if (!o.metrics_listen.empty()) {
    auto hp = ParseHostPort(o.metrics_listen);
    auto ms = hp.ok() ? http::MetricsServer::Start(hp->host, hp->port) : Result<std::unique_ptr<http::MetricsServer>>(hp.error());
    if (!ms.ok()) {
      log::Error("prove_setup", {{"error", ms.error().ToString()}});
      return 2;
    }
    client_metrics = std::move(ms.value());
  }

  // Ctrl-C or SIGTERM must not orphan the children: blocked here, before any thread starts.
  auto supervisor = StartSupervisor(o.report_dir + "/logs", clock);
  if (!supervisor) return 2;
  Supervisor& sup = *supervisor;

  const bool is_default = o.scenario == "default";
  // The default run's database faults: the api reaches PostgreSQL through an in-process proxy that can cut a
  // COMMIT's answer after the server has it, and the stack script restarts the server.
  const bool db_faults = is_default && o.db_faults;
  const char* stack_script = std::getenv("PAYPATH_STACK");
  std::unique_ptr<PgFaultProxy> pg_proxy;
  std::string api_db_url = e.db_url;
  if (db_faults) {
    if (stack_script == nullptr || *stack_script == '\0') {
      log::Error("prove_setup", {{"error", "the database faults restart PostgreSQL through the stack script: set "
                                           "PAYPATH_STACK (`scripts/stack env` prints it, make prove does), or pass "
                                           "--no-db-faults"}});
      return 2;
    }
    PgFaultProxyOptions po;
    const std::string host = ConninfoSetting(e.db_url, "host"), port = ConninfoSetting(e.db_url, "port");
    po.upstream_host = host.empty() || host[0] == '/' || host.find(',') != std::string::npos ? "127.0.0.1" : host;
    po.upstream_port = static_cast<uint16_t>(port.empty() ? 5432 : std::strtol(port.c_str(), nullptr, 10));
    auto proxy = PgFaultProxy::Start(po, clock);
    auto via = proxy.ok() ? WithSettings(e.db_url, {{"host", "127.0.0.1"},
                                                    {"port", std::to_string(proxy.value()->port())},
                                                    {"sslmode", "disable"},
                                                    {"gssencmode", "disable"}})
                          : Result<std::string>(proxy.error());
    if (!via.ok()) {
      log::Error("prove_setup", {{"error", "the PostgreSQL fault proxy: " + via.error().ToString()}});
      return 2;
    }
    pg_proxy = std::move(proxy.value());
    api_db_url = via.value();
  }
  // Each child's settings, secrets included, go through its environment (never its arguments, which any
  // local user can read in ps); the supervisor gives it no other PAYPATH_* variable, so a child can never
  // fall back to the prover's own settings (the real database, say).
  std::map<std::string, std::string> no_faults;
  const std::map<std::string, std::string> api_env = {
      {"PAYPATH_PG_URL", api_db_url}, {"PAYPATH_REDIS_URL", o.redis_url}, {"PAYPATH_API_KEYS", o.api_keys}};
  const std::map<std::string, std::string> relay_env = {
      {"PAYPATH_PG_URL", e.db_url}, {"PAYPATH_RELAY_AMQP_URL", o.relay_amqp_url}};
  const std::map<std::string, std::string> consumer_env = {
      {"PAYPATH_LEDGER_PG_URL", e.ledger_db_url}, {"PAYPATH_CONSUMER_AMQP_URL", o.consumer_amqp_url}};
  // The default run crashes the relay and the consumer once each; the named scenarios inject their own
  // fault (an api outage, a broker outage) and nothing else, so their figures show that fault alone.
  std::map<std::string, std::string> relay_faults = relay_env, consumer_faults = consumer_env;
  if (is_default && o.crash_relay) relay_faults["PAYPATH_FAILPOINTS"] = "relay.after_publish=crash@3";
  if (is_default && o.crash_consumer) consumer_faults["PAYPATH_FAILPOINTS"] = "consumer.after_commit=crash@5";
  e.api = {"api",
           {"api", "--listen", Hp(e.api_port), "--no-migrate", "--final-metrics", o.report_dir + "/logs/api.final.prom"},
           api_env, api_env, Hp(e.api_port), "/readyz", o.report_dir + "/logs/api.final.prom"};
  std::vector<std::string> relay_args = {"relay", "--queue", e.queue, "--metrics-listen", Hp(e.relay_port)};
  if (o.scenario == "backlog") {
    // A burst of a tenth of a second's worth: the drain shows the configured rate, not the burst.
    for (const std::string& a : {std::string("--rate"), std::to_string(o.relay_rate), std::string("--burst"),
                                 std::to_string(std::max(1.0, o.relay_rate / 10))})
      relay_args.push_back(a);
  }
  e.relay = {"relay", relay_args, relay_faults, relay_env, Hp(e.relay_port), "/healthz", ""};
  bool started =
      sup.Start(e.api) &&
      sup.Start({"proxy",
                 {"proxy", "--listen", Hp(e.proxy_port), "--upstream", Hp(e.api_port), "--eat-response",
                  std::to_string(is_default ? o.eat_response : 0.0), "--seed", std::to_string(o.seed),
                  "--metrics-listen", Hp(e.proxy_metrics_port)},
                 no_faults, no_faults, Hp(e.proxy_metrics_port), "/healthz", ""}) &&
      sup.Start(e.relay) &&
      sup.Start({"consumer", {"consumer", "--no-migrate", "--queue", e.queue, "--metrics-listen", Hp(e.consumer_port)},
                 consumer_faults, consumer_env, Hp(e.consumer_port), "/healthz", ""});
  if (!started) {
    log::Error("prove_setup", {{"error", "a process did not become ready; see " + o.report_dir + "/logs"}});
    return 2;
  }

  store::PgPool pool(e.db_url, "paypath-prove", 4);
  auto lease = pool.Acquire();
  if (!lease.ok()) return 2;
  store::PgConn& db = *lease.value();
  auto ledger_conn = store::PgConn::Connect(e.ledger_db_url, "paypath-prove");
  if (!ledger_conn.ok()) return 2;
  store::PgConn& ledger_db = *ledger_conn.value();

  // The sampler: scrapes every process and samples the outbox and ledger every 250 ms for the report.
  ReportData report;
  report.title = is_default ? "paypath proof run: " + std::to_string(o.operations) + " operations, concurrency " +
                                   std::to_string(o.concurrency)
                             : "paypath proof run: scenario " + o.scenario;
  std::atomic<bool> sampling{true};
  std::mutex timeline_mu;
  auto t0 = clock.Now();
  std::thread sampler([&] {
    auto conn = store::PgConn::Connect(e.db_url, "paypath-prove-sampler");
    auto ledger_sampler = store::PgConn::Connect(e.ledger_db_url, "paypath-prove-sampler");
    while (sampling.load()) {
      sup.Scrape();
      // A PostgreSQL restart ends these sessions: open new ones (the time line then has a gap, not a stop).
      if (!conn.ok() || !conn.value()->healthy()) conn = store::PgConn::Connect(e.db_url, "paypath-prove-sampler");
      if (!ledger_sampler.ok() || !ledger_sampler.value()->healthy())
        ledger_sampler = store::PgConn::Connect(e.ledger_db_url, "paypath-prove-sampler");
      TimePoint p;
      if (conn.ok() && ledger_sampler.ok() &&
          SampleTimeline(*conn.value(), *ledger_sampler.value(), std::chrono::duration<double>(clock.Now() - t0).count(), &p)) {
        std::lock_guard lock(timeline_mu);
        report.timeline.push_back(p);
      }
      clock.SleepFor(std::chrono::milliseconds(250));
    }
  });

  // Clients: the main workload goes through the fault proxy; scenario steps talk to the api directly.
  auto transcript = client::FileTranscript::Open(o.report_dir + "/transcript.jsonl");
  if (!transcript.ok()) return 2;
  client::HttpTransport via_proxy(client::ParseHttpUrl("http://" + Hp(e.proxy_port)).value(), clock);
  client::HttpTransport direct_t(client::ParseHttpUrl("http://" + Hp(e.api_port)).value(), clock);
  client::RetryBudget budget("prove", client::RetryBudgetOptions{});
  client::RetryingClient cl(via_proxy, clock, rng, ProveClientOptions("prove"), &budget, transcript.value().get());
  client::RetryingClient direct(direct_t, clock, rng, ProveClientOptions("prove_direct"), nullptr,
                                transcript.value().get());

  int logical = 0, unanswered = 0, settled = 0, duplicates_n = 0;
  std::unique_ptr<DbFaults> faults;
  RunContext ctx{o, e, sup, clock, rng, db, ledger_db, report, timeline_mu};
  if (o.scenario == "outage") {
    logical = RunOutageScenario(ctx, t0);
  } else if (o.scenario == "backlog") {
    logical = RunBacklogScenario(ctx, t0);
  } else {
    report.steps.push_back(StepSimultaneous(e, clock, rng, db));
    logical++;
    report.steps.push_back(StepChangedBody(e, direct, db, rng));
    logical++;
    report.steps.push_back(StepRetryAfter(e, clock, rng, pool));
    logical++;
    report.steps.push_back(StepJitter(clock, rng, &report.jitter_delays_ms, &report.jitter_window_ms));

    // The main workload.
    struct Op {
      client::ChargeRequest req;
      int dup = 0;  // 0 none, 1 again afterwards, 2 twice at once
      bool ok = false;
    };
    std::vector<Op> ops(o.operations);
    const char* currencies[] = {"USD", "EUR", "GBP"};
    for (int i = 0; i < o.operations; ++i) {
      Op& op = ops[i];
      op.req.account_id = "acct_" + std::to_string(i % 97);
      op.req.amount = 100 + static_cast<int64_t>(rng.UniformInclusive(99900));
      op.req.currency = currencies[i % 3];
      // Keys are unique per run, not per seed: a seed repeats the faults, never an earlier run's keys.
      op.req.idempotency_key = SystemRandom::Instance().Uuid4();
      double u = rng.Uniform01();
      op.dup = u < o.concurrent_duplicate_share ? 2 : (u < o.concurrent_duplicate_share + o.duplicate_share ? 1 : 0);
    }
    std::mutex attempts_mu;
    auto record = [&](const client::CallResult& r) {
      std::lock_guard lock(attempts_mu);
      report.attempts_per_operation[r.attempts]++;
    };
    std::atomic<int> next{0}, duplicates_sent{0};
    if (db_faults) {
      DbFaults::Options fo;
      fo.operations = o.operations;
      fo.commit_cuts = o.commit_cuts;
      fo.read_only_s = o.read_only_s;
      fo.stack = stack_script;
      fo.admin_url = o.pg_admin_url;
      fo.api_db_url = e.db_url;
      fo.ledger_db_url = e.ledger_db_url;
      fo.ledger_db = o.prove_db + "_ledger";
      faults = std::make_unique<DbFaults>(fo, *pg_proxy, clock, t0);
      faults->Start();
    }
    std::vector<std::thread> workers;
    for (int w = 0; w < o.concurrency; ++w) {
      workers.emplace_back([&] {
        for (int i = next++; i < o.operations; i = next++) {
          if (faults) faults->BeforeOperation(i);
          Op& op = ops[i];
          if (op.dup == 2) {
            std::barrier sync(2);
            client::CallResult other;
            std::thread twin([&] {
              sync.arrive_and_wait();
              other = cl.Charge(op.req, e.api_key);
            });
            sync.arrive_and_wait();
            client::CallResult mine = cl.Charge(op.req, e.api_key);
            twin.join();
            record(mine);
            record(other);
            duplicates_sent++;
            op.ok = mine.ok() || other.ok();
          } else {
            client::CallResult r = cl.Charge(op.req, e.api_key);
            record(r);
            op.ok = r.ok();
            if (op.dup == 1) {
              client::CallResult again = cl.Charge(op.req, e.api_key);
              record(again);
              duplicates_sent++;
              op.ok = op.ok || again.ok();
            }
          }
          if (faults) faults->OperationDone();
        }
      });
    }
    for (auto& w : workers) w.join();
    if (faults) faults->Join();
    // A call that ended without an answer may or may not have charged; the same key settles it.
    for (int round = 0; round < 5; ++round) {
      for (Op& op : ops) {
        if (op.ok) continue;
        client::CallResult r = direct.Charge(op.req, e.api_key);
        op.ok = r.ok();
        settled++;
      }
    }
    logical += o.operations;
    unanswered = static_cast<int>(std::count_if(ops.begin(), ops.end(), [](const Op& op) { return !op.ok; }));

    duplicates_n = duplicates_sent.load();
  }
  if (logical < 0) {
    sampling.store(false);
    sampler.join();
    return 2;
  }

  // The prover's own sessions did not survive the PostgreSQL restart: judge on fresh ones.
  std::unique_ptr<store::PgConn> db_after, ledger_after;
  store::PgConn* dbp = &db;
  store::PgConn* ledgerp = &ledger_db;
  if (db_faults) {
    auto a = store::PgConn::Connect(e.db_url, "paypath-prove");
    auto l = store::PgConn::Connect(e.ledger_db_url, "paypath-prove");
    if (!a.ok() || !l.ok()) {
      log::Error("prove_judge", {{"error", "cannot reach PostgreSQL after the run's faults"}});
      sampling.store(false);
      sampler.join();
      return 2;
    }
    db_after = std::move(a.value());
    ledger_after = std::move(l.value());
    dbp = db_after.get();
    ledgerp = ledger_after.get();
  }

  // Quiescence: everything committed has been published and applied.
  const bool quiet = AwaitQuiescence(*dbp, *ledgerp, clock, clock.Now() + std::chrono::seconds(o.quiesce_timeout_s));
  // One more scrape after quiescence so counters include the last effects.
  clock.SleepFor(std::chrono::milliseconds(300));
  sampling.store(false);
  sampler.join();
  sup.Scrape();

  ledger::AuditOptions ao;
  ao.pg_url = e.db_url;
  ao.ledger_pg_url = e.ledger_db_url;
  ao.amqp_url = o.operator_amqp_url;
  ao.topology.queue = e.queue;
  ao.max_dlq = 0;
  auto audit = ledger::RunAudit(ao);

  auto api_m = sup.Totals("api");
  auto proxy_m = sup.Totals("proxy");
  auto relay_m = sup.Totals("relay");
  auto consumer_m = sup.Totals("consumer");
  auto metric = [](std::map<std::string, double>& m, const std::string& k) {
    auto it = m.find(k);
    return it == m.end() ? -1.0 : it->second;
  };
  auto s = [](double v) { return std::to_string(static_cast<int64_t>(v)); };
  int64_t charges_db = Scalar(*dbp, "SELECT count(*) FROM charges");
  int64_t effects_db = Scalar(*ledgerp, "SELECT count(*) FROM ledger_entries WHERE direction = 'debit'");
  int64_t inbox_db = Scalar(*ledgerp, "SELECT count(*) FROM inbox");
  double charges_metric = metric(api_m, "paypath_charges_created_total");
  double eaten = metric(proxy_m, "paypath_proxy_responses_eaten_total");
  const std::string L = std::to_string(logical);

  // The scenario's own rows (if any) go after the common ones.
  std::vector<VerdictRow> scenario_rows = std::move(report.verdict);
  report.verdict.clear();
  auto& v = report.verdict;
  v.push_back({"logical operations", L, "", true,
               is_default ? "the run's plan (" + std::to_string(o.operations) + " + 3 scenario steps)"
                          : "the scenario's plan"});
  v.push_back({"charges created", s(charges_metric), L, charges_metric == logical, "api /metrics paypath_charges_created_total"});
  v.push_back({"charges in PostgreSQL", std::to_string(charges_db), L, charges_db == logical, "SELECT count(*) FROM charges"});
  v.push_back({"ledger effects applied", std::to_string(effects_db), L, effects_db == logical,
               "debit postings in the ledger database's ledger_entries"});
  v.push_back({"inbox messages applied", std::to_string(inbox_db), L, inbox_db == logical,
               "SELECT count(*) FROM inbox (ledger database)"});
  v.push_back({"ledger effects (consumer /metrics)", s(metric(consumer_m, "paypath_ledger_effects_applied_total")),
               "", true, "sum over consumer processes; a SIGKILLed process loses its last unscraped increments"});
  v.push_back({"replays served", s(metric(api_m, "paypath_idempotency_requests_total{outcome=\"replayed\"}")), "", true,
               "api /metrics"});
  v.push_back({"409 in flight", s(metric(api_m, "paypath_idempotency_requests_total{outcome=\"conflict\"}")), "", true,
               "api /metrics"});
  if (is_default) {
    v.push_back({"422 changed body", s(metric(api_m, "paypath_idempotency_requests_total{outcome=\"mismatch\"}")), "1",
                 metric(api_m, "paypath_idempotency_requests_total{outcome=\"mismatch\"}") == 1, "api /metrics"});
    v.push_back({"responses eaten by the proxy", s(eaten), o.eat_response > 0 ? "> 0" : "",
                 o.eat_response <= 0 || eaten > 0, "proxy /metrics"});
    v.push_back({"deliberate duplicates sent", std::to_string(duplicates_n), "", true, "the run's plan"});
    v.push_back({"inbox duplicates absorbed", s(metric(consumer_m, "paypath_inbox_duplicates_total")),
                 o.crash_relay ? ">= 1" : "", !o.crash_relay || metric(consumer_m, "paypath_inbox_duplicates_total") >= 1,
                 "consumer /metrics (a relay republish after its crash lands here)"});
    v.push_back({"relay publishes (incl. republishes)", s(metric(relay_m, "paypath_outbox_published_total")), "", true,
                 "relay /metrics"});
    v.push_back({"relay crashes (after publish, before mark)", std::to_string(sup.Crashes("relay")),
                 o.crash_relay ? "1" : "0", sup.Crashes("relay") == (o.crash_relay ? 1 : 0), "supervisor"});
    v.push_back({"consumer crashes (after commit, before ack)", std::to_string(sup.Crashes("consumer")),
                 o.crash_consumer ? "1" : "0", sup.Crashes("consumer") == (o.crash_consumer ? 1 : 0), "supervisor"});
    v.push_back({"api and proxy crashes", std::to_string(sup.Crashes("api") + sup.Crashes("proxy")), "0",
                 sup.Crashes("api") + sup.Crashes("proxy") == 0, "supervisor"});
    v.push_back({"operations without a final answer", std::to_string(unanswered), "0", unanswered == 0,
                 "client (after " + std::to_string(settled) + " settling calls with the same keys)"});
  }
  if (faults) {
    auto rows = faults->Rows(api_m, consumer_m);
    v.insert(v.end(), rows.begin(), rows.end());
    report.faults = faults->Markers();
  }
  // The process crashes are injected faults too: on the time lines with the database faults.
  for (const char* name : {"relay", "consumer", "api"})
    for (auto t : sup.CrashTimes(name))
      report.faults.push_back({std::chrono::duration<double>(t - t0).count(), 0, std::string(name) + " crashed (failpoint)"});
  std::sort(report.faults.begin(), report.faults.end(),
            [](const FaultMarker& a, const FaultMarker& b) { return a.t0 < b.t0; });
  v.push_back({"quiescence reached", quiet ? "yes" : "no", "yes", quiet, "outbox empty and every charge posted"});
  AddAuditRows(audit, &v);

  v.insert(v.end(), scenario_rows.begin(), scenario_rows.end());
  report.pass = true;
  for (const auto& row : v)
    if (!row.ok) report.pass = false;
  for (const auto& st : report.steps)
    if (!st.ok) report.pass = false;

  // Retry delays from the transcript.
  {
    std::ifstream in(o.report_dir + "/transcript.jsonl");
    std::string line;
    while (std::getline(in, line)) {
      double d = JsonNumber(line, "delay_ms");
      if (d > 0) report.retry_delays_ms.push_back(d);
    }
  }
  report.notes.push_back("Exactness is judged from PostgreSQL (charges, postings, inbox) and the api's counter: the "
                         "api is never crashed in this run, so its counter is complete.");
  report.notes.push_back("Run databases: " + o.prove_db + " (api), " + o.prove_db + "_ledger (ledger); queue: " + e.queue + "; seed: " + std::to_string(o.seed));

  for (const char* name : {"api", "proxy", "relay", "consumer"}) {
    std::ofstream(o.report_dir + "/metrics/" + name + ".prom") << sup.LastScrapeText(name);
  }
  std::ofstream(o.report_dir + "/report.html") << RenderHtml(report);
  {
    std::ofstream j(o.report_dir + "/verdict.json");
    j << "{\"pass\":" << (report.pass ? "true" : "false") << ",\"logical_operations\":" << logical
      << ",\"charges_created\":" << static_cast<int64_t>(charges_metric) << ",\"charges_in_db\":" << charges_db
      << ",\"ledger_effects\":" << effects_db << ",\"responses_eaten\":" << static_cast<int64_t>(eaten)
      << ",\"relay_crashes\":" << sup.Crashes("relay") << ",\"consumer_crashes\":" << sup.Crashes("consumer")
      << ",\"commit_cuts\":" << (pg_proxy ? pg_proxy->counts().commit_cuts : 0)
      << ",\"faults_marked\":" << report.faults.size() << "}\n";
  }
  sup.StopAll();
  if (report.pass) {
    // A passing run leaves nothing in its queues; quorum queues cost the broker memory, so they go. A
    // failing run keeps them (and the DLQ) for inspection.
    amqp::Settings as;
    as.url = o.admin_amqp_url;
    auto admin = amqp::Connection::Open(as);
    amqp::Topology t;
    t.queue = e.queue;
    Status d = admin.ok() ? amqp::DeleteTopology(*admin.value(), t) : Status(admin.error());
    if (!d.ok()) log::Warn("prove_cleanup", {{"queue", e.queue}, {"error", d.error().ToString()}});
  }
  std::string table = RenderVerdictTable(report);
  ssize_t w = ::write(1, table.data(), table.size());
  (void)w;
  std::string where = "report: " + o.report_dir + "/report.html\n";
  w = ::write(1, where.data(), where.size());
  return report.pass ? 0 : 1;
}

}  // namespace paypath::chaos
