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

// A parsed redis://[user[:password]@]host[:port][/db] URL. user and password are percent-decoded.
// The password is a secret: log Describe(), never the URL or the struct.
struct RedisAddress {
  std::string host = "127.0.0.1";
  int port = 6379;
  int db = 0;
  std::string user;      // empty: AUTH <password> (the `default` user)
  std::string password;  // empty: no AUTH
  // "redis://user:***@host:port/db", for logs and error messages.
  std::string Describe() const;
};
// kInvalidArgument naming what is wrong (scheme, port, database number, escapes, a user without a
// password, query strings); the message never contains the password.
Result<RedisAddress> ParseRedisUrl(const std::string& url);

// Owns a redisContext. Not copyable, not thread-safe. Any I/O error leaves the connection broken
// (healthy() false); callers drop it and reconnect later.
class RedisConn {
 public:
  // Connects, then AUTH (user and password, or password alone) and SELECT db when the address has them.
  // kUnavailable when the server cannot be reached; kFailedPrecondition when it refuses the credentials
  // or the database number (retrying will not help until the settings change).
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
