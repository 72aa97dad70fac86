#include "outbox/token_bucket.h"

#include <gtest/gtest.h>

#include "common/clock.h"

namespace paypath::outbox {
namespace {

using std::chrono::milliseconds;

TEST(TokenBucket, StartsFullAtBurst) {
  FakeClock clock;
  TokenBucket b(clock, 10, 5);
  EXPECT_DOUBLE_EQ(b.Available(), 5);
  EXPECT_TRUE(b.TryTake(5));
  EXPECT_DOUBLE_EQ(b.Available(), 0);
  EXPECT_FALSE(b.TryTake(1));
}

TEST(TokenBucket, RefillsAtRatePerElapsedTime) {
  FakeClock clock;
  TokenBucket b(clock, 10, 5);
  ASSERT_TRUE(b.TryTake(5));
  clock.Advance(milliseconds(100));  // 10/s * 0.1 s = 1 token
  EXPECT_DOUBLE_EQ(b.Available(), 1);
  clock.Advance(milliseconds(250));  // +2.5
  EXPECT_DOUBLE_EQ(b.Available(), 3.5);
  EXPECT_FALSE(b.TryTake(4));
  EXPECT_DOUBLE_EQ(b.Available(), 3.5);  // a refused take takes nothing
  EXPECT_TRUE(b.TryTake(3));
  EXPECT_DOUBLE_EQ(b.Available(), 0.5);
}

TEST(TokenBucket, NeverHoldsMoreThanBurst) {
  FakeClock clock;
  TokenBucket b(clock, 10, 5);
  ASSERT_TRUE(b.TryTake(2));
  clock.Advance(std::chrono::hours(1));
  EXPECT_DOUBLE_EQ(b.Available(), 5);
}

TEST(TokenBucket, TakeMayGoIntoDebtThatRefillRepays) {
  FakeClock clock;
  TokenBucket b(clock, 100, 10);
  b.Take(15);
  EXPECT_DOUBLE_EQ(b.Available(), -5);
  clock.Advance(milliseconds(60));  // +6
  EXPECT_DOUBLE_EQ(b.Available(), 1);
}

TEST(TokenBucket, TimeUntilIsExactAndCappedAtBurst) {
  FakeClock clock;
  TokenBucket b(clock, 200, 20);
  ASSERT_TRUE(b.TryTake(20));
  // 10 tokens at 200/s: 50 ms (plus the 1 ns round-up that keeps a caller from waking early).
  EXPECT_EQ(b.TimeUntil(10), milliseconds(50) + std::chrono::nanoseconds(1));
  // Asking for more than the bucket can hold waits for a full bucket, not forever.
  EXPECT_EQ(b.TimeUntil(1000), milliseconds(100) + std::chrono::nanoseconds(1));
  clock.Advance(milliseconds(50));
  EXPECT_EQ(b.TimeUntil(10), Clock::Duration::zero());
}

TEST(TokenBucket, SustainedDrainMatchesRate) {
  // A relay loop: wait for 10 tokens, take them; 18,000 events at 500/s after a 500 burst take 35 s.
  FakeClock clock;
  TokenBucket b(clock, 500, 500);
  auto start = clock.Now();
  int sent = 0;
  while (sent < 18000) {
    if (b.TryTake(10)) {
      sent += 10;
    } else {
      clock.SleepFor(b.TimeUntil(10));
    }
  }
  double secs = std::chrono::duration<double>(clock.Now() - start).count();
  EXPECT_NEAR(secs, (18000.0 - 500.0) / 500.0, 0.01);
}

}  // namespace
}  // namespace paypath::outbox
