// An asynchronous, pipelined Redis client: many callers' commands share one TCP connection and one
// thread, so no caller's thread waits for Redis (issue 11 item 3).
//
// Redis is a hint in paypath (store/hot_tier.h): every error here means "no answer", which callers treat
// as a miss. The client never retries a command itself.
//
// Model: one I/O thread (its own io_context) owns one connection. Run() encodes a group of commands on the
// caller's thread (hiredis' redisFormatCommandArgv) and hands them to the I/O thread, which appends them
// to one write buffer: everything queued while a write is on the wire leaves in the next single write
// (coalesced). Replies are parsed with hiredis' reader and matched to groups in FIFO order (Redis answers
// in order on a connection), so each group's callback gets exactly its own replies, in its command order.
//
// Connecting: lazily, on the first command after construction or after a failure. AUTH (user and
// password, or password alone) and SELECT <db> are pipelined first on the new connection, before any
// queued command. A refused AUTH or SELECT fails the connection with kFailedPrecondition (its message
// names the user and RedisAddress::Describe(), never the password; the command is never logged).
//
// Bounds:
//   - deadline: every group must be answered within `timeout` of its submission (connect time included).
//     When the oldest outstanding group is overdue the connection is failed: every outstanding callback
//     gets kUnavailable at once, the socket is closed, and the next command reconnects. (The deadline runs
//     on the real steady clock, as a socket timeout does: an injected FakeClock must never stall I/O.)
//   - outstanding: at most `max_outstanding` commands submitted and not yet answered; beyond it Run fails
//     the new group at once (kUnavailable) without queueing anything.
// Cooldown after errors (no attempts for a while) is the caller's policy (HotTier), not this client's.
//
// Threads: Run is thread-safe. `done` runs exactly once: on the client's I/O thread, or inline on the
// caller's thread before Run returns when the group is refused at submission (over the bound, client
// shutting down). Callers hand their continuation to their own executor (the api: Responder::Post) and
// must not block in `done`. The destructor fails every outstanding group with kUnavailable (their
// callbacks run on the I/O thread before it is joined) and joins the thread; it must not run on the I/O
// thread itself. Destroy the client after whoever posts continuations into executors that die earlier,
// or make sure those executors accept late posts (http::Server drains its requests before stopping).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "common/result.h"
#include "store/redis.h"

namespace paypath::store {

// One reply, copied out of hiredis' redisReply.
struct RedisReply {
  enum class Type { kNil, kString, kStatus, kInteger, kError, kArray };
  Type type = Type::kNil;
  std::string str;      // kString, kStatus, kError (the server's message)
  int64_t integer = 0;  // kInteger
  // Arrays keep no elements: none of paypath's commands answers one.
};

struct AsyncRedisOptions {
  // The hot tier's per-call budget: a local Redis answers in well under a millisecond, so 100 ms only
  // passes when it is stalled or gone, and a request then falls through to PostgreSQL.
  std::chrono::milliseconds timeout{100};
  // 4096: twice the commands of api::ChargeOptions::max_pending requests with two commands each, so a full
  // api never hits it while Redis is healthy; a stalled Redis cannot queue unbounded memory (~100 bytes each).
  size_t max_outstanding = 4096;
};

class AsyncRedis {
 public:
  using Command = std::vector<std::string>;
  // One reply per command of the group, in order (an error reply is a kError reply, not an Error), or the
  // group's Error: kUnavailable (I/O error, timeout, bound, shutdown) or kFailedPrecondition (credentials
  // or database number refused).
  using Done = std::function<void(Result<std::vector<RedisReply>>)>;

  AsyncRedis(RedisAddress addr, AsyncRedisOptions options = {});
  ~AsyncRedis();
  AsyncRedis(const AsyncRedis&) = delete;
  AsyncRedis& operator=(const AsyncRedis&) = delete;

  // Sends `commands` (at least one) pipelined, in order, and calls `done` once with their replies.
  void Run(std::vector<Command> commands, Done done);

  // Counters for tests and the bench (monotonic).
  struct Stats {
    uint64_t commands = 0;  // commands written (handshake included)
    uint64_t writes = 0;    // socket writes that carried them (commands / writes = coalescing)
    uint64_t connects = 0;  // connections opened
    uint64_t failures = 0;  // connections failed (I/O error, deadline, refused handshake)
  };
  Stats stats() const;
  const RedisAddress& address() const { return addr_; }

 private:
  struct Impl;
  const RedisAddress addr_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace paypath::store
