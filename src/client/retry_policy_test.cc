#include "client/retry_policy.h"

#include <gtest/gtest.h>

#include <set>

#include "common/clock.h"
#include "common/config.h"

namespace paypath::client {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

TEST(RetryPolicy, RetriesExactly409And429And502And503And504AmongAllStatuses) {
  std::set<int> retried;
  for (int s = 100; s < 600; ++s)
    if (IsRetryableStatus(s)) retried.insert(s);
  EXPECT_EQ(retried, (std::set<int>{409, 429, 502, 503, 504}));
}

TEST(RetryPolicy, RetryAfterParsesDeltaSeconds) {
  FakeClock clock;
  EXPECT_EQ(ParseRetryAfter("0", clock.WallNow()), milliseconds(0));
  EXPECT_EQ(ParseRetryAfter("3", clock.WallNow()), milliseconds(3000));
}

TEST(RetryPolicy, RetryAfterParsesAnHttpDateRelativeToWallTime) {
  FakeClock clock;
  EXPECT_EQ(ParseRetryAfter(FormatHttpDate(clock.WallNow() + seconds(7)), clock.WallNow()), milliseconds(7000));
  EXPECT_EQ(ParseRetryAfter(FormatHttpDate(clock.WallNow() - seconds(7)), clock.WallNow()), milliseconds(0));
}

TEST(RetryPolicy, RetryAfterGarbageIsIgnored) {
  FakeClock clock;
  EXPECT_FALSE(ParseRetryAfter("", clock.WallNow()).has_value());
  EXPECT_FALSE(ParseRetryAfter("-1", clock.WallNow()).has_value());
  EXPECT_FALSE(ParseRetryAfter("1.5", clock.WallNow()).has_value());
  EXPECT_FALSE(ParseRetryAfter("tomorrow", clock.WallNow()).has_value());
}

class DecideRetryTest : public ::testing::Test {
 protected:
  RetryDecision Decide(const Exchange& ex, int attempt, milliseconds left, RetryBudget* budget = nullptr) {
    RetryInputs in;
    in.exchange = &ex;
    in.attempt = attempt;
    in.max_attempts = 4;
    in.now = clock_.Now();
    in.deadline = clock_.Now() + left;
    in.wall_now = clock_.WallNow();
    return DecideRetry(in, backoff_, random_, budget);
  }
  static Exchange Status(int status, std::string retry_after = "") {
    Exchange ex;
    ex.kind = Exchange::Kind::kResponse;
    ex.response.status = status;
    if (!retry_after.empty()) ex.response.headers.emplace_back("retry-after", retry_after);
    return ex;
  }
  FakeClock clock_;
  FakeRandom random_;
  Backoff backoff_{milliseconds(100), milliseconds(1000)};
  metrics::Registry registry_;
};

TEST_F(DecideRetryTest, SuccessAndFinalStatusesStopBeforeDrawingOrSpending) {
  RetryBudget budget("s", {}, registry_);
  random_.PushUniform(0.5);
  EXPECT_EQ(Decide(Status(201), 1, seconds(10), &budget).reason, RetryReason::kSucceeded);
  EXPECT_EQ(Decide(Status(422), 1, seconds(10), &budget).reason, RetryReason::kNotRetryable);
  EXPECT_EQ(Decide(Status(503), 4, seconds(10), &budget).reason, RetryReason::kAttemptsExhausted);
  EXPECT_EQ(budget.tokens(), 500);
  EXPECT_EQ(backoff_.Delay(1, random_), milliseconds(100));  // the pushed value is still unused
}

TEST_F(DecideRetryTest, ADeadlineStopSpendsNoBudget) {
  RetryBudget budget("s", {}, registry_);
  random_.PushUniform(0.5);  // 100 ms jitter
  RetryDecision d = Decide(Status(503), 1, milliseconds(100), &budget);
  EXPECT_EQ(d.reason, RetryReason::kDeadlineExceeded);
  EXPECT_EQ(budget.tokens(), 500);
}

TEST_F(DecideRetryTest, RetryAfterHeaderNameIsCaseInsensitiveAndRaisesTheDelay) {
  random_.PushUniform(0.5);
  RetryDecision d = Decide(Status(429, "2"), 1, seconds(10));
  EXPECT_EQ(d.reason, RetryReason::kRetryStatus);
  EXPECT_EQ(d.jitter, milliseconds(100));
  EXPECT_EQ(d.retry_after, milliseconds(2000));
  EXPECT_EQ(d.delay, milliseconds(2000));
}

TEST_F(DecideRetryTest, FailuresWithoutAResponseRetryWithTheirOwnReasons) {
  Exchange cf, to, nr;
  cf.kind = Exchange::Kind::kConnectFailed;
  to.kind = Exchange::Kind::kTimeout;
  nr.kind = Exchange::Kind::kNoResponse;
  EXPECT_EQ(Decide(cf, 1, seconds(10)).reason, RetryReason::kRetryConnectFailed);
  EXPECT_EQ(Decide(to, 1, seconds(10)).reason, RetryReason::kRetryTimeout);
  EXPECT_EQ(Decide(nr, 1, seconds(10)).reason, RetryReason::kRetryNoResponse);
}

}  // namespace
}  // namespace paypath::client
