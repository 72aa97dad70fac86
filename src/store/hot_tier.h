// The Redis hot tier: completed idempotency responses cached so replays skip PostgreSQL.
//
// Redis is a hint, never the truth. Only completed responses are cached (never in-flight claims: the
// lease lives in PostgreSQL alone, so there is exactly one lease to reason about). A miss, a flushed or
// restarted Redis, or an outage all fall through to PostgreSQL, which still deduplicates; losing Redis
// costs speed, never a second charge. Entries expire with the key's retention, counted on the database
// clock (the TTL is the remaining time the database computed, never the api host's wall clock).
//
// Namespacing: every key and every value names the database *instance* the response came from (see
// store/instance_id.h: a random id written by `migrate`, folded with the cluster's system identifier and
// timeline where readable). A database that was dropped and re-created, restored, or failed over gets
// another namespace, so a warm Redis can never replay a charge that database does not hold. A value is
// used only if it decodes completely and names the current namespace; anything else is kInvalid.
//
// In front of Redis, an optional bounded in-process cache of completed responses (store/response_cache.h):
// Get asks it first (a hit needs no network round trip, and survives a Redis outage), Put and a Redis hit
// fill it, SetNamespace empties it. Its entries follow the same namespace rule as Redis'.
//
// The in-flight gate (SET NX PX): before its PostgreSQL claim a request marks (tenant, key) in flight in
// Redis, so a duplicate storm is answered 409 from Redis instead of every request reaching PostgreSQL. The
// marker is only ever read as "someone with this very request is at work right now": its presence may
// answer 409 (a safe answer: retry later), its absence decides nothing (the request goes on to the
// PostgreSQL claim, which decides). A lost marker (flush, restart, eviction, outage) therefore costs
// claims, never a second charge. A marker whose request died stays until its TTL (the lease).
//
// While Redis is failing the tier stops trying for `cooldown` after each error, so an outage adds one
// failed attempt per cooldown instead of a connect timeout to every request. A wrong password is such an
// error (logged once per outage, without the password).
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
#include "store/response_cache.h"

namespace paypath::store {

class HotTier {
 public:
  // An empty url disables the tier (every Get is a miss, nothing counted as an error). `ns` is the
  // database instance namespace (InstanceIdentity::Namespace); it must not contain ':'. An empty `ns`
  // (not known yet) keeps the tier cold (misses, no writes) until SetNamespace. A url that does not parse
  // disables the tier and is logged (without its password).
  // local_entries: capacity of the in-process cache (0: none); local_max_ttl: the longest an entry is kept
  // there (a Redis hit carries no TTL, so it is kept this long; a completed record's value is immutable,
  // and serving it up to this long after the record's expiry answers what PostgreSQL would: the replay).
  HotTier(std::string url, std::string ns, Clock& clock, std::chrono::milliseconds timeout = std::chrono::milliseconds(100),
          std::chrono::milliseconds cooldown = std::chrono::milliseconds(1000), size_t local_entries = 0,
          std::chrono::milliseconds local_max_ttl = std::chrono::seconds(60));

  enum class Lookup {
    kHit,      // *out is a completed record of this namespace
    kMiss,     // no entry (or the tier is disabled)
    kError,    // Redis failed or refused us (credentials); PostgreSQL answers
    kInvalid,  // an entry that does not decode completely or names another namespace; ignored
  };
  Lookup Get(const std::string& tenant, const std::string& key, KeyRecord* out);
  // Caches a completed record for rec.ttl_ms. Errors are swallowed (and start the cooldown).
  void Put(const std::string& tenant, const std::string& key, const KeyRecord& rec);

  enum class Gate {
    kEntered,  // this request set the marker: it goes on to the PostgreSQL claim, and calls Leave after
    kHeld,     // a request with the same fingerprint holds the marker: answer 409 without PostgreSQL
    kOpen,     // no decision (tier off or cold, Redis failing, another fingerprint): PostgreSQL decides
  };
  // SET <gate key> <fingerprint> NX PX ttl; when not set, GET it to compare fingerprints (a changed
  // request must still reach PostgreSQL, which answers 422).
  Gate Enter(const std::string& tenant, const std::string& key, const std::string& fingerprint,
             std::chrono::milliseconds ttl);
  // Deletes the marker (after the request's answer is known, and after Put). Best effort.
  void Leave(const std::string& tenant, const std::string& key);

  // Switches to another namespace (the database behind the api changed: restore, failover). Thread-safe.
  void SetNamespace(std::string ns);
  std::string ns();

  // The Redis key used for (tenant, key): "pp:idem:<ns>:<tenant>:<key>". Tenants are [A-Za-z0-9_-] and the
  // namespace has no ':', so the separators are unambiguous. Never a connection string.
  static std::string RedisKey(const std::string& ns, const std::string& tenant, const std::string& key);
  // The gate marker's key: "pp:gate:<ns>:<tenant>:<key>".
  static std::string GateKey(const std::string& ns, const std::string& tenant, const std::string& key);
  // The cached value's encoding, exposed for tests:
  // "v2\n<ns>\n<fingerprint>\n<status>\n<expires_ms>\n<charge_id>\n<body length>\n<body>".
  static std::string Encode(const std::string& ns, const KeyRecord& rec);
  // The record, or nullopt unless the value decodes completely (every field well-formed, the body exactly
  // its stated length) and names `ns`.
  static std::optional<KeyRecord> Decode(const std::string& ns, const std::string& value);

 private:
  std::unique_ptr<RedisConn> Take();
  void Give(std::unique_ptr<RedisConn> c);
  void Failed(const Error& e);
  bool CoolingDown();

  const std::string url_;
  Clock& clock_;
  const std::chrono::milliseconds timeout_;
  const std::chrono::milliseconds cooldown_;
  std::optional<RedisAddress> addr_;
  ResponseCache local_;

  std::mutex mu_;
  std::string ns_;                                          // protected by mu_
  std::vector<std::unique_ptr<RedisConn>> idle_;           // protected by mu_
  std::chrono::steady_clock::time_point retry_after_{};    // protected by mu_
  bool failing_ = false;                                   // protected by mu_: since the last success
};

}  // namespace paypath::store
