// RetryBudget: a token bucket shared by every call from one call site, separate from the retry policy.
// The policy says whether a failure is worth retrying; the budget says whether this call site can still
// afford retries at all. When a dependency is down, every client retrying up to max attempts multiplies the
// load by max attempts exactly when the dependency can least take it; the budget turns that into fail-fast
// once retries stop paying off.
//
// Mechanics (the AWS SDKs' retry quota, with gRPC retry throttling's reserve as an option):
//   - the bucket starts full at `capacity` tokens;
//   - each retry spends `retry_cost` tokens, or `timeout_cost` when the failed attempt timed out (a
//     timeout suggests an overloaded server that may still be working on the request, so retrying it
//     is the more expensive guess);
//   - each successful call refunds `success_refund` tokens, up to capacity;
//   - a retry is allowed only while tokens - cost >= reserve; otherwise it is refused and the call fails
//     fast ("budget exhausted"). reserve 0 is the AWS rule; reserve capacity/2 is gRPC's "retry while
//     tokens > max_tokens/2".
//
// Defaults (AWS standard mode's values) and why:
//   capacity 500, retry_cost 5, timeout_cost 10, success_refund 1, reserve 0.
//   - 500/5 = 100 retries (50 after timeouts) can be spent back-to-back from a full bucket: a blip that
//     fails a few dozen calls at once is ridden out completely.
//   - In steady state, a retry costs 5 successes' refunds, so sustained retries are capped at about 20% of
//     successful calls (retry amplification <= 1.2x) instead of max_attempts x during an outage.
//   - An error rate up to ~20% per attempt is therefore sustainable indefinitely; above that the bucket
//     drains and the call site degrades to one attempt per call until successes refill it.
// Disabled (enabled = false): every retry is allowed and nothing is counted; used to compare outages with
// and without a budget.
//
// Thread-safe.
#pragma once

#include <mutex>
#include <string>

#include "common/metrics.h"

namespace paypath::client {

struct RetryBudgetOptions {
  bool enabled = true;
  double capacity = 500;
  double retry_cost = 5;
  double timeout_cost = 10;
  double success_refund = 1;
  double reserve = 0;
};

class RetryBudget {
 public:
  enum class Cost { kRetry, kTimeout };

  // Metrics go to `registry` (kept by reference; must outlive the budget):
  //   paypath_client_retry_budget_exhausted_total{call_site}  refusals
  //   paypath_client_retry_budget_tokens{call_site}           tokens left (gauge)
  RetryBudget(std::string call_site, RetryBudgetOptions options,
              metrics::Registry& registry = metrics::Registry::Default());

  // Spends the cost of one retry if the bucket allows it. Returns false (and counts an exhaustion) when
  // it does not: the caller must not retry. Always true when disabled.
  bool TryAcquire(Cost cost);

  // A call succeeded: refund success_refund tokens (never above capacity).
  void OnSuccess();

  double tokens() const;
  bool enabled() const { return options_.enabled; }
  const std::string& call_site() const { return call_site_; }
  const RetryBudgetOptions& options() const { return options_; }

 private:
  const std::string call_site_;
  const RetryBudgetOptions options_;
  metrics::Counter& exhausted_;
  metrics::Gauge& tokens_gauge_;

  mutable std::mutex mu_;
  double tokens_;  // protected by mu_
};

}  // namespace paypath::client
