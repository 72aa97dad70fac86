// Plumbing shared by the long-running workers (relay, consumer): a stop flag that SIGTERM and SIGINT set,
// and a sleep that wakes early when it is set, so a worker finishes its current batch and exits cleanly
// within ~50 ms of being asked.
#pragma once

#include <atomic>

#include "common/clock.h"

namespace paypath::worker {

// Installs SIGTERM/SIGINT handlers (idempotent) and returns the flag they set.
std::atomic<bool>& InstallStopHandlers();

// Sleeps for d on `clock` in slices of at most 50 ms, returning early once `stop` is set.
void SleepUnlessStopped(Clock& clock, Clock::Duration d, const std::atomic<bool>& stop);

}  // namespace paypath::worker
