#include "api/idempotency.h"

namespace paypath::api {

Decision DecideCompleted(const store::KeyRecord& rec, const std::string& fingerprint) {
  return rec.fingerprint == fingerprint ? Decision::kReplay : Decision::kMismatch;
}

Decision Decide(const store::ClaimResult& claim, const std::string& fingerprint) {
  using Kind = store::ClaimResult::Kind;
  if (claim.kind == Kind::kClaimed || claim.kind == Kind::kTakenOver) return Decision::kProceed;
  // The key's record was purged but its charge stands: the key is still bound to that request. A charge
  // without a fingerprint (written before they were kept) cannot prove a match, so it is a mismatch.
  if (claim.kind == Kind::kCharged)
    return !claim.charge.fingerprint.empty() && claim.charge.fingerprint == fingerprint ? Decision::kReplay
                                                                                         : Decision::kMismatch;
  const store::KeyRecord& rec = claim.existing;
  // A different request under a used key is a client bug whether or not the first one finished; saying
  // so at once (422) beats a 409 that invites a retry which can never succeed.
  if (rec.fingerprint != fingerprint) return Decision::kMismatch;
  if (rec.completed) return Decision::kReplay;
  return Decision::kInFlight;
}

const char* DecisionName(Decision d) {
  switch (d) {
    case Decision::kProceed: return "proceed";
    case Decision::kReplay: return "replay";
    case Decision::kMismatch: return "mismatch";
    case Decision::kInFlight: return "in_flight";
  }
  return "?";
}

}  // namespace paypath::api
