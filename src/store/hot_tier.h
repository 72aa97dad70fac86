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
// Two forms of every call. The blocking ones (Get, Put, Enter, Leave: one pooled hiredis connection per
// calling thread) are for tools, tests and rare paths. The asynchronous ones serve the api's charge path
// without holding a thread (store/redis_async.h: one pipelined connection, one I/O thread):
//   BeginAsync     before the claim, ONE round trip: GET <idem key> and SET <gate key> <fp> NX PX <lease>
//                  GET, pipelined (Redis >= 7.0 takes NX with GET: nil = we set the marker, a value = the
//                  marker already there). Decisions as Get then Enter: a hit replays (and the marker we
//                  may just have set is deleted, fire-and-forget); a miss with the same fingerprint held is
//                  409; anything else goes to PostgreSQL. The local cache is asked first (no I/O on a hit).
//   CompleteAsync  after the commit, ONE round trip: SET <idem key> <value> PX <ttl> and DEL <gate key>,
//                  pipelined; its `done` runs only once Redis answered (or failed, or timed out), so the
//                  201 follows the round trip and a retry reaching another api process finds the replay,
//                  never an open gate.
//   PutAsync, LeaveAsync  fire-and-forget SET / DEL (a replay learned from PostgreSQL; leaving the gate
//                  on any other outcome). Submitted before the caller answers, so the same process's next
//                  command on the key (same connection, FIFO) sees it done.
// The async forms' `done` runs exactly once: inline when no round trip is needed (local hit, tier off or
// cold, cooling down), otherwise through `post` (the caller's executor), never on the Redis I/O thread.
//
// While Redis is failing the tier stops trying for `cooldown` after each error, so an outage adds one
// failed attempt per cooldown instead of a connect timeout to every request. A wrong password is such an
// error (logged once per outage, without the password).
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "common/clock.h"
#include "store/idempotency_store.h"
#include "store/redis.h"
#include "store/redis_async.h"
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

  // Stops the async client first (its outstanding callbacks fail quietly: a shutdown is not an outage).
  ~HotTier();
  HotTier(const HotTier&) = delete;
  HotTier& operator=(const HotTier&) = delete;

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

  // The asynchronous forms (see the top of this file).
  using Post = std::function<void(std::function<void()>)>;
  struct Begun {
    Lookup lookup = Lookup::kMiss;
    KeyRecord record;         // kHit: the completed record
    Gate gate = Gate::kOpen;  // kEntered: call CompleteAsync(gated) or LeaveAsync later. kHeld only on kMiss.
  };
  // The gate is asked only when ttl > 0. A marker we set is kept (kEntered) on every lookup but a hit, so
  // the caller leaves it; kHeld is answered only when the GET was a clean miss (as Get then Enter).
  void BeginAsync(const std::string& tenant, const std::string& key, const std::string& fingerprint,
                  std::chrono::milliseconds ttl, Post post, std::function<void(Begun)> done);
  // Caches `rec` (local and Redis, for rec.ttl_ms) and, when `gated`, deletes the gate marker; `done` after
  // Redis answered. Errors are swallowed (and start the cooldown).
  void CompleteAsync(const std::string& tenant, const std::string& key, const KeyRecord& rec, bool gated, Post post,
                     std::function<void()> done);
  void PutAsync(const std::string& tenant, const std::string& key, const KeyRecord& rec);
  void LeaveAsync(const std::string& tenant, const std::string& key);
  // The async client's counters (zeros when the tier is off), for tests and the bench.
  AsyncRedis::Stats async_stats() const;

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
  void Answered();  // Redis answered: the outage (if any) is over
  bool CoolingDown();
  // Errors of an async round trip: false (and the cooldown started) unless every reply is usable.
  bool Usable(const Result<std::vector<RedisReply>>& r);

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
  std::atomic<bool> stopping_{false};                      // the destructor runs: errors are not an outage
  // Last: destroyed first, so callbacks it fails at shutdown still find the rest of the tier.
  std::unique_ptr<AsyncRedis> async_;
};

}  // namespace paypath::store
