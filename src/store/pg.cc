#include "store/pg.h"

#include <poll.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstdio>
#include <cstring>
#include <vector>

#include "store/schema.h"

namespace paypath::store {

PgResult& PgResult::operator=(PgResult&& o) noexcept {
  if (this != &o) {
    if (r_) PQclear(r_);
    r_ = o.r_;
    o.r_ = nullptr;
  }
  return *this;
}

PgResult::~PgResult() {
  if (r_) PQclear(r_);
}

int64_t PgResult::affected() const {
  const char* n = PQcmdTuples(r_);
  return (n && *n) ? std::strtoll(n, nullptr, 10) : 0;
}

std::string_view PgResult::Get(int row, int col) const {
  return std::string_view(PQgetvalue(r_, row, col), PQgetlength(r_, row, col));
}

int64_t PgResult::GetInt(int row, int col) const { return std::strtoll(PQgetvalue(r_, row, col), nullptr, 10); }

double PgResult::GetDouble(int row, int col) const { return std::strtod(PQgetvalue(r_, row, col), nullptr); }

namespace {

// libpq keywords for every paypath connection (src/store/pg.h PgSessionOptions says why each has its value);
// keywords after "dbname" override what the expanded URL says. Server-side bounds travel in the startup
// packet, so they hold from the first statement on.
struct ConnectParams {
  ConnectParams(const std::string& url, std::string_view application_name, const PgSessionOptions& s,
                std::string connect_timeout_s)
      : url(url),
        app(application_name),
        options("-c statement_timeout=" + std::to_string(s.statement_timeout.count()) +
                " -c idle_in_transaction_session_timeout=" + std::to_string(s.idle_in_transaction_timeout.count()) +
                (s.plans == PgSessionOptions::Plans::kPointLookups
                     ? " -c plan_cache_mode=force_generic_plan -c enable_seqscan=off -c enable_hashjoin=off"
                       " -c enable_mergejoin=off -c jit=off"
                     : " -c plan_cache_mode=force_custom_plan")),
        timeout(std::move(connect_timeout_s)),
        idle(std::to_string(s.keepalives_idle.count())),
        interval(std::to_string(s.keepalives_interval.count())),
        count(std::to_string(s.keepalives_count)),
        user_timeout(std::to_string(s.tcp_user_timeout.count())) {}
  // host, hostaddr, port: "" leaves the URL's (libpq skips empty values); ConnectWithin sets one entry of a
  // multi-host URL at a time.
  std::string url, app, options, timeout, idle, interval, count, user_timeout, host, hostaddr, port;
  const char* keys[13] = {"dbname",     "connect_timeout",     "application_name", "options",          "keepalives",
                          "keepalives_idle", "keepalives_interval", "keepalives_count", "tcp_user_timeout", "host",
                          "hostaddr",   "port",                nullptr};
  const char* values[13] = {url.c_str(),  timeout.c_str(),  app.c_str(),   options.c_str(),      "1",
                            idle.c_str(), interval.c_str(), count.c_str(), user_timeout.c_str(), host.c_str(),
                            hostaddr.c_str(), port.c_str(), nullptr};
};

// One entry of a multi-host connection string.
struct HostEntry {
  std::string host, hostaddr, port;
};

std::vector<std::string> SplitCommas(const std::string& s) {
  std::vector<std::string> out;
  if (s.empty()) return out;
  size_t start = 0;
  for (;;) {
    size_t comma = s.find(',', start);
    out.push_back(s.substr(start, comma == std::string::npos ? std::string::npos : comma - start));
    if (comma == std::string::npos) return out;
    start = comma + 1;
  }
}

// The hosts of `url` when it names more than one (libpq's host / hostaddr / port lists); empty otherwise,
// or when the lists do not line up (libpq then reports the error itself).
std::vector<HostEntry> MultipleHosts(const std::string& url) {
  char* err = nullptr;
  PQconninfoOption* opts = PQconninfoParse(url.c_str(), &err);
  if (err) PQfreemem(err);
  if (opts == nullptr) return {};
  std::string host, hostaddr, port;
  for (PQconninfoOption* o = opts; o->keyword != nullptr; ++o) {
    if (o->val == nullptr) continue;
    if (std::strcmp(o->keyword, "host") == 0) host = o->val;
    if (std::strcmp(o->keyword, "hostaddr") == 0) hostaddr = o->val;
    if (std::strcmp(o->keyword, "port") == 0) port = o->val;
  }
  PQconninfoFree(opts);
  std::vector<std::string> hosts = SplitCommas(host), addrs = SplitCommas(hostaddr), ports = SplitCommas(port);
  size_t n = std::max(hosts.size(), addrs.size());
  if (n <= 1) return {};
  if ((!hosts.empty() && hosts.size() != n) || (!addrs.empty() && addrs.size() != n) ||
      (ports.size() > 1 && ports.size() != n))
    return {};
  std::vector<HostEntry> out(n);
  for (size_t i = 0; i < n; ++i) {
    if (!hosts.empty()) out[i].host = hosts[i];
    if (!addrs.empty()) out[i].hostaddr = addrs[i];
    if (!ports.empty()) out[i].port = ports.size() == 1 ? ports[0] : ports[i];
  }
  return out;
}

std::string ErrorText(PGconn* c) {
  std::string msg = c ? PQerrorMessage(c) : "libpq could not allocate a connection";
  while (!msg.empty() && (msg.back() == '\n' || msg.back() == ' ')) msg.pop_back();
  return msg;
}

}  // namespace

PgConn::PgConn(PGconn* c) : conn_(c) { PQsetNoticeReceiver(conn_, &PgConn::OnNotice, this); }

void PgConn::OnNotice(void* self, const PGresult* r) {
  const char* primary = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
  // syncrep.c: "canceling wait for synchronous replication due to user request" and "canceling the wait for
  // synchronous replication and terminating connection due to administrator command".
  if (primary != nullptr && std::strstr(primary, "wait for synchronous replication") != nullptr) {
    static_cast<PgConn*>(self)->sync_wait_cancelled_ = true;
  }
  std::fputs(PQresultErrorMessage(r), stderr);
}

Result<std::unique_ptr<PgConn>> PgConn::Connect(const std::string& url, std::string_view application_name,
                                                std::chrono::seconds connect_timeout,
                                                std::chrono::milliseconds statement_timeout) {
  PgSessionOptions session;
  session.connect_timeout = connect_timeout;
  session.statement_timeout = statement_timeout;
  return Connect(url, application_name, session);
}

Result<std::unique_ptr<PgConn>> PgConn::Connect(const std::string& url, std::string_view application_name,
                                                const PgSessionOptions& s) {
  ConnectParams p(url, application_name, s, std::to_string(std::max<int64_t>(1, s.connect_timeout.count())));
  PGconn* c = PQconnectdbParams(p.keys, p.values, /*expand_dbname=*/1);
  if (c == nullptr) return Error::Internal("libpq could not allocate a connection");
  if (PQstatus(c) != CONNECTION_OK) {
    std::string msg = ErrorText(c);
    PQfinish(c);
    return Error::Unavailable("postgres connect: " + msg);
  }
  return std::unique_ptr<PgConn>(new PgConn(c));
}

namespace {

// One asynchronous connect (PQconnectStartParams / PQconnectPoll), bounded by `deadline` only.
Result<PGconn*> ConnectPolling(const ConnectParams& p, Clock& clock, std::chrono::steady_clock::time_point deadline) {
  PGconn* c = PQconnectStartParams(p.keys, p.values, /*expand_dbname=*/1);
  if (c == nullptr) return Error::Internal("libpq could not allocate a connection");
  auto fail = [&](std::string why) -> Result<PGconn*> {
    PQfinish(c);
    return Error::Unavailable(std::move(why));
  };
  if (PQstatus(c) == CONNECTION_BAD) return fail(ErrorText(c));
  // libpq's contract: start as if PQconnectPoll had answered "writing", then wait for what it asks.
  PostgresPollingStatusType st = PGRES_POLLING_WRITING;
  for (;;) {
    if (st == PGRES_POLLING_OK) return c;
    if (st == PGRES_POLLING_FAILED) return fail(ErrorText(c));
    auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - clock.Now()).count();
    if (left <= 0) return fail("no connection within the deadline");
    pollfd pfd{PQsocket(c), static_cast<short>(st == PGRES_POLLING_READING ? POLLIN : POLLOUT), 0};
    int rc = ::poll(&pfd, 1, static_cast<int>(std::min<int64_t>(left, 60000)));
    if (rc == 0 || (rc < 0 && errno == EINTR)) continue;  // the loop re-checks the deadline
    st = PQconnectPoll(c);
  }
}

}  // namespace

Result<std::unique_ptr<PgConn>> PgConn::ConnectWithin(const std::string& url, std::string_view application_name,
                                                      Clock& clock, std::chrono::steady_clock::time_point deadline,
                                                      std::chrono::milliseconds statement_timeout) {
  // connect_timeout 0: the deadline below is the only bound (libpq ignores it under PQconnectPoll anyway).
  PgSessionOptions session;
  session.statement_timeout = statement_timeout;
  ConnectParams p(url, application_name, session, "0");
  // A multi-host URL: under PQconnectPoll libpq moves to the next host only when one fails outright, never
  // when one is silent (connect_timeout is not applied), so a partitioned first host would take the whole
  // deadline. Each host instead gets an equal share of what is left, one after the other, in the URL's
  // order (target_session_attrs still applies to each).
  std::vector<HostEntry> hosts = MultipleHosts(url);
  if (hosts.empty()) {
    auto c = ConnectPolling(p, clock, deadline);
    if (!c.ok()) return Error::Unavailable("postgres connect: " + c.error().message);
    return std::unique_ptr<PgConn>(new PgConn(*c));
  }
  std::string errors;
  for (size_t i = 0; i < hosts.size(); ++i) {
    auto now = clock.Now();
    if (now >= deadline) break;
    p.host = hosts[i].host;
    p.hostaddr = hosts[i].hostaddr;
    p.port = hosts[i].port;
    p.values[9] = p.host.c_str();
    p.values[10] = p.hostaddr.c_str();
    p.values[11] = p.port.c_str();
    auto c = ConnectPolling(p, clock, now + (deadline - now) / static_cast<int>(hosts.size() - i));
    if (c.ok()) return std::unique_ptr<PgConn>(new PgConn(*c));
    const std::string& name = hosts[i].host.empty() ? hosts[i].hostaddr : hosts[i].host;
    errors += (errors.empty() ? "" : "; ") + name + ":" + hosts[i].port + ": " + c.error().message;
  }
  return Error::Unavailable("postgres connect: no host answered within the deadline: " + errors);
}

bool PgConn::ClosedWhileIdle() {
  if (PQstatus(conn_) != CONNECTION_OK) return true;
  // An idle connection has nothing to read unless the server sent something on its own: a FATAL before it
  // exits (shutdown, pg_terminate_backend, idle timeout), then EOF. Three rounds take in FATAL then EOF.
  for (int round = 0; round < 3; ++round) {
    pollfd p{PQsocket(conn_), POLLIN, 0};
    if (::poll(&p, 1, 0) <= 0) return false;
    if (PQconsumeInput(conn_) == 0) return true;
    (void)PQisBusy(conn_);  // parses what arrived; an idle-time error is reported as a notice
    if (PQstatus(conn_) != CONNECTION_OK) return true;
  }
  return false;
}

std::optional<Error> PgConn::DeadBeforeSend() {
  if (!ClosedWhileIdle()) return std::nullopt;
  return Error::Unavailable("postgres closed the connection before the statement was sent: " + ErrorText(conn_));
}

PgConn::~PgConn() { PQfinish(conn_); }

Error PgConn::Classify(PGresult* r, bool in_commit) const {
  std::string msg = r ? PQresultErrorMessage(r) : PQerrorMessage(conn_);
  while (!msg.empty() && (msg.back() == '\n' || msg.back() == ' ')) msg.pop_back();
  const char* state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : nullptr;
  std::string sqlstate = state ? state : "";
  if (PQstatus(conn_) != CONNECTION_OK || sqlstate.starts_with("08") || sqlstate == "57P01" ||
      sqlstate == "57P02" || sqlstate == "57P03") {
    if (in_commit) return Error::OutcomeUnknown("connection lost during COMMIT: " + msg);
    return Error::Unavailable("postgres: " + msg);
  }
  if (sqlstate == "25006") read_only_seen_ = true;
  Error e{ClassifySqlstate(sqlstate), "postgres " + sqlstate + ": " + msg};
  e.sqlstate = sqlstate;
  return e;
}

ErrorCode ClassifySqlstate(std::string_view s) {
  if (s == "23505") return ErrorCode::kConflict;
  if (s.starts_with("22") || s.starts_with("23")) return ErrorCode::kInvalidArgument;
  if (s == "40001" || s == "40P01") return ErrorCode::kAborted;
  return ErrorCode::kUnavailable;
}

Result<PgResult> PgConn::Exec(std::string_view sql, const Params& params) {
  reply_lost_ = false;
  if (auto dead = DeadBeforeSend()) return *dead;
  auto it = prepared_.find(std::string(sql));
  if (it == prepared_.end()) {
    std::string name = "s" + std::to_string(prepared_.size());
    std::string text(sql);
    PGresult* r = PQprepare(conn_, name.c_str(), text.c_str(), 0, nullptr);
    ExecStatusType st = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
    if (st != PGRES_COMMAND_OK) {
      Error e = Classify(r, false);
      if (r) PQclear(r);
      return e;
    }
    PQclear(r);
    it = prepared_.emplace(std::move(text), std::move(name)).first;
  }
  std::vector<const char*> values;
  values.reserve(params.size());
  for (const Param& p : params) values.push_back(p ? p->c_str() : nullptr);
  PGresult* r = PQexecPrepared(conn_, it->second.c_str(), static_cast<int>(values.size()), values.data(), nullptr,
                               nullptr, 0);
  ExecStatusType st = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
  if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
    reply_lost_ = PQstatus(conn_) != CONNECTION_OK;
    Error e = Classify(r, false);
    if (r) PQclear(r);
    return e;
  }
  return PgResult(r);
}

Result<PgResult> PgConn::ExecSimple(std::string_view sql) {
  reply_lost_ = false;
  if (auto dead = DeadBeforeSend()) return *dead;
  std::string text(sql);
  PGresult* r = PQexec(conn_, text.c_str());
  ExecStatusType st = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
  if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
    reply_lost_ = PQstatus(conn_) != CONNECTION_OK;
    Error e = Classify(r, false);
    if (r) PQclear(r);
    return e;
  }
  return PgResult(r);
}

Status PgConn::Begin() {
  auto r = ExecSimple("BEGIN");
  if (!r.ok()) return r.error();
  return OkStatus();
}

Status PgConn::Commit() {
  reply_lost_ = false;
  sync_wait_cancelled_ = false;
  // A connection that died before COMMIT left the server (EOF or FATAL already waiting here) ended its
  // transaction with a rollback: that outcome is known.
  if (auto dead = DeadBeforeSend())
    return Error::Unavailable("connection lost before COMMIT was sent; the transaction was rolled back: " + dead->message);
  return FinishCommit(PQexec(conn_, "COMMIT"));
}

Status PgConn::CommitWithin(Clock& clock, std::chrono::steady_clock::time_point deadline) {
  reply_lost_ = false;
  sync_wait_cancelled_ = false;
  if (auto dead = DeadBeforeSend())
    return Error::Unavailable("connection lost before COMMIT was sent; the transaction was rolled back: " + dead->message);
  if (PQsendQuery(conn_, "COMMIT") != 1) return FinishCommit(nullptr);
  bool cancelled = false;
  while (PQisBusy(conn_)) {
    auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - clock.Now()).count();
    if (left <= 0 && !cancelled) {
      // Past the deadline the commit can only be waiting for its standby: stop waiting (it stays local).
      PGcancel* cancel = PQgetCancel(conn_);
      char err[256];
      if (cancel != nullptr) {
        (void)PQcancel(cancel, err, sizeof err);
        PQfreeCancel(cancel);
      }
      cancelled = true;
      deadline = clock.Now() + std::chrono::seconds(2);
      continue;
    }
    if (left <= 0) {
      reply_lost_ = true;
      return Error::OutcomeUnknown("no answer to COMMIT, even after cancelling its wait");
    }
    pollfd pfd{PQsocket(conn_), POLLIN, 0};
    int rc = ::poll(&pfd, 1, static_cast<int>(std::min<int64_t>(left, 1000)));
    if (rc < 0 && errno != EINTR) break;
    if (rc > 0 && PQconsumeInput(conn_) != 1) break;
  }
  PGresult* r = PQgetResult(conn_);
  // The simple-query protocol's end of the results (and of anything unexpected after COMMIT).
  while (PGresult* extra = PQgetResult(conn_)) PQclear(extra);
  return FinishCommit(r);
}

Status PgConn::FinishCommit(PGresult* r) {
  ExecStatusType st = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
  if (st != PGRES_COMMAND_OK) {
    reply_lost_ = PQstatus(conn_) != CONNECTION_OK;
    Error e = Classify(r, /*in_commit=*/true);
    if (r) PQclear(r);
    return e;
  }
  // COMMIT of a failed transaction answers "ROLLBACK" rather than an error.
  bool rolled_back = std::strcmp(PQcmdStatus(r), "ROLLBACK") == 0;
  PQclear(r);
  if (rolled_back) return Error::Aborted("transaction was rolled back at COMMIT");
  if (sync_wait_cancelled_)
    return Error::OutcomeUnknown("COMMIT answered with PostgreSQL's warning that its wait for the synchronous "
                                 "standby was cancelled: committed locally, maybe not replicated (a failover may "
                                 "lose it)");
  return OkStatus();
}

void PgConn::Rollback() {
  if (PQstatus(conn_) != CONNECTION_OK) return;
  PGresult* r = PQexec(conn_, "ROLLBACK");
  if (r) PQclear(r);
}

Result<std::unique_ptr<Transaction>> Transaction::Start(PgConn& conn) {
  Status s = conn.Begin();
  if (!s.ok()) return s.error();
  return std::unique_ptr<Transaction>(new Transaction(conn));
}

Transaction::~Transaction() {
  if (!done_) conn_.Rollback();
}

Status Transaction::Commit() {
  done_ = true;  // a failed COMMIT ends the transaction too
  return conn_.Commit();
}

Status Transaction::CommitWithin(Clock& clock, std::chrono::steady_clock::time_point deadline) {
  done_ = true;
  return conn_.CommitWithin(clock, deadline);
}

PgPool::PgPool(std::string url, std::string application_name, int size, PgSessionOptions session)
    : url_(std::move(url)), app_(std::move(application_name)), session_(session), free_slots_(size) {}

PgPool::~PgPool() = default;

PgPool::Lease::~Lease() {
  if (conn_) pool_->Release(std::move(conn_));
}

Result<PgPool::Lease> PgPool::Acquire(std::chrono::milliseconds wait) {
  std::unique_ptr<PgConn> conn;
  {
    std::unique_lock lock(mu_);
    if (!cv_.wait_for(lock, wait, [&] { return free_slots_ > 0; }))
      return Error::Unavailable("no database connection free within " + std::to_string(wait.count()) + " ms");
    free_slots_--;
    if (!idle_.empty()) {
      conn = std::move(idle_.back());
      idle_.pop_back();
    }
  }
  // The server may have closed it while it sat idle (restart, failover): a statement sent on it could only
  // fail, and its failure would look like a lost reply. Replace it instead.
  if (conn && conn->ClosedWhileIdle()) conn.reset();
  if (!conn) {
    auto c = PgConn::Connect(url_, app_, session_);
    if (!c.ok()) {
      std::lock_guard lock(mu_);
      free_slots_++;
      cv_.notify_one();
      return c.error();
    }
    conn = std::move(c.value());
  }
  return Lease(this, std::move(conn));
}

Result<std::unique_ptr<PgConn>> PgPool::OpenFresh(Clock& clock, std::chrono::steady_clock::time_point deadline,
                                                  std::chrono::milliseconds statement_timeout) {
  return PgConn::ConnectWithin(url_, app_, clock, deadline, statement_timeout);
}

void PgPool::Release(std::unique_ptr<PgConn> c) {
  std::vector<std::unique_ptr<PgConn>> closing;  // closed outside the lock
  std::lock_guard lock(mu_);
  if (c->read_only_seen()) {
    // Refused as read-only: this session, and the idle ones probably opened in the same read-only period
    // (they may have run only reads so far), go; new ones are opened writable once the database is.
    closing.push_back(std::move(c));
    for (auto& idle : idle_) closing.push_back(std::move(idle));
    idle_.clear();
  } else if (c->healthy() && PQtransactionStatus(c->raw()) == PQTRANS_IDLE) {
    idle_.push_back(std::move(c));
  }
  free_slots_++;
  cv_.notify_one();
}

std::string ArrayLiteral(const std::vector<Param>& elements) {
  std::string out = "{";
  for (size_t i = 0; i < elements.size(); ++i) {
    if (i > 0) out += ',';
    if (!elements[i]) {
      out += "NULL";
      continue;
    }
    out += '"';
    for (char ch : *elements[i]) {
      if (ch == '"' || ch == '\\') out += '\\';
      out += ch;
    }
    out += '"';
  }
  out += '}';
  return out;
}

std::string QuoteLiteral(PgConn& conn, std::string_view s) {
  char* q = PQescapeLiteral(conn.raw(), s.data(), s.size());
  std::string out = q ? q : "NULL";
  if (q) PQfreemem(q);
  return out;
}

Status Migrate(PgConn& conn) {
  // 7215: an arbitrary constant naming "paypath migrations" in the advisory-lock space.
  std::string sql = std::string("BEGIN; SELECT pg_advisory_xact_lock(7215); ") + SchemaSql() + "\nCOMMIT;";
  auto r = conn.ExecSimple(sql);
  if (!r.ok()) {
    conn.Rollback();
    return r.error();
  }
  return OkStatus();
}

}  // namespace paypath::store
