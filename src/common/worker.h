// The loop shared by the long-running workers (relay, consumer): run one step (the worker's RunOnce) after
// another until asked to stop, wait between steps as the step asks, and back off with full jitter after a
// failed step. Also the stop flag SIGTERM and SIGINT set, and a sleep that wakes early when it is set, so
// a worker finishes its current step and exits within ~50 ms of being asked.
//
// Errors a step returns:
//   kFailedPrecondition, or kInvalidArgument that did not come from PostgreSQL (empty sqlstate): a
//     configuration error (bad URL, a broker topology with other arguments) that no retry can fix; the
//     loop logs "<name>_stopped" and returns it.
//   anything else (kUnavailable, kAborted, kOutcomeUnknown, kInternal, a PostgreSQL data refusal the step
//     did not handle itself): logged as "<name>_batch_failed" and retried after a full-jitter delay drawn
//     from [0, min(cap, base * 2^n)) for the n-th consecutive failure; a success resets n.
//
// While the loop waits (after a success as the step asked, or backing off), it calls `tick` every slice
// (50 ms): the consumer services its AMQP connection there (heartbeats, deliveries), so a long database
// outage never silences the broker connection.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <string>

#include "common/clock.h"
#include "common/random.h"
#include "common/result.h"

namespace paypath::worker {

// Installs SIGTERM/SIGINT handlers (idempotent) and returns the flag they set.
std::atomic<bool>& InstallStopHandlers();

// Sleeps for d on `clock` in slices of at most 50 ms, returning early once `stop` is set; calls `tick`
// (if any) after each slice.
void SleepUnlessStopped(Clock& clock, Clock::Duration d, const std::atomic<bool>& stop,
                        const std::function<void()>& tick = {});

// True for the errors the loop stops on (see above).
bool IsConfigurationError(const Error& e);

struct LoopOptions {
  std::string name;  // "relay", "consumer": prefix of the loop's log lines
  std::chrono::milliseconds backoff_base{100};
  std::chrono::milliseconds backoff_cap{2000};
};

// One step: on success, how long to wait before the next step (zero: go on at once).
using Step = std::function<Result<Clock::Duration>()>;

// Runs `step` until `stop` is set. Returns OkStatus after a stop, or the configuration error it stopped on.
Status RunLoop(const LoopOptions& options, Clock& clock, Random& random, const std::atomic<bool>& stop,
               const Step& step, const std::function<void()>& tick = {});

}  // namespace paypath::worker
