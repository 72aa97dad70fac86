#include "client/retry_policy.h"

#include <algorithm>
#include <cctype>

#include "common/config.h"

namespace paypath::client {

const char* RetryReasonName(RetryReason r) {
  switch (r) {
    case RetryReason::kSucceeded: return "succeeded";
    case RetryReason::kNotRetryable: return "not_retryable";
    case RetryReason::kAttemptsExhausted: return "attempts_exhausted";
    case RetryReason::kRetryAfterBeyondDeadline: return "retry_after_beyond_deadline";
    case RetryReason::kDeadlineExceeded: return "deadline_exceeded";
    case RetryReason::kBudgetExhausted: return "budget_exhausted";
    case RetryReason::kRetryConnectFailed: return "retry_connect_failed";
    case RetryReason::kRetryTimeout: return "retry_timeout";
    case RetryReason::kRetryNoResponse: return "retry_no_response";
    case RetryReason::kRetryStatus: return "retry_status";
  }
  return "?";
}

bool IsRetryableStatus(int status) {
  switch (status) {
    case 409:  // the same key is still being processed: its result will be available soon
    case 429:  // rate limited: the limit resets
    case 502:  // a proxy could not reach the API
    case 503:  // the API is shedding load or a dependency is down
    case 504:  // a proxy timed out waiting for the API
      return true;
    default:
      return false;
  }
}

std::optional<std::chrono::milliseconds> ParseRetryAfter(const std::string& value,
                                                         std::chrono::system_clock::time_point wall_now) {
  if (value.empty()) return std::nullopt;
  if (std::all_of(value.begin(), value.end(), ::isdigit)) {
    // Ten digits of seconds is 300 years: anything longer is clamped rather than overflowing.
    if (value.size() > 10) return std::chrono::milliseconds(std::chrono::hours(24 * 365 * 300));
    return std::chrono::seconds(std::stoll(value));
  }
  auto date = ParseHttpDate(value);
  if (!date.ok()) return std::nullopt;
  auto left = date.value() - wall_now;
  if (left <= std::chrono::system_clock::duration::zero()) return std::chrono::milliseconds(0);
  return std::chrono::ceil<std::chrono::milliseconds>(left);
}

RetryDecision DecideRetry(const RetryInputs& in, const Backoff& backoff, Random& random, RetryBudget* budget) {
  RetryDecision d;
  const Exchange& ex = *in.exchange;
  const bool is_response = ex.kind == Exchange::Kind::kResponse;
  if (is_response) {
    if (auto ra = ex.response.Header("Retry-After")) d.retry_after = ParseRetryAfter(*ra, in.wall_now);
  }

  if (is_response && ex.response.status / 100 == 2) {
    d.reason = RetryReason::kSucceeded;
    return d;
  }
  if (is_response && !IsRetryableStatus(ex.response.status)) {
    d.reason = RetryReason::kNotRetryable;
    return d;
  }
  if (in.attempt >= in.max_attempts) {
    d.reason = RetryReason::kAttemptsExhausted;
    return d;
  }
  d.jitter = backoff.Delay(in.attempt, random);
  d.delay = std::max(d.jitter, d.retry_after.value_or(std::chrono::milliseconds(0)));
  if (d.retry_after && in.now + *d.retry_after >= in.deadline) {
    d.reason = RetryReason::kRetryAfterBeyondDeadline;
    return d;
  }
  if (in.now + d.delay >= in.deadline) {
    d.reason = RetryReason::kDeadlineExceeded;
    return d;
  }
  const bool timed_out = ex.kind == Exchange::Kind::kTimeout;
  if (budget != nullptr &&
      !budget->TryAcquire(timed_out ? RetryBudget::Cost::kTimeout : RetryBudget::Cost::kRetry)) {
    d.reason = RetryReason::kBudgetExhausted;
    return d;
  }
  switch (ex.kind) {
    case Exchange::Kind::kConnectFailed: d.reason = RetryReason::kRetryConnectFailed; break;
    case Exchange::Kind::kTimeout: d.reason = RetryReason::kRetryTimeout; break;
    case Exchange::Kind::kNoResponse: d.reason = RetryReason::kRetryNoResponse; break;
    case Exchange::Kind::kResponse: d.reason = RetryReason::kRetryStatus; break;
  }
  return d;
}

}  // namespace paypath::client
