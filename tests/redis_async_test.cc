// The asynchronous Redis client (store/redis_async.h) and the hot tier's async forms (store/hot_tier.h)
// against the stack's real Redis, as the api's ACL user (PAYPATH_REDIS_URL):
//   - many concurrent groups pipelined on one connection, each callback with exactly its own replies,
//     in submission order per submitting thread, written coalesced;
//   - AUTH + SELECT from the URL; a wrong password is kFailedPrecondition, its text and the tier's log line
//     without the password;
//   - Redis stopped and started again: the tier's lookups are errors (misses) at once, then it recovers;
//   - the tier's rules on the async path: one round trip for lookup + gate, the namespace, invalid values,
//     the gate (held / another fingerprint / deleted on a hit), and the cache write + gate delete after
//     the commit.
// Timeouts against a silent peer live in tests/timeouts_test.cc.
#include <gtest/gtest.h>

#include <condition_variable>
#include <future>
#include <mutex>
#include <thread>

#include "common/clock.h"
#include "common/random.h"
#include "store/hot_tier.h"
#include "store/redis.h"
#include "store/redis_async.h"
#include "testing.h"

namespace paypath {
namespace {

using namespace std::chrono_literals;
using store::AsyncRedis;
using store::HotTier;
using store::RedisReply;

store::RedisAddress Address(const std::string& url) {
  auto a = store::ParseRedisUrl(url);
  EXPECT_TRUE(a.ok()) << a.error().message;
  return a.ok() ? a.value() : store::RedisAddress{};
}

// Runs one group and waits for its callback (at most 5 s: a hang fails the test, it does not block it).
Result<std::vector<RedisReply>> RunOne(AsyncRedis& redis, std::vector<AsyncRedis::Command> cmds) {
  auto p = std::make_shared<std::promise<Result<std::vector<RedisReply>>>>();
  auto f = p->get_future();
  redis.Run(std::move(cmds), [p](Result<std::vector<RedisReply>> r) { p->set_value(std::move(r)); });
  if (f.wait_for(5s) != std::future_status::ready) return Error::Internal("callback not called within 5 s");
  return f.get();
}

std::unique_ptr<store::RedisConn> Admin(int db = 0) {
  auto c = store::RedisConn::Connect(Address(testing::RedisAdminUrl()), 500ms);
  if (!c.ok()) return nullptr;
  if (db != 0 && !c.value()->Command({"SELECT", std::to_string(db)}).ok()) return nullptr;
  return std::move(c.value());
}

std::string Unique(const std::string& prefix) { return prefix + SystemRandom::Instance().Hex128().substr(0, 12); }

// A Post that runs the continuation on a thread of its own (as an I/O thread would) and records that it ran.
struct Executor {
  std::atomic<int> posted{0};
  HotTier::Post post() {
    return [this](std::function<void()> task) {
      posted.fetch_add(1);
      std::thread(std::move(task)).detach();
    };
  }
};

HotTier::Begun Begin(HotTier& tier, Executor& ex, const std::string& key, const std::string& fp,
                     std::chrono::milliseconds ttl = 5000ms) {
  auto p = std::make_shared<std::promise<HotTier::Begun>>();
  auto f = p->get_future();
  tier.BeginAsync("tenant_a", key, fp, ttl, ex.post(), [p](HotTier::Begun b) { p->set_value(std::move(b)); });
  EXPECT_EQ(f.wait_for(5s), std::future_status::ready);
  return f.get();
}

void Complete(HotTier& tier, Executor& ex, const std::string& key, const store::KeyRecord& rec, bool gated) {
  auto p = std::make_shared<std::promise<void>>();
  auto f = p->get_future();
  tier.CompleteAsync("tenant_a", key, rec, gated, ex.post(), [p] { p->set_value(); });
  EXPECT_EQ(f.wait_for(5s), std::future_status::ready);
}

store::KeyRecord Record(const std::string& fp, const std::string& charge_id) {
  store::KeyRecord rec;
  rec.completed = true;
  rec.fingerprint = fp;
  rec.response_status = 201;
  rec.response_body = "{\"id\":\"" + charge_id + "\"}";
  rec.charge_id = charge_id;
  rec.expires_at_unix_ms = 4102444800000;
  rec.ttl_ms = 60000;
  return rec;
}

TEST(AsyncRedis, ManyConcurrentGroupsArePipelinedAndEachCallbackGetsItsOwnRepliesInOrder) {
  store::AsyncRedisOptions o;
  o.max_outstanding = 16384;  // all 12,000 commands may be outstanding at once
  o.timeout = 5000ms;         // a shared, busy machine: this test is about matching, not about speed
  AsyncRedis redis(Address(testing::RedisUrl()), o);
  constexpr int kThreads = 8;
  constexpr int kGroups = 500;
  const std::string prefix = Unique("pp:test:pipe:");
  std::atomic<int> done{0}, wrong{0}, out_of_order{0};
  std::vector<int> last(kThreads, -1);  // per submitting thread: the last group answered (I/O thread only)
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kGroups; ++i) {
        const std::string k = prefix + std::to_string(t) + ":" + std::to_string(i);
        const std::string v = "value-" + std::to_string(t * kGroups + i);
        redis.Run({{"SET", k, v, "PX", "60000"}, {"GET", k}, {"DEL", k}},
                  [&, t, i, v](Result<std::vector<RedisReply>> r) {
                    if (!r.ok() || r->size() != 3 || (*r)[0].type != RedisReply::Type::kStatus ||
                        (*r)[0].str != "OK" || (*r)[1].type != RedisReply::Type::kString || (*r)[1].str != v ||
                        (*r)[2].type != RedisReply::Type::kInteger || (*r)[2].integer != 1)
                      wrong.fetch_add(1);
                    if (last[t] != i - 1) out_of_order.fetch_add(1);
                    last[t] = i;
                    done.fetch_add(1);
                  });
      }
    });
  }
  for (auto& th : threads) th.join();
  ASSERT_TRUE(testing::WaitUntil([&] { return done.load() == kThreads * kGroups; }, 10s)) << done.load();
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_EQ(out_of_order.load(), 0);
  const AsyncRedis::Stats s = redis.stats();
  EXPECT_EQ(s.connects, 1u);
  EXPECT_EQ(s.failures, 0u);
  EXPECT_EQ(s.commands, 1u + 3u * kThreads * kGroups);  // the AUTH, then every command once
  // Coalesced: groups queued while a write is on the wire leave together (4,000 groups from 8 threads
  // never take 4,000 writes).
  EXPECT_LT(s.writes, static_cast<uint64_t>(kThreads * kGroups)) << s.writes;
}

TEST(AsyncRedis, AuthAndSelectComeFromTheUrl) {
  store::RedisAddress a = Address(testing::RedisUrl());
  ASSERT_FALSE(a.user.empty());
  ASSERT_FALSE(a.password.empty());
  a.db = 5;
  AsyncRedis redis(a);
  const std::string k = Unique("pp:test:db5:");
  auto set = RunOne(redis, {{"SET", k, "in-five", "PX", "60000"}});
  ASSERT_TRUE(set.ok()) << set.error().ToString();
  ASSERT_EQ((*set)[0].type, RedisReply::Type::kStatus) << (*set)[0].str;
  auto five = Admin(5);
  auto zero = Admin(0);
  ASSERT_TRUE(five && zero);
  EXPECT_EQ(five->Get(k).value(), std::optional<std::string>("in-five"));
  EXPECT_EQ(zero->Get(k).value(), std::nullopt);
  // The ACL still binds the api user: a key outside pp:* is refused as a reply, the connection stays.
  auto other = RunOne(redis, {{"GET", "not-ours"}, {"GET", k}});
  ASSERT_TRUE(other.ok());
  EXPECT_EQ((*other)[0].type, RedisReply::Type::kError);
  EXPECT_EQ((*other)[1].str, "in-five");
  EXPECT_EQ(redis.stats().connects, 1u);
}

TEST(AsyncRedis, AWrongPasswordFailsEveryQueuedGroupAndNeverShowsThePassword) {
  store::RedisAddress a = Address(testing::RedisUrl());
  const std::string secret = "wrong-" + SystemRandom::Instance().Hex128();
  a.password = secret;
  AsyncRedis redis(a);
  std::atomic<int> failed{0};
  std::mutex mu;
  std::vector<Error> errors;
  for (int i = 0; i < 10; ++i)
    redis.Run({{"GET", "pp:x"}}, [&](Result<std::vector<RedisReply>> r) {
      std::lock_guard lock(mu);
      if (!r.ok()) errors.push_back(r.error());
      failed.fetch_add(1);
    });
  ASSERT_TRUE(testing::WaitUntil([&] { return failed.load() == 10; }, 5s));
  std::lock_guard lock(mu);
  ASSERT_EQ(errors.size(), 10u);
  for (const Error& e : errors) {
    EXPECT_EQ(e.code, ErrorCode::kFailedPrecondition) << e.ToString();
    EXPECT_NE(e.message.find("AUTH as " + a.user), std::string::npos) << e.message;
    EXPECT_EQ(e.message.find(secret), std::string::npos) << e.message;
  }
  // The hot tier logs the outage once, without the password, and answers errors (misses).
  std::string url = testing::RedisUrl();
  const std::string good = Address(url).password;
  url.replace(url.find(good), good.size(), secret);
  ::testing::internal::CaptureStderr();
  {
    HotTier tier(url, "ns", SystemClock::Instance(), 200ms, 0ms);
    Executor ex;
    EXPECT_EQ(Begin(tier, ex, "k", std::string(64, 'a')).lookup, HotTier::Lookup::kError);
  }
  const std::string log = ::testing::internal::GetCapturedStderr();
  EXPECT_NE(log.find("redis_unavailable"), std::string::npos) << log;
  EXPECT_NE(log.find("WRONGPASS"), std::string::npos) << log;
  EXPECT_EQ(log.find(secret), std::string::npos) << log;
}

TEST(AsyncRedis, ABoundOnOutstandingCommandsFailsTheExcessAtOnce) {
  store::AsyncRedisOptions o;
  o.max_outstanding = 3;
  AsyncRedis redis(Address(testing::RedisUrl()), o);
  // Four commands can never fit under a bound of three: refused inline, before Run returns, nothing sent.
  bool called = false;
  Error refused{ErrorCode::kInternal, "not called"};
  redis.Run({{"PING"}, {"PING"}, {"PING"}, {"PING"}}, [&](Result<std::vector<RedisReply>> r) {
    called = true;
    if (!r.ok()) refused = r.error();
  });
  ASSERT_TRUE(called);
  EXPECT_EQ(refused.code, ErrorCode::kUnavailable);
  EXPECT_NE(refused.message.find("outstanding"), std::string::npos) << refused.message;
  EXPECT_EQ(redis.stats().commands, 0u);
  // Three fit, and once answered there is room again.
  EXPECT_TRUE(RunOne(redis, {{"PING"}, {"PING"}, {"PING"}}).ok());
  EXPECT_TRUE(RunOne(redis, {{"PING"}, {"PING"}, {"PING"}}).ok());
}

TEST(HotTierAsync, OneRoundTripLooksUpAndEntersTheGateWithTheSameDecisionsAsGetThenEnter) {
  const std::string ns = Unique("ns");
  HotTier tier(testing::RedisUrl(), ns, SystemClock::Instance(), 100ms, 50ms);
  Executor ex;
  const std::string key = Unique("gate-");
  const std::string fp(64, 'a'), other(64, 'b');
  const uint64_t writes = tier.async_stats().writes;
  HotTier::Begun first = Begin(tier, ex, key, fp);
  EXPECT_EQ(first.lookup, HotTier::Lookup::kMiss);
  EXPECT_EQ(first.gate, HotTier::Gate::kEntered);
  // Queued while connecting: AUTH, GET and SET NX GET leave in one write.
  EXPECT_EQ(tier.async_stats().writes, writes + 1);
  EXPECT_EQ(ex.posted.load(), 1);  // the continuation went to the caller's executor
  // The same request again while the first is at work: 409 from Redis. Another fingerprint: no decision.
  EXPECT_EQ(Begin(tier, ex, key, fp).gate, HotTier::Gate::kHeld);
  EXPECT_EQ(Begin(tier, ex, key, other).gate, HotTier::Gate::kOpen);
  // The first one commits: its cache write and the gate's delete, then the replay for everyone.
  Complete(tier, ex, key, Record(fp, "ch_gate"), /*gated=*/true);
  auto admin = Admin();
  ASSERT_TRUE(admin);
  EXPECT_EQ(admin->Get(HotTier::GateKey(ns, "tenant_a", key)).value(), std::nullopt);
  auto stored = admin->Get(HotTier::RedisKey(ns, "tenant_a", key)).value();
  ASSERT_TRUE(stored.has_value());
  EXPECT_EQ(HotTier::Decode(ns, *stored)->charge_id, "ch_gate");
  // A fresh process (no local cache): a Redis hit, and the marker its SET NX just set is deleted again.
  HotTier fresh(testing::RedisUrl(), ns, SystemClock::Instance(), 100ms, 50ms, /*local_entries=*/16);
  HotTier::Begun hit = Begin(fresh, ex, key, fp);
  EXPECT_EQ(hit.lookup, HotTier::Lookup::kHit);
  EXPECT_EQ(hit.record.charge_id, "ch_gate");
  EXPECT_EQ(hit.gate, HotTier::Gate::kOpen);
  EXPECT_TRUE(testing::WaitUntil([&] { return !admin->Get(HotTier::GateKey(ns, "tenant_a", key)).value(); }, 2s));
  // Now a local hit: no I/O at all, answered inline.
  const int posted = ex.posted.load();
  const uint64_t before = fresh.async_stats().commands;
  EXPECT_EQ(Begin(fresh, ex, key, fp).lookup, HotTier::Lookup::kHit);
  EXPECT_EQ(ex.posted.load(), posted);
  EXPECT_EQ(fresh.async_stats().commands, before);
}

TEST(HotTierAsync, NamespaceAndInvalidValueRulesHoldOnTheAsyncPath) {
  const std::string ns = Unique("ns");
  auto admin = Admin();
  ASSERT_TRUE(admin);
  const std::string fp(64, 'c');
  Executor ex;
  // A cold tier (namespace not known yet) asks nothing and enters no gate.
  {
    HotTier cold(testing::RedisUrl(), "", SystemClock::Instance());
    HotTier::Begun b = Begin(cold, ex, "k", fp);
    EXPECT_EQ(b.lookup, HotTier::Lookup::kMiss);
    EXPECT_EQ(b.gate, HotTier::Gate::kOpen);
    Complete(cold, ex, "k", Record(fp, "ch_cold"), false);
    EXPECT_EQ(cold.async_stats().commands, 0u);
  }
  HotTier tier(testing::RedisUrl(), ns, SystemClock::Instance());
  // Another instance's value, a truncated one, garbage: invalid (ignored), the gate still ours to leave.
  const std::string enc = HotTier::Encode("another-instance", Record(fp, "ch_other"));
  const std::string ours = HotTier::Encode(ns, Record(fp, "ch_ours"));
  int n = 0;
  for (const std::string& v : {enc, ours.substr(0, ours.size() - 1), std::string("garbage")}) {
    SCOPED_TRACE(n);
    const std::string key = "bad" + std::to_string(n++);
    ASSERT_TRUE(admin->Set(HotTier::RedisKey(ns, "tenant_a", key), v, 60000ms).ok());
    HotTier::Begun b = Begin(tier, ex, key, fp);
    EXPECT_EQ(b.lookup, HotTier::Lookup::kInvalid);
    EXPECT_EQ(b.gate, HotTier::Gate::kEntered);
    tier.LeaveAsync("tenant_a", key);
    EXPECT_TRUE(testing::WaitUntil([&] { return !admin->Get(HotTier::GateKey(ns, "tenant_a", key)).value(); }, 2s));
  }
  // An invalid value never answers 409 either: the same fingerprint's marker held is "no decision".
  ASSERT_TRUE(admin->Set(HotTier::GateKey(ns, "tenant_a", "bad0"), fp, 60000ms).ok());
  EXPECT_EQ(Begin(tier, ex, "bad0", fp).gate, HotTier::Gate::kOpen);
  // Our value is a hit; after SetNamespace (a restore) the same key is a miss, locally and in Redis.
  ASSERT_TRUE(admin->Set(HotTier::RedisKey(ns, "tenant_a", "good"), ours, 60000ms).ok());
  HotTier::Begun hit = Begin(tier, ex, "good", fp, 0ms);  // ttl 0: no gate asked
  EXPECT_EQ(hit.lookup, HotTier::Lookup::kHit);
  EXPECT_EQ(hit.record.charge_id, "ch_ours");
  tier.SetNamespace(ns + "x");
  EXPECT_EQ(Begin(tier, ex, "good", fp, 0ms).lookup, HotTier::Lookup::kMiss);
}

TEST(HotTierAsync, RedisStoppedGivesErrorsAtOnceThenTheTierRecovers) {
  const std::string stack = testing::StackScript();
  const std::string ns = Unique("ns");
  HotTier tier(testing::RedisUrl(), ns, SystemClock::Instance(), 100ms, 200ms, /*local_entries=*/16);
  Executor ex;
  const std::string fp(64, 'd');
  ASSERT_EQ(Begin(tier, ex, "before", fp).gate, HotTier::Gate::kEntered);
  ASSERT_EQ(testing::RunShell(stack + " stop redis"), 0);
  // The connection breaks: an error (= a miss, PostgreSQL decides), no gate; then the cooldown answers
  // errors without trying; the cache write after a commit still completes (locally).
  HotTier::Begun down = Begin(tier, ex, "during", fp);
  EXPECT_EQ(down.lookup, HotTier::Lookup::kError);
  EXPECT_EQ(down.gate, HotTier::Gate::kOpen);
  const uint64_t connects = tier.async_stats().connects;
  EXPECT_EQ(Begin(tier, ex, "during", fp).lookup, HotTier::Lookup::kError);
  Complete(tier, ex, "during", Record(fp, "ch_during"), false);
  EXPECT_EQ(Begin(tier, ex, "during", fp).lookup, HotTier::Lookup::kHit);  // the local cache survives it
  EXPECT_EQ(tier.async_stats().connects, connects);
  ASSERT_EQ(testing::RunShell(stack + " start redis"), 0);
  // Back: after the cooldown the next lookup reconnects and Redis answers again.
  HotTier::Begun b;
  ASSERT_TRUE(testing::WaitUntil([&] { b = Begin(tier, ex, "after", fp); return b.lookup == HotTier::Lookup::kMiss; },
                                 10s, 50ms));
  EXPECT_EQ(b.gate, HotTier::Gate::kEntered);
  EXPECT_GT(tier.async_stats().connects, connects);
}

}  // namespace
}  // namespace paypath
