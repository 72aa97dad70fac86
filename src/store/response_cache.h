// ResponseCache: a bounded in-process cache of completed idempotency responses, in front of Redis (the
// first level of the hot tier, store/hot_tier.h), so a replay answers without a network round trip.
//
// A completed response is immutable until its record expires, so an entry never needs invalidating; it
// only leaves by expiry, by eviction (least recently used, beyond `capacity`), or when the database
// instance namespace changes (Clear: a restored or re-created database must never be answered for from a
// warm process, exactly as for Redis). Entries are keyed by namespace too, so a lookup under another
// namespace misses even before Clear.
// An entry lives until min(the record's remaining TTL on the database clock, when known, max_ttl) after
// it was stored, on the injected clock's steady time: never the host's wall clock.
// Metrics: paypath_idempotency_local_cache_total{result=hit|miss|evicted}, gauge
// paypath_idempotency_local_cache_entries. Thread-safe.
#pragma once

#include <chrono>
#include <cstddef>
#include <list>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>

#include "common/clock.h"
#include "common/metrics.h"
#include "store/idempotency_store.h"

namespace paypath::store {

class ResponseCache {
 public:
  // capacity 0 disables the cache (every Get misses, Put keeps nothing).
  ResponseCache(size_t capacity, std::chrono::milliseconds max_ttl, Clock& clock);

  // The completed record for (ns, tenant, key), or nullopt (absent or expired).
  std::optional<KeyRecord> Get(const std::string& ns, const std::string& tenant, const std::string& key);
  // Stores a completed record for min(ttl, max_ttl); ttl <= 0 stores nothing. Evicts the least recently
  // used entry beyond capacity.
  void Put(const std::string& ns, const std::string& tenant, const std::string& key, const KeyRecord& rec,
           std::chrono::milliseconds ttl);
  void Clear();
  size_t size() const;

 private:
  struct Entry {
    std::string id;  // ns \n tenant \n key
    KeyRecord rec;
    std::chrono::steady_clock::time_point expires;
  };
  void Erase(std::list<Entry>::iterator it);  // mu_ held

  const size_t capacity_;
  const std::chrono::milliseconds max_ttl_;
  Clock& clock_;
  metrics::Counter& hit_;
  metrics::Counter& miss_;
  metrics::Counter& evicted_;
  metrics::Gauge& entries_;

  mutable std::mutex mu_;
  std::list<Entry> lru_;                                            // protected by mu_; most recent first
  std::unordered_map<std::string, std::list<Entry>::iterator> by_id_;  // protected by mu_
};

}  // namespace paypath::store
