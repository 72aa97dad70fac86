#include "client/retry_budget.h"

#include <gtest/gtest.h>

namespace paypath::client {
namespace {

RetryBudgetOptions Small() {
  RetryBudgetOptions o;
  o.capacity = 20;
  o.retry_cost = 5;
  o.timeout_cost = 10;
  o.success_refund = 1;
  return o;
}

double Exhausted(metrics::Registry& r, const std::string& site) {
  return r.GetCounter("paypath_client_retry_budget_exhausted_total", "", {{"call_site", site}}).Value();
}

TEST(RetryBudget, DefaultsAreTheAwsRetryQuotaValues) {
  RetryBudgetOptions o;
  EXPECT_TRUE(o.enabled);
  EXPECT_EQ(o.capacity, 500);
  EXPECT_EQ(o.retry_cost, 5);
  EXPECT_EQ(o.timeout_cost, 10);
  EXPECT_EQ(o.success_refund, 1);
  EXPECT_EQ(o.reserve, 0);
}

TEST(RetryBudget, StartsFullAndARetrySpendsTheRetryCost) {
  metrics::Registry reg;
  RetryBudget b("site", Small(), reg);
  EXPECT_EQ(b.tokens(), 20);
  EXPECT_TRUE(b.TryAcquire(RetryBudget::Cost::kRetry));
  EXPECT_EQ(b.tokens(), 15);
  EXPECT_EQ(reg.GetGauge("paypath_client_retry_budget_tokens", "", {{"call_site", "site"}}).Value(), 15);
}

TEST(RetryBudget, ARetryAfterATimeoutSpendsTheTimeoutCost) {
  metrics::Registry reg;
  RetryBudget b("site", Small(), reg);
  EXPECT_TRUE(b.TryAcquire(RetryBudget::Cost::kTimeout));
  EXPECT_EQ(b.tokens(), 10);
}

TEST(RetryBudget, RefusesAndCountsOnceTheBucketCannotPayAndSpendsNothingWhenRefusing) {
  metrics::Registry reg;
  RetryBudget b("site", Small(), reg);
  EXPECT_TRUE(b.TryAcquire(RetryBudget::Cost::kTimeout));  // 10
  EXPECT_TRUE(b.TryAcquire(RetryBudget::Cost::kRetry));    // 5
  EXPECT_FALSE(b.TryAcquire(RetryBudget::Cost::kTimeout)); // would be -5
  EXPECT_EQ(b.tokens(), 5);
  EXPECT_TRUE(b.TryAcquire(RetryBudget::Cost::kRetry));    // exactly 0 is allowed
  EXPECT_FALSE(b.TryAcquire(RetryBudget::Cost::kRetry));
  EXPECT_EQ(b.tokens(), 0);
  EXPECT_EQ(Exhausted(reg, "site"), 2);
}

TEST(RetryBudget, SuccessesRefundUntilARetryIsAffordableAgainButNeverAboveCapacity) {
  metrics::Registry reg;
  RetryBudget b("site", Small(), reg);
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(b.TryAcquire(RetryBudget::Cost::kRetry));
  EXPECT_FALSE(b.TryAcquire(RetryBudget::Cost::kRetry));
  for (int i = 0; i < 4; ++i) b.OnSuccess();
  EXPECT_FALSE(b.TryAcquire(RetryBudget::Cost::kRetry));  // 4 tokens: not yet
  b.OnSuccess();
  EXPECT_TRUE(b.TryAcquire(RetryBudget::Cost::kRetry));
  for (int i = 0; i < 100; ++i) b.OnSuccess();
  EXPECT_EQ(b.tokens(), 20);
}

TEST(RetryBudget, AReserveStopsRetriesAtHalfLikeGrpcThrottling) {
  metrics::Registry reg;
  RetryBudgetOptions o;
  o.capacity = 10;
  o.retry_cost = 1;
  o.reserve = 5;  // gRPC: retry only while tokens > max_tokens / 2
  RetryBudget b("site", o, reg);
  int allowed = 0;
  while (b.TryAcquire(RetryBudget::Cost::kRetry)) ++allowed;
  EXPECT_EQ(allowed, 5);
  EXPECT_EQ(b.tokens(), 5);
}

TEST(RetryBudget, DisabledBudgetAllowsEveryRetryAndCountsNothing) {
  metrics::Registry reg;
  RetryBudgetOptions o = Small();
  o.enabled = false;
  RetryBudget b("site", o, reg);
  for (int i = 0; i < 1000; ++i) ASSERT_TRUE(b.TryAcquire(RetryBudget::Cost::kTimeout));
  EXPECT_EQ(b.tokens(), 20);
  EXPECT_EQ(Exhausted(reg, "site"), 0);
}

TEST(RetryBudget, CallSitesHaveSeparateBucketsAndCounters) {
  metrics::Registry reg;
  RetryBudget a("a", Small(), reg), b("b", Small(), reg);
  while (a.TryAcquire(RetryBudget::Cost::kRetry)) {
  }
  EXPECT_TRUE(b.TryAcquire(RetryBudget::Cost::kRetry));
  EXPECT_EQ(Exhausted(reg, "a"), 1);
  EXPECT_EQ(Exhausted(reg, "b"), 0);
}

}  // namespace
}  // namespace paypath::client
