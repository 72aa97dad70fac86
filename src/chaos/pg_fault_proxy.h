// PgFaultProxy: a TCP proxy between a PostgreSQL client (the api) and the server that makes an outcome
// unknown on purpose. It reads just enough of the frontend protocol (v3) to find two statements in the
// client's stream and cuts the connection around them:
//   kCommit  a simple-query "COMMIT" (libpq's PQexec, what PgConn::Commit sends);
//   kClaim   the execution of a prepared statement whose text contains `claim_pattern` (by default the
//            claim's "INSERT INTO idempotency_keys"): Parse (named or unnamed), then Bind of that
//            statement, Execute and the Sync that ends the batch (PgConn::Exec sends Bind/Describe/
//            Execute/Sync; the Parse came earlier, once per connection).
// Two ways to cut, each armed for the next N matches:
//   kForwardThenCut    forward the statement (for kClaim: through its Sync, which commits the implicit
//                      transaction), close the client's connection at once, then half-close the server's
//                      side and discard its answer. The server has the whole statement and an orderly EOF
//                      after it, so it executes (commits) it; the client never learns that. This is the
//                      in-doubt COMMIT, or the lost claim reply.
//   kCutBeforeForward  close both connections without forwarding the statement (for kClaim: the Execute
//                      and what follows). The server sees EOF inside the transaction and rolls it back.
// SSLRequest and GSSENCRequest are answered "N" by the proxy itself, so the stream stays plain whatever
// the client's sslmode (connect with sslmode=disable&gssencmode=disable to skip the round trip).
// SetRefuseConnections(true) makes every new connection close at once (the database "unreachable" for new
// connections while established ones keep working), which is how tests keep an in-doubt outcome pending.
//
// Threads: one accept thread plus one per connection. Stop() (or the destructor) breaks every connection
// and joins all threads. Every public method is thread-safe.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "client/socket_io.h"
#include "common/clock.h"
#include "common/result.h"

namespace paypath::chaos {

enum class PgCutTarget { kCommit, kClaim };
enum class PgCutMode { kForwardThenCut, kCutBeforeForward };
const char* PgCutTargetName(PgCutTarget t);

// The frontend message stream of one client connection, parsed incrementally. Pure (no sockets), so the
// framing rules are unit-tested on their own (pg_fault_proxy_test.cc).
class PgFrontendStream {
 public:
  explicit PgFrontendStream(std::string claim_pattern) : claim_pattern_(std::move(claim_pattern)) {}

  struct Message {
    char type = 0;          // 0 for the untyped startup-phase packets
    std::string bytes;      // the whole message as it travels, header included
    bool ssl_request = false;    // SSLRequest or GSSENCRequest: answer 'N', do not forward
    bool commit = false;         // a simple-query COMMIT
    bool claim_execute = false;  // an Execute of the claim statement
    bool claim_sync = false;     // the Sync that ends a batch in which the claim was executed
  };

  // Appends bytes read from the client.
  void Feed(std::string_view data) { buf_.append(data); }
  // The next complete message, or nullopt until more bytes arrive. kInvalidArgument on a malformed
  // length (the connection is then beyond repair and is closed).
  Result<std::optional<Message>> Next();

 private:
  const std::string claim_pattern_;
  std::string buf_;
  bool startup_ = true;                      // before the StartupMessage: packets have no type byte
  std::set<std::string> claim_statements_;  // prepared statement names whose text matches the pattern
  bool bound_claim_ = false;                 // the last Bind named a claim statement
  bool executed_claim_ = false;              // an Execute of it is waiting for its Sync
};

struct PgFaultProxyOptions {
  std::string listen_host = "127.0.0.1";
  uint16_t listen_port = 0;  // 0: a free port (read it back with port())
  std::string upstream_host = "127.0.0.1";
  uint16_t upstream_port = 5432;
  // The claim statement's distinguishing text (matched case-insensitively in Parse messages).
  std::string claim_pattern = "INSERT INTO idempotency_keys";
  // How long the proxy drains the server's side after a forward-then-cut, so the server finishes the
  // statement with an orderly EOF after it. A COMMIT takes milliseconds; 5 s is only a bound.
  std::chrono::milliseconds drain_timeout{5000};
};

class PgFaultProxy {
 public:
  // Binds the listener and starts accepting. kUnavailable if the address cannot be bound. `clock` must
  // outlive the proxy.
  static Result<std::unique_ptr<PgFaultProxy>> Start(PgFaultProxyOptions options, Clock& clock);
  ~PgFaultProxy();
  PgFaultProxy(const PgFaultProxy&) = delete;
  PgFaultProxy& operator=(const PgFaultProxy&) = delete;

  uint16_t port() const { return port_; }

  // Cuts the next `count` matches of `target` (replacing what was armed for it before); 0 disarms.
  void Arm(PgCutTarget target, int count, PgCutMode mode = PgCutMode::kForwardThenCut);
  // While true, new connections are closed right after accept; established ones are untouched.
  void SetRefuseConnections(bool refuse) { refuse_.store(refuse); }

  struct Counts {
    int64_t connections = 0;  // accepted and relayed
    int64_t refused = 0;      // closed at once by SetRefuseConnections
    int64_t commits = 0;      // simple-query COMMITs seen
    int64_t claims = 0;       // claim executions seen (one per batch)
    int64_t commit_cuts = 0;  // of those, cut
    int64_t claim_cuts = 0;
  };
  Counts counts() const;

  // Stops accepting, breaks every connection and joins all threads. Idempotent.
  void Stop();

 private:
  PgFaultProxy(PgFaultProxyOptions options, Clock& clock) : options_(std::move(options)), clock_(clock) {}
  void AcceptLoop();
  void Serve(net::Fd client);
  // Consumes one armed cut for `target` if any; returns its mode.
  std::optional<PgCutMode> TakeCut(PgCutTarget target);
  void Drain(net::Fd upstream);
  bool Track(int fd);
  void Untrack(int fd);
  // Joins finished connection threads (all of them once stopping_ is set and the sockets are shut).
  void ReapThreads(bool all);

  const PgFaultProxyOptions options_;
  Clock& clock_;
  net::Fd listener_;
  uint16_t port_ = 0;
  std::thread accept_thread_;
  std::atomic<bool> stopping_{false};
  std::atomic<bool> refuse_{false};

  mutable std::mutex mu_;
  struct Armed {
    int count = 0;
    PgCutMode mode = PgCutMode::kForwardThenCut;
  };
  Armed armed_[2];                 // protected by mu_, indexed by PgCutTarget
  Counts counts_;                  // protected by mu_
  std::set<int> open_fds_;         // protected by mu_: sockets Stop() shuts down to wake their threads
  std::map<std::thread::id, std::thread> threads_;  // protected by mu_: connection threads
  std::vector<std::thread::id> finished_;            // protected by mu_: done, not yet joined
};

}  // namespace paypath::chaos
