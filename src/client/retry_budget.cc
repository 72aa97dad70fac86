#include "client/retry_budget.h"

#include <algorithm>

namespace paypath::client {

RetryBudget::RetryBudget(std::string call_site, RetryBudgetOptions options, metrics::Registry& registry)
    : call_site_(std::move(call_site)),
      options_(options),
      exhausted_(registry.GetCounter("paypath_client_retry_budget_exhausted_total",
                                     "Retries refused because the call site's retry budget was empty",
                                     {{"call_site", call_site_}})),
      tokens_gauge_(registry.GetGauge("paypath_client_retry_budget_tokens",
                                      "Tokens left in the call site's retry budget", {{"call_site", call_site_}})),
      tokens_(options.capacity) {
  tokens_gauge_.Set(tokens_);
}

bool RetryBudget::TryAcquire(Cost cost) {
  if (!options_.enabled) return true;
  const double c = cost == Cost::kTimeout ? options_.timeout_cost : options_.retry_cost;
  std::lock_guard lock(mu_);
  if (tokens_ - c < options_.reserve) {
    exhausted_.Inc();
    return false;
  }
  tokens_ -= c;
  tokens_gauge_.Set(tokens_);
  return true;
}

void RetryBudget::OnSuccess() {
  if (!options_.enabled) return;
  std::lock_guard lock(mu_);
  tokens_ = std::min(options_.capacity, tokens_ + options_.success_refund);
  tokens_gauge_.Set(tokens_);
}

double RetryBudget::tokens() const {
  std::lock_guard lock(mu_);
  return tokens_;
}

}  // namespace paypath::client
