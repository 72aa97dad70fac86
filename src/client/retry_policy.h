// The retry decision after one attempt: a list of guard clauses, each returning a reason. Every reason
// has its own counter (paypath_client_retry_decisions_total{call_site,reason}), so "why did we (not)
// retry" is answered by metrics, not by reading logs.
//
// What is retried, and why it is safe: every attempt carries the same Idempotency-Key, so the server runs
// the charge at most once and answers a repeat with the stored result. Retrying is therefore safe even when
// the previous attempt's outcome is unknown (timeout, connection dropped mid-response).
//   retried:  connection failures, timeouts, no complete response; 409 (the same key is still in flight),
//             429 (rate limited), 502, 503, 504 (the path to or the API itself is temporarily unable).
//   final:    2xx (success; a replay too); every other status, including 400, 401, 413, 415, 422 and
//             the remaining 4xx (the request itself is wrong: a retry gets the same answer) and
//             500/501/505 (a server bug or refusal: repeating the identical request repeats the answer).
#pragma once

#include <chrono>
#include <optional>
#include <string>

#include "common/backoff.h"
#include "client/retry_budget.h"
#include "client/transport.h"
#include "common/random.h"

namespace paypath::client {

enum class RetryReason {
  // Stop: the call ends with this attempt.
  kSucceeded,                 // 2xx
  kNotRetryable,              // a status that a repeat would not change
  kAttemptsExhausted,         // this was attempt max_attempts
  kRetryAfterBeyondDeadline,  // waiting out Retry-After would end at or past the deadline
  kDeadlineExceeded,          // the backoff delay would end at or past the deadline
  kBudgetExhausted,           // the call site's retry budget refused (fail fast)
  // Retry: another attempt follows after the chosen delay.
  kRetryConnectFailed,
  kRetryTimeout,
  kRetryNoResponse,
  kRetryStatus,  // 409, 429, 502, 503, 504
};
const char* RetryReasonName(RetryReason r);
inline bool IsRetry(RetryReason r) { return r >= RetryReason::kRetryConnectFailed; }

// True for the statuses worth retrying with the same key: 409, 429, 502, 503, 504.
bool IsRetryableStatus(int status);

// Parses a Retry-After value: delta-seconds ("3") or an IMF-fixdate, relative to `wall_now`. A date in the
// past gives 0. Anything else gives nullopt (ignored, as RFC 9110 allows).
std::optional<std::chrono::milliseconds> ParseRetryAfter(const std::string& value,
                                                         std::chrono::system_clock::time_point wall_now);

struct RetryDecision {
  RetryReason reason = RetryReason::kSucceeded;
  std::chrono::milliseconds delay{0};   // retries: the wait before the next attempt
  std::chrono::milliseconds jitter{0};  // the backoff's draw (before Retry-After), when one was drawn
  std::optional<std::chrono::milliseconds> retry_after;  // parsed Retry-After, if the response had one
  bool retry() const { return IsRetry(reason); }
};

struct RetryInputs {
  const Exchange* exchange = nullptr;  // the attempt just made
  int attempt = 1;                     // 1-based number of that attempt
  int max_attempts = 1;
  std::chrono::steady_clock::time_point now;       // after the attempt
  std::chrono::steady_clock::time_point deadline;  // the whole call's
  std::chrono::system_clock::time_point wall_now;  // for Retry-After dates
};

// The guard clauses, in order; the first that applies decides:
//   1. 2xx                                   -> kSucceeded
//   2. a response with a final status        -> kNotRetryable
//   3. attempt == max_attempts               -> kAttemptsExhausted
//   4. draw delay = max(backoff.Delay(attempt), Retry-After)   (attempt n failing means retry n follows)
//   5. now + Retry-After >= deadline         -> kRetryAfterBeyondDeadline
//   6. now + delay >= deadline               -> kDeadlineExceeded
//   7. budget refuses the retry's cost       -> kBudgetExhausted
//   8. otherwise                             -> kRetry* by what went wrong
// The budget is asked last because asking spends tokens: a retry stopped by any earlier guard costs none.
// `budget` may be null (no budget). Draws one value from `random` when it reaches step 4.
RetryDecision DecideRetry(const RetryInputs& in, const Backoff& backoff, Random& random, RetryBudget* budget);

}  // namespace paypath::client
