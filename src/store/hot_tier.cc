#include "store/hot_tier.h"

#include <charconv>

#include "common/log.h"

namespace paypath::store {
namespace {

// Exactly a decimal integer (optional '-'), nothing before or after it.
template <typename T>
bool ParseInt(std::string_view s, T* out) {
  if (s.empty()) return false;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return ec == std::errc() && end == s.data() + s.size();
}

bool IsLowerHex64(std::string_view s) {
  return s.size() == 64 && s.find_first_not_of("0123456789abcdef") == std::string_view::npos;
}

bool IsChargeId(std::string_view s) {
  return !s.empty() && s.size() <= 64 &&
         s.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-") == std::string_view::npos;
}

}  // namespace

HotTier::HotTier(std::string url, std::string ns, Clock& clock, std::chrono::milliseconds timeout,
                 std::chrono::milliseconds cooldown, size_t local_entries, std::chrono::milliseconds local_max_ttl)
    : url_(std::move(url)),
      clock_(clock),
      timeout_(timeout),
      cooldown_(cooldown),
      local_(local_entries, local_max_ttl, clock),
      ns_(std::move(ns)) {
  if (!url_.empty()) {
    auto a = ParseRedisUrl(url_);
    if (a.ok()) {
      addr_ = a.value();
      async_ = std::make_unique<AsyncRedis>(*addr_, AsyncRedisOptions{timeout_});
    } else log::Error("redis_url_invalid", {{"error", a.error().message}});  // never echoes the password
  }
}

HotTier::~HotTier() {
  stopping_ = true;
  async_.reset();
}

std::string HotTier::RedisKey(const std::string& ns, const std::string& tenant, const std::string& key) {
  return "pp:idem:" + ns + ":" + tenant + ":" + key;
}

std::string HotTier::GateKey(const std::string& ns, const std::string& tenant, const std::string& key) {
  return "pp:gate:" + ns + ":" + tenant + ":" + key;
}

std::string HotTier::Encode(const std::string& ns, const KeyRecord& rec) {
  return "v2\n" + ns + "\n" + rec.fingerprint + "\n" + std::to_string(rec.response_status) + "\n" +
         std::to_string(rec.expires_at_unix_ms) + "\n" + rec.charge_id + "\n" +
         std::to_string(rec.response_body.size()) + "\n" + rec.response_body;
}

std::optional<KeyRecord> HotTier::Decode(const std::string& ns, const std::string& value) {
  // Seven header lines, then the body (which may itself contain newlines) of exactly the stated length.
  size_t pos = 0;
  std::string_view parts[7];
  for (auto& part : parts) {
    size_t nl = value.find('\n', pos);
    if (nl == std::string::npos) return std::nullopt;
    part = std::string_view(value).substr(pos, nl - pos);
    pos = nl + 1;
  }
  if (parts[0] != "v2" || parts[1] != ns || !IsLowerHex64(parts[2]) || !IsChargeId(parts[5])) return std::nullopt;
  KeyRecord rec;
  rec.completed = true;
  rec.fingerprint = std::string(parts[2]);
  size_t body_len = 0;
  if (!ParseInt(parts[3], &rec.response_status) || !ParseInt(parts[4], &rec.expires_at_unix_ms) ||
      !ParseInt(parts[6], &body_len))
    return std::nullopt;
  if (rec.response_status < 200 || rec.response_status > 299) return std::nullopt;  // only 2xx is ever stored
  if (value.size() - pos != body_len) return std::nullopt;  // truncated or padded
  rec.charge_id = std::string(parts[5]);
  rec.response_body = value.substr(pos);
  return rec;
}

void HotTier::SetNamespace(std::string ns) {
  {
    std::lock_guard lock(mu_);
    if (ns == ns_) return;
    ns_ = std::move(ns);
  }
  local_.Clear();  // answers for the previous database instance must not survive it
}

std::string HotTier::ns() {
  std::lock_guard lock(mu_);
  return ns_;
}

bool HotTier::CoolingDown() {
  std::lock_guard lock(mu_);
  return clock_.Now() < retry_after_;
}

void HotTier::Failed(const Error& e) {
  if (stopping_.load()) return;
  bool was_healthy;
  {
    std::lock_guard lock(mu_);
    was_healthy = !failing_;
    failing_ = true;
    retry_after_ = clock_.Now() + cooldown_;
    idle_.clear();  // connections from before the failure are suspect
  }
  // Once per outage (the first failure after a success), so an outage or a wrong password is visible
  // without a line per cooldown.
  if (was_healthy) log::Warn("redis_unavailable", {{"redis", addr_->Describe()}, {"error", e.message}});
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
  if (!c.ok()) {
    Failed(c.error());
    return nullptr;
  }
  return std::move(c.value());
}

void HotTier::Answered() {
  std::lock_guard lock(mu_);
  if (failing_) log::Info("redis_available", {{"redis", addr_->Describe()}});
  failing_ = false;
}

bool HotTier::Usable(const Result<std::vector<RedisReply>>& r) {
  if (!r.ok()) {
    Failed(r.error());
    return false;
  }
  for (const RedisReply& reply : r.value()) {
    if (reply.type != RedisReply::Type::kError) continue;
    Failed(Error::Internal("redis error reply: " + reply.str));  // NOPERM, OOM, ...: the server's text
    return false;
  }
  Answered();
  return true;
}

void HotTier::Give(std::unique_ptr<RedisConn> c) {
  if (!c->healthy()) return;
  std::lock_guard lock(mu_);
  if (failing_) log::Info("redis_available", {{"redis", addr_->Describe()}});
  failing_ = false;
  idle_.push_back(std::move(c));
}

HotTier::Lookup HotTier::Get(const std::string& tenant, const std::string& key, KeyRecord* out) {
  const std::string ns = this->ns();
  if (ns.empty()) return Lookup::kMiss;  // which database we serve is not known yet: stay cold
  if (auto local = local_.Get(ns, tenant, key)) {
    *out = std::move(*local);
    return Lookup::kHit;
  }
  if (!addr_) return Lookup::kMiss;
  if (CoolingDown()) return Lookup::kError;
  auto c = Take();
  if (!c) return Lookup::kError;
  auto v = c->Get(RedisKey(ns, tenant, key));
  if (!v.ok()) {
    Failed(v.error());
    return Lookup::kError;
  }
  Give(std::move(c));
  if (!v->has_value()) return Lookup::kMiss;
  auto rec = Decode(ns, **v);
  if (!rec) return Lookup::kInvalid;  // ignored; PostgreSQL answers instead
  local_.Put(ns, tenant, key, *rec, std::chrono::milliseconds::max());  // kept local_max_ttl
  *out = std::move(*rec);
  return Lookup::kHit;
}

void HotTier::Put(const std::string& tenant, const std::string& key, const KeyRecord& rec) {
  const std::string ns = this->ns();
  if (ns.empty() || rec.ttl_ms <= 0) return;
  local_.Put(ns, tenant, key, rec, std::chrono::milliseconds(rec.ttl_ms));
  if (!addr_ || CoolingDown()) return;
  auto c = Take();
  if (!c) return;
  auto r = c->Set(RedisKey(ns, tenant, key), Encode(ns, rec), std::chrono::milliseconds(rec.ttl_ms));
  if (!r.ok()) {
    Failed(r.error());
    return;
  }
  Give(std::move(c));
}

HotTier::Gate HotTier::Enter(const std::string& tenant, const std::string& key, const std::string& fingerprint,
                             std::chrono::milliseconds ttl) {
  const std::string ns = this->ns();
  if (!addr_ || ns.empty() || CoolingDown() || ttl.count() <= 0) return Gate::kOpen;
  auto c = Take();
  if (!c) return Gate::kOpen;
  const std::string gk = GateKey(ns, tenant, key);
  auto set = c->Set(gk, fingerprint, ttl, /*nx=*/true);
  if (!set.ok()) {
    Failed(set.error());
    return Gate::kOpen;
  }
  if (set.value()) {
    Give(std::move(c));
    return Gate::kEntered;
  }
  auto held = c->Get(gk);
  if (!held.ok()) {
    Failed(held.error());
    return Gate::kOpen;
  }
  Give(std::move(c));
  // Gone since the SET (its holder left): nothing is known, PostgreSQL decides.
  return held->has_value() && **held == fingerprint ? Gate::kHeld : Gate::kOpen;
}

void HotTier::Leave(const std::string& tenant, const std::string& key) {
  const std::string ns = this->ns();
  if (!addr_ || ns.empty() || CoolingDown()) return;
  auto c = Take();
  if (!c) return;
  Status s = c->Del(GateKey(ns, tenant, key));
  if (!s.ok()) {
    Failed(s.error());
    return;
  }
  Give(std::move(c));
}

void HotTier::BeginAsync(const std::string& tenant, const std::string& key, const std::string& fingerprint,
                         std::chrono::milliseconds ttl, Post post, std::function<void(Begun)> done) {
  const std::string ns = this->ns();
  Begun b;
  if (ns.empty()) return done(std::move(b));  // cold: a miss, no gate
  if (auto local = local_.Get(ns, tenant, key)) {
    b.lookup = Lookup::kHit;
    b.record = std::move(*local);
    return done(std::move(b));
  }
  if (!async_) return done(std::move(b));
  if (CoolingDown()) {
    b.lookup = Lookup::kError;
    return done(std::move(b));
  }
  const bool gate = ttl.count() > 0;
  std::vector<AsyncRedis::Command> cmds = {{"GET", RedisKey(ns, tenant, key)}};
  if (gate) cmds.push_back({"SET", GateKey(ns, tenant, key), fingerprint, "NX", "PX", std::to_string(ttl.count()), "GET"});
  // The replies are read on the caller's executor, not on the Redis I/O thread.
  async_->Run(std::move(cmds), [this, ns, tenant, key, fingerprint, gate, post = std::move(post),
                                done = std::move(done)](Result<std::vector<RedisReply>> r) mutable {
    post([this, ns = std::move(ns), tenant = std::move(tenant), key = std::move(key),
          fingerprint = std::move(fingerprint), gate, done = std::move(done), r = std::move(r)]() mutable {
      Begun b;
      if (!r.ok()) {
        Failed(r.error());
        b.lookup = Lookup::kError;
        return done(std::move(b));
      }
      const RedisReply& get = r.value()[0];
      bool errors = false;
      if (get.type == RedisReply::Type::kNil) {
        b.lookup = Lookup::kMiss;
      } else if (get.type == RedisReply::Type::kString) {
        if (auto rec = Decode(ns, get.str)) {
          b.lookup = Lookup::kHit;
          local_.Put(ns, tenant, key, *rec, std::chrono::milliseconds::max());  // kept local_max_ttl
          b.record = std::move(*rec);
        } else {
          b.lookup = Lookup::kInvalid;  // ignored; PostgreSQL answers instead
        }
      } else {
        Failed(Error::Internal("redis GET answered " + (get.type == RedisReply::Type::kError ? get.str : "a non-string")));
        errors = true;
        b.lookup = Lookup::kError;
      }
      if (gate) {
        const RedisReply& set = r.value()[1];
        if (set.type == RedisReply::Type::kNil) {
          // We set the marker. On a hit nobody will leave it: delete it now (the replay needs no gate).
          if (b.lookup == Lookup::kHit) LeaveAsync(tenant, key);
          else b.gate = Gate::kEntered;
        } else if (set.type == RedisReply::Type::kString) {
          // Someone else's marker: 409 only when it is this very request and Redis had no entry.
          if (b.lookup == Lookup::kMiss && set.str == fingerprint) b.gate = Gate::kHeld;
        } else {
          if (!errors) Failed(Error::Internal("redis SET NX GET answered " + (set.type == RedisReply::Type::kError ? set.str : "an unexpected reply")));
          errors = true;
        }
      }
      if (!errors) Answered();
      done(std::move(b));
    });
  });
}

void HotTier::CompleteAsync(const std::string& tenant, const std::string& key, const KeyRecord& rec, bool gated,
                            Post post, std::function<void()> done) {
  const std::string ns = this->ns();
  std::vector<AsyncRedis::Command> cmds;
  if (!ns.empty() && rec.ttl_ms > 0) {
    local_.Put(ns, tenant, key, rec, std::chrono::milliseconds(rec.ttl_ms));
    cmds.push_back({"SET", RedisKey(ns, tenant, key), Encode(ns, rec), "PX", std::to_string(rec.ttl_ms)});
  }
  if (gated && !ns.empty()) cmds.push_back({"DEL", GateKey(ns, tenant, key)});
  if (!async_ || cmds.empty() || CoolingDown()) return done();
  async_->Run(std::move(cmds), [this, post = std::move(post), done = std::move(done)](
                                   Result<std::vector<RedisReply>> r) mutable {
    post([this, done = std::move(done), r = std::move(r)] {
      Usable(r);
      done();
    });
  });
}

void HotTier::PutAsync(const std::string& tenant, const std::string& key, const KeyRecord& rec) {
  const std::string ns = this->ns();
  if (ns.empty() || rec.ttl_ms <= 0) return;
  local_.Put(ns, tenant, key, rec, std::chrono::milliseconds(rec.ttl_ms));
  if (!async_ || CoolingDown()) return;
  async_->Run({{"SET", RedisKey(ns, tenant, key), Encode(ns, rec), "PX", std::to_string(rec.ttl_ms)}},
              [this](Result<std::vector<RedisReply>> r) { Usable(r); });
}

void HotTier::LeaveAsync(const std::string& tenant, const std::string& key) {
  const std::string ns = this->ns();
  if (!async_ || ns.empty() || CoolingDown()) return;
  async_->Run({{"DEL", GateKey(ns, tenant, key)}}, [this](Result<std::vector<RedisReply>> r) { Usable(r); });
}

AsyncRedis::Stats HotTier::async_stats() const { return async_ ? async_->stats() : AsyncRedis::Stats{}; }

}  // namespace paypath::store
