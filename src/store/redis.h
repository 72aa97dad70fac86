// Redis access over hiredis' blocking API: an owned connection with connect and command timeouts.
// Redis is only ever a hint in paypath (see docs/design.md): every caller must treat an error as a miss.
#pragma once

#include <hiredis/hiredis.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/result.h"

namespace paypath::store {

// Parsed redis://[user[:password]@]host:port[/db] URL ("redis://:password@..." or "redis://password@..."
// authenticate as the default user).
struct RedisAddress {
  std::string host = "127.0.0.1";
  int port = 6379;
  int db = 0;
  std::string user;      // empty: the default user
  std::string password;  // empty: no AUTH
};
Result<RedisAddress> ParseRedisUrl(const std::string& url);

// Owns a redisContext. Not copyable, not thread-safe. Any I/O error leaves the connection broken
// (healthy() false); callers drop it and reconnect later.
class RedisConn {
 public:
  static Result<std::unique_ptr<RedisConn>> Connect(const RedisAddress& addr, std::chrono::milliseconds timeout);
  ~RedisConn();
  RedisConn(const RedisConn&) = delete;
  RedisConn& operator=(const RedisConn&) = delete;

  // GET key: the value, nullopt when absent; kUnavailable on I/O errors.
  Result<std::optional<std::string>> Get(const std::string& key);
  // SET key value PX ttl_ms [NX]. Returns whether it was set (NX may refuse).
  Result<bool> Set(const std::string& key, const std::string& value, std::chrono::milliseconds ttl, bool nx = false);
  Status Del(const std::string& key);
  // Any command, for tests and tools (FLUSHALL, PING). Returns the reply as text (status/string/integer).
  Result<std::string> Command(const std::vector<std::string>& argv);

  bool healthy() const { return ctx_ && ctx_->err == 0; }

 private:
  explicit RedisConn(redisContext* c) : ctx_(c) {}
  Result<std::string> Run(const std::vector<std::string>& argv, int* type);
  redisContext* ctx_;
};

}  // namespace paypath::store
