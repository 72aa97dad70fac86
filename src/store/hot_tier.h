// The Redis hot tier: completed idempotency responses cached so replays skip PostgreSQL.
//
// Redis is a hint, never the truth. Only completed responses are cached (never in-flight claims: the
// lease lives in PostgreSQL alone, so there is exactly one lease to reason about). A miss, a flushed or
// restarted Redis, or an outage all fall through to PostgreSQL, which still deduplicates; losing Redis
// costs speed, never a second charge. Entries expire with the key's retention.
//
// While Redis is failing the tier stops trying for `cooldown` after each error, so an outage adds one
// failed attempt per cooldown instead of a connect timeout to every request.
#pragma once

#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "common/clock.h"
#include "store/idempotency_store.h"
#include "store/redis.h"

namespace paypath::store {

class HotTier {
 public:
  // An empty url disables the tier (every Get is a miss, nothing counted as an error). `ns` namespaces the
  // Redis keys by source of truth (the api passes its database name): a Redis shared by several databases,
  // or one that outlived a database that was dropped and re-created, can then never answer for the wrong one.
  HotTier(std::string url, std::string ns, Clock& clock, std::chrono::milliseconds timeout = std::chrono::milliseconds(100),
          std::chrono::milliseconds cooldown = std::chrono::milliseconds(1000));

  enum class Lookup { kHit, kMiss, kError };
  // On kHit, *out is the completed record (fingerprint, status, body, charge id, expiry).
  Lookup Get(const std::string& tenant, const std::string& key, KeyRecord* out);
  // Caches a completed record until its expiry. Errors are swallowed (and start the cooldown).
  void Put(const std::string& tenant, const std::string& key, const KeyRecord& rec);

  // The Redis key used for (tenant, key): "pp:idem:<ns>:<tenant>:<key>". Tenants are [A-Za-z0-9_-] and the
  // namespace is a database name, so the ':' separators are unambiguous.
  static std::string RedisKey(const std::string& ns, const std::string& tenant, const std::string& key);
  // The cached value's encoding, exposed for tests: "v1\n<fingerprint>\n<status>\n<expires_ms>\n<charge_id>\n<body>".
  static std::string Encode(const KeyRecord& rec);
  static std::optional<KeyRecord> Decode(const std::string& value);

 private:
  std::unique_ptr<RedisConn> Take();
  void Give(std::unique_ptr<RedisConn> c);
  void Failed();
  bool CoolingDown();

  const std::string url_;
  const std::string ns_;
  Clock& clock_;
  const std::chrono::milliseconds timeout_;
  const std::chrono::milliseconds cooldown_;
  std::optional<RedisAddress> addr_;

  std::mutex mu_;
  std::vector<std::unique_ptr<RedisConn>> idle_;           // protected by mu_
  std::chrono::steady_clock::time_point retry_after_{};    // protected by mu_
};

}  // namespace paypath::store
