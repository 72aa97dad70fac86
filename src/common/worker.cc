#include "common/worker.h"

#include <signal.h>

#include <algorithm>

#include "common/backoff.h"
#include "common/log.h"

namespace paypath::worker {
namespace {

std::atomic<bool> g_stop{false};

void OnSignal(int) { g_stop.store(true); }

}  // namespace

std::atomic<bool>& InstallStopHandlers() {
  struct sigaction sa {};
  sa.sa_handler = OnSignal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0;  // no SA_RESTART: a blocking read returns EINTR and the loop sees the flag sooner
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);
  // A broker that closes the socket under us must surface as an error, not kill the process.
  signal(SIGPIPE, SIG_IGN);
  return g_stop;
}

void SleepUnlessStopped(Clock& clock, Clock::Duration d, const std::atomic<bool>& stop,
                        const std::function<void()>& tick) {
  // 50 ms slices: shutdown latency stays well under a second without busy-waiting, and a tick every 50 ms
  // is far more often than the 5 s AMQP heartbeat needs.
  constexpr Clock::Duration kSlice = std::chrono::milliseconds(50);
  auto end = clock.Now() + d;
  while (!stop.load()) {
    auto now = clock.Now();
    if (now >= end) return;
    clock.SleepFor(std::min<Clock::Duration>(kSlice, end - now));
    if (tick) tick();
  }
}

bool IsConfigurationError(const Error& e) {
  return e.code == ErrorCode::kFailedPrecondition || (e.code == ErrorCode::kInvalidArgument && e.sqlstate.empty());
}

Status RunLoop(const LoopOptions& o, Clock& clock, Random& random, const std::atomic<bool>& stop, const Step& step,
               const std::function<void()>& tick) {
  BackoffSequence backoff(random, o.backoff_base, o.backoff_cap);
  while (!stop.load()) {
    auto r = step();
    if (r.ok()) {
      backoff.Reset();
      if (r.value() > Clock::Duration::zero()) SleepUnlessStopped(clock, r.value(), stop, tick);
      continue;
    }
    if (IsConfigurationError(r.error())) {
      log::Error(o.name + "_stopped", {{"error", r.error().ToString()}});
      return r.error();
    }
    auto delay = backoff.Next();
    log::Warn(o.name + "_batch_failed", {{"error", r.error().ToString()},
                                        {"attempt", backoff.attempt()},
                                        {"backoff_ms", static_cast<int64_t>(delay.count())}});
    SleepUnlessStopped(clock, delay, stop, tick);
  }
  log::Info(o.name + "_stopping", {});
  return OkStatus();
}

}  // namespace paypath::worker
