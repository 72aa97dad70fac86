// RetryingClient: performs one logical operation (a charge) against the API with retries that cannot
// double-charge. One Idempotency-Key per operation, generated (UUID v4 from the injected Random) unless
// the caller gives one, and sent unchanged on every attempt; the server turns repeats into replays.
//
// Per call:  attempt -> DecideRetry (retry_policy.h: guard clauses, backoff, Retry-After, deadline,
// budget) -> sleep (Clock::SleepFor) -> attempt ... until a guard says stop. Each attempt writes one
// transcript line (transcript.h) and bumps metrics.
//
// Metrics (registry given at construction; call_site from the options):
//   paypath_client_attempts_total{call_site,attempt="1".."10"}   attempts started, by attempt number
//     (max_attempts is capped at 10, so the label is always the exact number)
//   paypath_client_outcomes_total{call_site,outcome}             calls ended, by Outcome name
//   paypath_client_retry_decisions_total{call_site,reason}       decisions, by RetryReason name
//   paypath_client_retry_budget_exhausted_total{call_site}       (the RetryBudget's)
//
// Thread-safety: Execute/Charge may run concurrently on one client if the Transport, the Random and the
// transcript sink allow it (HttpTransport, SystemRandom and the sinks here do).
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/backoff.h"
#include "client/retry_budget.h"
#include "client/retry_policy.h"
#include "client/transcript.h"
#include "client/transport.h"
#include "common/clock.h"
#include "common/metrics.h"
#include "common/random.h"
#include "common/result.h"

namespace paypath::client {

inline constexpr int kMaxAttemptsLimit = 10;

struct ClientOptions {
  std::string call_site = "default";  // metrics label; also names the shared budget
  // 4 attempts = 3 retries: with base 100 ms the windows are 200, 400, 800 ms, so the retries are
  // spread over up to ~1.4 s; enough to ride out a restart or a lost response, short enough that a
  // person at a checkout is not left waiting.
  int max_attempts = 4;
  std::chrono::milliseconds base{100};
  std::chrono::milliseconds cap{2000};  // one wait never exceeds 2 s of backoff (Retry-After may)
  // A charge takes a few ms; 2 s is far above the API's p99 yet bounds a hung connection.
  std::chrono::milliseconds attempt_timeout{2000};
  // The whole call, sleeps included. 10 s covers the API's Retry-After hints (1-2 s) a few times over.
  std::chrono::milliseconds deadline{10000};

  // kInvalidArgument naming the first bad field: max_attempts in [1, 10], base > 0, cap >= base,
  // attempt_timeout > 0, deadline > 0, call_site non-empty.
  Status Validate() const;
};

// How a call ended. Names (OutcomeName) are the outcome label values.
enum class Outcome {
  kCreated,          // "created": 2xx, first execution
  kReplayed,         // "replayed": 2xx with Idempotent-Replayed: true (an earlier attempt or call did it)
  kRejected,         // "rejected": a final non-2xx status (4xx, 500, ...)
  kGaveUp,           // "gave_up": retryable failures until attempts, deadline or Retry-After ran out
  kBudgetExhausted,  // "budget_exhausted": a retry was needed but the call site's budget refused it
};
const char* OutcomeName(Outcome o);

// True for the API's 503 problem `outcome-unknown` (application/problem+json, type ending in
// "/problems/outcome-unknown"): the attempt may have charged.
bool IsOutcomeUnknownProblem(const HttpResponse& r);

struct CallResult {
  Outcome outcome = Outcome::kGaveUp;
  std::string key;  // the Idempotency-Key used on every attempt
  int attempts = 0;
  RetryReason final_reason = RetryReason::kSucceeded;
  Exchange last;  // the last attempt's exchange (its response, if it got one)
  // True when the call did not end with a definitive answer (2xx, or a final 4xx) and some attempt may
  // have reached the API (a timeout, a lost response, 409 in flight, 502/504 from a proxy, the API's 503
  // outcome-unknown, any other 5xx): the charge may exist. Repeat the call with the same key to learn the
  // outcome; never with a new key. A 503 "nothing was charged" speaks only for its own attempt.
  bool outcome_unknown = false;

  bool ok() const { return outcome == Outcome::kCreated || outcome == Outcome::kReplayed; }
  // Ok for created/replayed; otherwise kOutcomeUnknown (outcome_unknown, which every final 5xx sets),
  // kInvalidArgument (rejected 4xx) or kUnavailable (gave up or budget exhausted, nothing charged).
  Status ToStatus() const;
};

// The exit codes of `paypath charge`, one per kind of ending (docs/client.md):
inline constexpr int kExitCharged = 0;         // created or replayed
inline constexpr int kExitRefused = 1;         // a final 4xx: nothing was charged by this call
inline constexpr int kExitUsage = 2;           // bad flags or settings; nothing was sent
inline constexpr int kExitOutcomeUnknown = 3;  // the charge may exist: retry with the printed --key
inline constexpr int kExitNotCharged = 4;      // gave up, and no attempt can have charged
int ExitCodeFor(const CallResult& r);

// One logical operation: a request sent up to max_attempts times with one key.
struct Operation {
  std::string name = "charge";     // transcript "operation"
  HttpRequest request;             // without Idempotency-Key (added here)
  std::string idempotency_key;     // empty: generate a UUID v4
};

struct ChargeRequest {
  std::string account_id;
  int64_t amount = 0;  // minor units
  std::string currency;
  std::string description;  // optional; omitted from the body when empty
  std::string idempotency_key;  // optional
};

// The JSON body for POST /v1/charges.
std::string ChargeBody(const ChargeRequest& c);

class RetryingClient {
 public:
  // All references must outlive the client. `budget` and `transcript` may be null (none). Options must
  // be valid (Validate); an invalid set is a bug and asserts.
  RetryingClient(Transport& transport, Clock& clock, Random& random, ClientOptions options, RetryBudget* budget,
                 TranscriptSink* transcript, metrics::Registry& registry = metrics::Registry::Default());

  // Runs the operation to its end (see the header comment). Never throws; every ending is a CallResult.
  CallResult Execute(Operation op);

  // POST /v1/charges with Authorization: Bearer api_key and the charge's JSON body.
  CallResult Charge(const ChargeRequest& charge, const std::string& api_key);

 private:
  Transport& transport_;
  Clock& clock_;
  Random& random_;
  const ClientOptions options_;
  const Backoff backoff_;
  RetryBudget* budget_;
  TranscriptSink* transcript_;
  metrics::Registry& registry_;
  std::vector<metrics::Counter*> attempt_counters_;  // index attempt-1
};

}  // namespace paypath::client
