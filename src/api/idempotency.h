// The idempotency decision: given what the store found for (tenant, key) and this request's fingerprint,
// what the request must do. Pure; the handler performs the decision.
#pragma once

#include <string>

#include "store/idempotency_store.h"

namespace paypath::api {

enum class Decision {
  kProceed,   // this request holds the lease: run the charge
  kReplay,    // completed (or charged) with the same fingerprint: return the stored (or rebuilt) response
  kMismatch,  // the key was used for a different request: 422, whatever its state
  kInFlight,  // the same request is still running under a live lease: 409 with Retry-After
};

Decision Decide(const store::ClaimResult& claim, const std::string& fingerprint);
// The same rules for a record found in the hot tier (always completed).
Decision DecideCompleted(const store::KeyRecord& rec, const std::string& fingerprint);

const char* DecisionName(Decision d);

}  // namespace paypath::api
