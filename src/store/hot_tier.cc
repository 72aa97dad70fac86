#include "store/hot_tier.h"

#include <cstdlib>

#include "common/log.h"

namespace paypath::store {

HotTier::HotTier(std::string url, std::string ns, Clock& clock, std::chrono::milliseconds timeout, std::chrono::milliseconds cooldown)
    : url_(std::move(url)), ns_(std::move(ns)), clock_(clock), timeout_(timeout), cooldown_(cooldown) {
  if (!url_.empty()) {
    auto a = ParseRedisUrl(url_);
    if (a.ok()) addr_ = a.value();
    else log::Error("redis_url_invalid", {{"error", a.error().message}});
  }
}

std::string HotTier::RedisKey(const std::string& ns, const std::string& tenant, const std::string& key) {
  return "pp:idem:" + ns + ":" + tenant + ":" + key;
}

std::string HotTier::Encode(const KeyRecord& rec) {
  return "v1\n" + rec.fingerprint + "\n" + std::to_string(rec.response_status) + "\n" +
         std::to_string(rec.expires_at_unix_ms) + "\n" + rec.charge_id + "\n" + rec.response_body;
}

std::optional<KeyRecord> HotTier::Decode(const std::string& value) {
  // Five header lines then the body, which may itself contain newlines.
  size_t pos = 0;
  std::string parts[5];
  for (auto& part : parts) {
    size_t nl = value.find('\n', pos);
    if (nl == std::string::npos) return std::nullopt;
    part = value.substr(pos, nl - pos);
    pos = nl + 1;
  }
  if (parts[0] != "v1" || parts[1].size() != 64) return std::nullopt;
  KeyRecord rec;
  rec.completed = true;
  rec.fingerprint = parts[1];
  rec.response_status = std::atoi(parts[2].c_str());
  rec.expires_at_unix_ms = std::strtoll(parts[3].c_str(), nullptr, 10);
  rec.charge_id = parts[4];
  rec.response_body = value.substr(pos);
  if (rec.response_status < 100 || rec.response_status > 599) return std::nullopt;
  return rec;
}

bool HotTier::CoolingDown() {
  std::lock_guard lock(mu_);
  return clock_.Now() < retry_after_;
}

void HotTier::Failed() {
  std::lock_guard lock(mu_);
  retry_after_ = clock_.Now() + cooldown_;
  idle_.clear();  // connections from before the failure are suspect
}

std::unique_ptr<RedisConn> HotTier::Take() {
  {
    std::lock_guard lock(mu_);
    if (!idle_.empty()) {
      auto c = std::move(idle_.back());
      idle_.pop_back();
      return c;
    }
  }
  auto c = RedisConn::Connect(*addr_, timeout_);
  if (!c.ok()) return nullptr;
  return std::move(c.value());
}

void HotTier::Give(std::unique_ptr<RedisConn> c) {
  if (!c->healthy()) return;
  std::lock_guard lock(mu_);
  idle_.push_back(std::move(c));
}

HotTier::Lookup HotTier::Get(const std::string& tenant, const std::string& key, KeyRecord* out) {
  if (!addr_) return Lookup::kMiss;
  if (CoolingDown()) return Lookup::kError;
  auto c = Take();
  if (!c) {
    Failed();
    return Lookup::kError;
  }
  auto v = c->Get(RedisKey(ns_, tenant, key));
  if (!v.ok()) {
    Failed();
    return Lookup::kError;
  }
  Give(std::move(c));
  if (!v->has_value()) return Lookup::kMiss;
  auto rec = Decode(**v);
  if (!rec) return Lookup::kMiss;  // an unreadable entry is ignored; PostgreSQL answers instead
  *out = std::move(*rec);
  return Lookup::kHit;
}

void HotTier::Put(const std::string& tenant, const std::string& key, const KeyRecord& rec) {
  if (!addr_ || CoolingDown()) return;
  auto wall_ms = std::chrono::duration_cast<std::chrono::milliseconds>(clock_.WallNow().time_since_epoch()).count();
  int64_t ttl = rec.expires_at_unix_ms - wall_ms;
  if (ttl <= 0) return;
  auto c = Take();
  if (!c) {
    Failed();
    return;
  }
  auto r = c->Set(RedisKey(ns_, tenant, key), Encode(rec), std::chrono::milliseconds(ttl));
  if (!r.ok()) {
    Failed();
    return;
  }
  Give(std::move(c));
}

}  // namespace paypath::store
