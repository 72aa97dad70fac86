// Failpoints: named places in the real code where a test or the proof run can inject a crash, an error
// or a delay. Off by default and free when off (one relaxed atomic load).
//
// Configured from PAYPATH_FAILPOINTS (or Configure()):
//   "name=action[,name=action...]"
//   action  := crash | error | delay(MS)  followed by optional modifiers:
//     @N      fire only on the N-th hit of this point (1-based); other hits pass
//     %P      fire with probability P (0..1) on each hit, drawn from a generator seeded with...
//     #SEED   ...this seed (default 1), so a run is repeatable; the seed is logged when the point fires
// Examples: "relay.after_publish=crash@1", "api.after_commit=error%0.1#42,consumer.before_commit=delay(50)".
//
// crash ends the process at once with SIGKILL: no destructors, no flushes, no acks, exactly as if the
// machine had lost it. error makes Hit() return true so the caller takes its error path. delay sleeps.
#pragma once

#include <string_view>

#include "common/result.h"

namespace paypath::failpoints {

// Replaces the whole configuration. Invalid specs are rejected whole with a message naming the part.
Status Configure(std::string_view spec);

// Reads PAYPATH_FAILPOINTS (if set) and configures from it.
Status ConfigureFromEnv();

// Evaluates the failpoint `name`. Returns true when the caller must inject an error; may not return
// at all (crash) or return after a delay. Thread-safe.
bool Hit(std::string_view name);

// How many times `name` has fired (not merely been reached) in this process. For tests.
int FiredCount(std::string_view name);

}  // namespace paypath::failpoints
