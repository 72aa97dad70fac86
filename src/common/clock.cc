#include "common/clock.h"

#include <thread>

namespace paypath {

void SystemClock::SleepFor(Duration d) { std::this_thread::sleep_for(d); }

SystemClock& SystemClock::Instance() {
  static SystemClock clock;
  return clock;
}

// 2026-01-01T00:00:00Z: a fixed, recognisable wall time for tests.
FakeClock::FakeClock()
    : now_(std::chrono::steady_clock::time_point(std::chrono::hours(1000))),
      wall_now_(std::chrono::system_clock::time_point(std::chrono::seconds(1767225600))) {}

std::chrono::steady_clock::time_point FakeClock::Now() {
  std::lock_guard lock(mu_);
  return now_;
}

std::chrono::system_clock::time_point FakeClock::WallNow() {
  std::lock_guard lock(mu_);
  return wall_now_;
}

void FakeClock::SleepFor(Duration d) {
  std::lock_guard lock(mu_);
  sleeps_.push_back(d);
  now_ += d;
  wall_now_ += std::chrono::duration_cast<std::chrono::system_clock::duration>(d);
}

void FakeClock::Advance(Duration d) {
  std::lock_guard lock(mu_);
  now_ += d;
  wall_now_ += std::chrono::duration_cast<std::chrono::system_clock::duration>(d);
}

std::vector<FakeClock::Duration> FakeClock::sleeps() {
  std::lock_guard lock(mu_);
  return sleeps_;
}

}  // namespace paypath
