#include "outbox/worker.h"

#include <signal.h>

#include <algorithm>

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

void SleepUnlessStopped(Clock& clock, Clock::Duration d, const std::atomic<bool>& stop) {
  // 50 ms slices: shutdown latency stays well under a second without busy-waiting.
  constexpr Clock::Duration kSlice = std::chrono::milliseconds(50);
  auto end = clock.Now() + d;
  while (!stop.load()) {
    auto now = clock.Now();
    if (now >= end) return;
    clock.SleepFor(std::min<Clock::Duration>(kSlice, end - now));
  }
}

}  // namespace paypath::worker
