// PostgreSQL access over libpq: an owned connection, owned results, a transaction guard and a pool.
//
// Errors map SQLSTATE classes onto ErrorCode (see common/result.h) and carry the SQLSTATE (Error::sqlstate):
//   connection lost / refused, 08xxx, 57P01-57P03  -> kUnavailable  (retry the call later)
//   connection lost while COMMIT was in flight    -> kOutcomeUnknown (never retry blindly)
//   on a healthy connection                       -> ClassifySqlstate below
// "Lost while in flight" is told apart from "never sent": before each statement (and before COMMIT) the
// connection is checked for input that arrived while it sat idle (the server's EOF, or the FATAL it sends
// when it shuts down). A connection found dead there never carried the statement, so the error is a plain
// kUnavailable; one that breaks after sending sets reply_lost().
// Every statement goes through Exec(), which prepares it once per connection under a generated name, so
// the SQL text stays next to the code that owns it and still runs as a named prepared statement.
#pragma once

#include <libpq-fe.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/clock.h"
#include "common/result.h"

namespace paypath::store {

using Param = std::optional<std::string>;  // nullopt is SQL NULL
using Params = std::vector<Param>;

// Owns a PGresult. Movable, not copyable. Column access is by index; values are text.
class PgResult {
 public:
  explicit PgResult(PGresult* r) : r_(r) {}
  PgResult(PgResult&& o) noexcept : r_(o.r_) { o.r_ = nullptr; }
  PgResult& operator=(PgResult&& o) noexcept;
  PgResult(const PgResult&) = delete;
  PgResult& operator=(const PgResult&) = delete;
  ~PgResult();

  int rows() const { return PQntuples(r_); }
  // Rows changed by INSERT/UPDATE/DELETE.
  int64_t affected() const;
  bool IsNull(int row, int col) const { return PQgetisnull(r_, row, col) != 0; }
  std::string_view Get(int row, int col) const;
  std::string GetString(int row, int col) const { return std::string(Get(row, col)); }
  int64_t GetInt(int row, int col) const;
  double GetDouble(int row, int col) const;

 private:
  PGresult* r_;
};

// The time bounds of one PostgreSQL session, client side (libpq, the TCP socket) and server side (settings
// sent at connect). The defaults are what every service uses unless it says otherwise. Together they
// bound how long a silent network partition can block a thread or hold row locks: ~10 s, against the
// kernel's default of ~15 minutes for unacknowledged data and 2 h 11 min for an idle connection.
struct PgSessionOptions {
  // Whole connection set-up (TCP, TLS negotiation, startup, authentication). 2 s: a healthy server on the
  // same network answers in milliseconds. libpq counts whole seconds and treats 1 as 2.
  std::chrono::seconds connect_timeout{2};
  // Server side: no statement runs longer. 10 s: the api's statements take milliseconds, and the api's
  // clients give up within seconds anyway; the audit passes a longer bound for its scans.
  std::chrono::milliseconds statement_timeout{10000};
  // Server side: a session idle inside a transaction this long is ended, releasing its locks (a client
  // frozen or cut off mid-transaction would otherwise hold them until the server's own TCP keepalive,
  // hours). 30 s: six times the longest legitimate idle gap, the relay's wait for publisher confirms
  // inside its batch transaction (confirm_timeout, 5 s).
  std::chrono::milliseconds idle_in_transaction_timeout{30000};
  // TCP keepalive on an idle connection: first probe after 5 s of silence, then every 2 s, 3 unanswered
  // probes and the connection is dead: a vanished server is noticed within 5 + 3 x 2 = 11 s.
  std::chrono::seconds keepalives_idle{5};
  std::chrono::seconds keepalives_interval{2};
  int keepalives_count = 3;
  // TCP_USER_TIMEOUT: data we sent that stays unacknowledged this long kills the connection (a partition
  // while a query is in flight). 10 s: the same order as the keepalive bound; it does not limit how long
  // the server may take to answer, only how long the network may stay silent.
  std::chrono::milliseconds tcp_user_timeout{10000};
  // How prepared statements are planned. PgConn::Exec prepares each statement once per session, and
  // PostgreSQL would switch a prepared statement to a cached generic plan after five executions, chosen
  // from the statistics of that moment. The api's batch statements work over arrays (unnest) against
  // tables that a fresh deployment starts empty; the generic plan chosen then (a hash join over a
  // sequential scan of charges and of idempotency_keys) stayed for the session's life while the tables
  // grew: every batch read the whole table (2,223 buffers per claim at 100,000 rows in group_commit_test,
  // ~2 ms per batch at 15,000 rows in the bench). So no session keeps a plan made from statistics:
  //  - kCustom (the default: relay, consumer, audit, tools): plan_cache_mode = force_custom_plan, every
  //    execution planned for its own values and the tables' current size;
  //  - kPointLookups (the api, Api()): every statement the api runs finds its rows by key, so its sessions
  //    plan each statement once (plan_cache_mode = force_generic_plan) with sequential scans, hash joins
  //    and merge joins priced out (enable_seqscan, enable_hashjoin, enable_mergejoin = off): nested loops
  //    over index scans whatever the statistics say, a plan that cannot turn into a table scan as the
  //    tables grow. A statement with no index to use still runs (the planner falls back to a sequential
  //    scan at a penalty price: the retention purge's scan for stale in-flight rows, every 10 s), and jit
  //    is off, since that penalty price would otherwise cross jit_above_cost and compile the plan (tens
  //    of milliseconds) on every such execution. Custom planning of the batch statements had cost ~350 us
  //    of PostgreSQL's CPU per completion batch and ~190 us per claim batch (pg_stat_statements with
  //    track_planning, 32 clients, batches of ~7): a quarter of the database's CPU per charge.
  //    [GroupCommitTest.TheApisSessionsPlanEachBatchStatementOnce,
  //     GroupCommitTest.BatchStatementsKeepUsingIndexesAfterTheTablesGrowFromEmpty]
  enum class Plans { kCustom, kPointLookups };
  Plans plans = Plans::kCustom;

  // The api's sessions: the defaults above, with Plans::kPointLookups.
  static PgSessionOptions Api() {
    PgSessionOptions o;
    o.plans = Plans::kPointLookups;
    return o;
  }
};

// Owns a PGconn. Not copyable, not thread-safe: one thread uses a connection at a time.
class PgConn {
 public:
  // Connects to `url` (a libpq URI or key=value string) with the bounds of `session` (which override any
  // the URL gives). kUnavailable if the server cannot be reached or does not answer within
  // connect_timeout.
  static Result<std::unique_ptr<PgConn>> Connect(const std::string& url, std::string_view application_name,
                                                 const PgSessionOptions& session);
  // The same with the default session bounds, apart from these two.
  static Result<std::unique_ptr<PgConn>> Connect(const std::string& url, std::string_view application_name,
                                                 std::chrono::seconds connect_timeout = std::chrono::seconds(2),
                                                 std::chrono::milliseconds statement_timeout =
                                                     std::chrono::milliseconds(10000));
  // The same, bounded by `deadline` on `clock` at millisecond granularity (libpq's own connect_timeout
  // cannot go below 2 s): for callers that must answer within about a second whatever the network does.
  static Result<std::unique_ptr<PgConn>> ConnectWithin(const std::string& url, std::string_view application_name,
                                                       Clock& clock, std::chrono::steady_clock::time_point deadline,
                                                       std::chrono::milliseconds statement_timeout);
  ~PgConn();
  PgConn(const PgConn&) = delete;
  PgConn& operator=(const PgConn&) = delete;

  // Runs one statement with text parameters ($1, $2, ...), as a named prepared statement.
  // kUnavailable when the connection broke; then reply_lost() says whether the statement had been sent.
  Result<PgResult> Exec(std::string_view sql, const Params& params = {});
  // Runs SQL text with no parameters and possibly several statements (migrations, BEGIN/COMMIT).
  Result<PgResult> ExecSimple(std::string_view sql);

  Status Begin();
  // kOutcomeUnknown if the connection dropped during COMMIT: the transaction may or may not be durable.
  // kOutcomeUnknown too when PostgreSQL answered OK with its warning that the commit's wait for a synchronous
  // standby was cancelled ("committed locally, but might not have been replicated"): a failover may lose it.
  // kUnavailable if it was already gone before COMMIT was sent (the server rolled the transaction back).
  Status Commit();
  // COMMIT that stops waiting at `deadline`: past it, a commit still waiting for its synchronous standby is
  // cancelled (it stays committed locally, unreplicated) and the answer is kOutcomeUnknown; with no answer
  // 2 s after the cancel the connection is given up (reply_lost()). Otherwise as Commit(). Without
  // synchronous replication the COMMIT returns at once.
  Status CommitWithin(Clock& clock, std::chrono::steady_clock::time_point deadline);
  void Rollback();  // best effort; a broken connection rolls back on its own

  // False once libpq reports the connection broken; the pool then discards it.
  bool healthy() const { return PQstatus(conn_) == CONNECTION_OK; }
  // True once a statement on this session was refused as read-only (SQLSTATE 25006): a session opened while
  // the database was read-only (an old primary, default_transaction_read_only) stays so for life, so the
  // pool discards it too and opens a new one.
  bool read_only_seen() const { return read_only_seen_; }
  // True when the last Exec/ExecSimple/Commit sent its statement and the connection broke before the reply:
  // an autocommit statement (or a COMMIT) may have taken effect.
  bool reply_lost() const { return reply_lost_; }
  // True when the server closed the connection (or sent anything) while it sat idle between statements:
  // unread input on an idle connection is the server's EOF or its shutdown FATAL. One poll(2), no I/O
  // wait. Such a connection must not carry another statement.
  bool ClosedWhileIdle();
  PGconn* raw() { return conn_; }

 private:
  explicit PgConn(PGconn* c);
  // libpq's notice receiver: notes PostgreSQL's "canceling wait for synchronous replication" warning (see
  // Commit), prints every other notice as libpq's default receiver does.
  static void OnNotice(void* self, const PGresult* r);
  Status FinishCommit(PGresult* r);
  Error Classify(PGresult* r, bool in_commit) const;
  // Before sending: an error if the connection is already known dead (never sent; reply_lost_ false).
  std::optional<Error> DeadBeforeSend();

  PGconn* conn_;
  bool reply_lost_ = false;
  bool sync_wait_cancelled_ = false;  // set by OnNotice during a COMMIT
  mutable bool read_only_seen_ = false;  // set by Classify
  std::unordered_map<std::string, std::string> prepared_;  // SQL text -> statement name
};

// The retry class of a SQLSTATE raised on a healthy connection. Pure.
//   23505                  -> kConflict         a unique key already exists
//   other 22xxx and 23xxx  -> kInvalidArgument  the data is refused: the same data can never succeed
//   40001, 40P01           -> kAborted          serialization failure, deadlock: retry the transaction
//   everything else        -> kUnavailable      retry later: 25006 read-only (a standby, a failover, a full
//                                               disk), 53xxx resources, 55xxx object state, 57xxx operator
//                                               intervention (57014 statement timeout), 58xxx system, 08xxx,
//                                               42xxx (e.g. a schema not migrated yet), unknown and empty codes
// "Everything else" errs on the side of retrying: treating trouble as bad data would throw away a healthy
// message or request; treating bad data as trouble only costs retries.
ErrorCode ClassifySqlstate(std::string_view sqlstate);

// A transaction guard: Begin() in Start(), ROLLBACK in the destructor unless Commit() succeeded.
class Transaction {
 public:
  static Result<std::unique_ptr<Transaction>> Start(PgConn& conn);
  ~Transaction();
  Status Commit();
  Status CommitWithin(Clock& clock, std::chrono::steady_clock::time_point deadline);  // PgConn::CommitWithin
  PgConn& conn() { return conn_; }

 private:
  explicit Transaction(PgConn& c) : conn_(c) {}
  PgConn& conn_;
  bool done_ = false;
};

// A fixed-size pool of connections, opened lazily. Acquire() blocks up to `wait` for a free slot;
// a connection that turned unhealthy is closed on release and reopened on the next Acquire.
class PgPool {
 public:
  PgPool(std::string url, std::string application_name, int size, PgSessionOptions session = {});
  ~PgPool();

  class Lease {
   public:
    Lease(PgPool* pool, std::unique_ptr<PgConn> c) : pool_(pool), conn_(std::move(c)) {}
    Lease(Lease&& o) noexcept = default;
    Lease& operator=(Lease&&) = delete;
    ~Lease();
    PgConn& operator*() { return *conn_; }
    PgConn* operator->() { return conn_.get(); }

   private:
    PgPool* pool_;
    std::unique_ptr<PgConn> conn_;
  };

  // kUnavailable when no slot frees up within `wait` or the database cannot be reached. An idle connection
  // the server closed meanwhile (restart, failover, idle timeout) is replaced, not handed out.
  Result<Lease> Acquire(std::chrono::milliseconds wait = std::chrono::milliseconds(2000));

  // A new connection to the pool's database outside the pool (same URL and application name), bounded
  // by `deadline`: for work that must not depend on a pooled connection (settling an in-doubt commit).
  Result<std::unique_ptr<PgConn>> OpenFresh(Clock& clock, std::chrono::steady_clock::time_point deadline,
                                            std::chrono::milliseconds statement_timeout);

 private:
  void Release(std::unique_ptr<PgConn> c);

  const std::string url_;
  const std::string app_;
  const PgSessionOptions session_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::unique_ptr<PgConn>> idle_;  // protected by mu_
  int free_slots_;                             // protected by mu_; includes idle_ and never-opened slots
};

// The text form of a one-dimensional PostgreSQL array of `elements` (nullopt is NULL), for a parameter cast
// to text[], bigint[], jsonb[] ... in the statement: every element double-quoted with '"' and '\\'
// backslash-escaped, so any string (also "NULL", braces, commas) travels as itself. Pure.
std::string ArrayLiteral(const std::vector<Param>& elements);

// The SQL literal for a string (for the rare statement that cannot take parameters).
std::string QuoteLiteral(PgConn& conn, std::string_view s);

}  // namespace paypath::store
