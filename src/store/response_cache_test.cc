#include "store/response_cache.h"

#include <gtest/gtest.h>

#include "store/hot_tier.h"

namespace paypath::store {
namespace {

KeyRecord Completed(const std::string& charge_id) {
  KeyRecord r;
  r.completed = true;
  r.fingerprint = std::string(64, 'a');
  r.response_status = 201;
  r.response_body = "{\"id\":\"" + charge_id + "\"}";
  r.charge_id = charge_id;
  r.ttl_ms = 3600000;
  return r;
}

TEST(ResponseCacheTest, HoldsAtMostItsCapacityEvictingTheLeastRecentlyUsed) {
  FakeClock clock;
  ResponseCache cache(4, std::chrono::seconds(60), clock);
  for (int i = 0; i < 4; ++i) cache.Put("ns", "t", "k" + std::to_string(i), Completed("ch_" + std::to_string(i)), std::chrono::hours(1));
  ASSERT_TRUE(cache.Get("ns", "t", "k0").has_value());  // k0 is now the most recent; k1 the least
  for (int i = 4; i < 10; ++i) cache.Put("ns", "t", "k" + std::to_string(i), Completed("ch_" + std::to_string(i)), std::chrono::hours(1));
  EXPECT_EQ(cache.size(), 4u);
  EXPECT_FALSE(cache.Get("ns", "t", "k1").has_value());
  EXPECT_FALSE(cache.Get("ns", "t", "k0").has_value());  // used before six newer ones came
  auto last = cache.Get("ns", "t", "k9");
  ASSERT_TRUE(last.has_value());
  EXPECT_EQ(last->charge_id, "ch_9");
}

TEST(ResponseCacheTest, AnEntryExpiresAtTheShorterOfItsTtlAndTheMaximum) {
  FakeClock clock;
  ResponseCache cache(8, std::chrono::seconds(60), clock);
  cache.Put("ns", "t", "short", Completed("ch_s"), std::chrono::seconds(5));
  cache.Put("ns", "t", "long", Completed("ch_l"), std::chrono::hours(5));
  clock.Advance(std::chrono::seconds(5));
  EXPECT_FALSE(cache.Get("ns", "t", "short").has_value());
  EXPECT_TRUE(cache.Get("ns", "t", "long").has_value());
  clock.Advance(std::chrono::seconds(55));
  EXPECT_FALSE(cache.Get("ns", "t", "long").has_value());
  EXPECT_EQ(cache.size(), 0u);
}

TEST(ResponseCacheTest, AnotherNamespaceNeverSeesTheEntryAndTheHotTierEmptiesItOnANamespaceChange) {
  FakeClock clock;
  ResponseCache cache(8, std::chrono::seconds(60), clock);
  cache.Put("ns1", "t", "k", Completed("ch_1"), std::chrono::hours(1));
  EXPECT_FALSE(cache.Get("ns2", "t", "k").has_value());
  EXPECT_TRUE(cache.Get("ns1", "t", "k").has_value());

  // The hot tier without Redis: its in-process level alone.
  HotTier hot("", "ns1", clock, std::chrono::milliseconds(100), std::chrono::milliseconds(1000), 8);
  hot.Put("t", "k", Completed("ch_1"));
  KeyRecord out;
  ASSERT_EQ(hot.Get("t", "k", &out), HotTier::Lookup::kHit);
  EXPECT_EQ(out.charge_id, "ch_1");
  hot.SetNamespace("ns2");  // the database behind the api changed (restore, failover)
  EXPECT_EQ(hot.Get("t", "k", &out), HotTier::Lookup::kMiss);
  hot.SetNamespace("ns1");  // and back: emptied, not hidden
  EXPECT_EQ(hot.Get("t", "k", &out), HotTier::Lookup::kMiss);
}

TEST(ResponseCacheTest, CapacityZeroKeepsNothing) {
  FakeClock clock;
  ResponseCache cache(0, std::chrono::seconds(60), clock);
  cache.Put("ns", "t", "k", Completed("ch"), std::chrono::hours(1));
  EXPECT_FALSE(cache.Get("ns", "t", "k").has_value());
}

}  // namespace
}  // namespace paypath::store
