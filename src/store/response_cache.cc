#include "store/response_cache.h"

namespace paypath::store {
namespace {

metrics::Counter& Outcome(const char* r) {
  return metrics::Registry::Default().GetCounter(
      "paypath_idempotency_local_cache_total",
      "In-process cache of completed responses (in front of Redis), by result (hit, miss, evicted)",
      {{"result", r}});
}

std::string Id(const std::string& ns, const std::string& tenant, const std::string& key) {
  return ns + "\n" + tenant + "\n" + key;
}

}  // namespace

ResponseCache::ResponseCache(size_t capacity, std::chrono::milliseconds max_ttl, Clock& clock)
    : capacity_(capacity),
      max_ttl_(max_ttl),
      clock_(clock),
      hit_(Outcome("hit")),
      miss_(Outcome("miss")),
      evicted_(Outcome("evicted")),
      entries_(metrics::Registry::Default().GetGauge("paypath_idempotency_local_cache_entries",
                                                     "Completed responses held in the in-process cache")) {}

std::optional<KeyRecord> ResponseCache::Get(const std::string& ns, const std::string& tenant, const std::string& key) {
  if (capacity_ == 0) return std::nullopt;
  std::lock_guard lock(mu_);
  auto it = by_id_.find(Id(ns, tenant, key));
  if (it == by_id_.end()) {
    miss_.Inc();
    return std::nullopt;
  }
  if (clock_.Now() >= it->second->expires) {
    Erase(it->second);
    miss_.Inc();
    return std::nullopt;
  }
  lru_.splice(lru_.begin(), lru_, it->second);
  hit_.Inc();
  return it->second->rec;
}

void ResponseCache::Put(const std::string& ns, const std::string& tenant, const std::string& key,
                        const KeyRecord& rec, std::chrono::milliseconds ttl) {
  if (capacity_ == 0 || ttl.count() <= 0 || !rec.completed) return;
  const auto expires = clock_.Now() + std::min(ttl, max_ttl_);
  std::string id = Id(ns, tenant, key);
  std::lock_guard lock(mu_);
  if (auto it = by_id_.find(id); it != by_id_.end()) Erase(it->second);
  lru_.push_front({id, rec, expires});
  by_id_.emplace(std::move(id), lru_.begin());
  while (lru_.size() > capacity_) {
    Erase(std::prev(lru_.end()));
    evicted_.Inc();
  }
  entries_.Set(static_cast<double>(lru_.size()));
}

void ResponseCache::Clear() {
  std::lock_guard lock(mu_);
  lru_.clear();
  by_id_.clear();
  entries_.Set(0);
}

size_t ResponseCache::size() const {
  std::lock_guard lock(mu_);
  return lru_.size();
}

void ResponseCache::Erase(std::list<Entry>::iterator it) {
  by_id_.erase(it->id);
  lru_.erase(it);
  entries_.Set(static_cast<double>(lru_.size()));
}

}  // namespace paypath::store
