// Clock: the only way code outside src/common learns the time, so tests can pin it.
// SystemClock is the real one; FakeClock (tests) moves only when told and records sleeps.
#pragma once

#include <chrono>
#include <mutex>
#include <vector>

namespace paypath {

class Clock {
 public:
  using Duration = std::chrono::nanoseconds;
  virtual ~Clock() = default;
  // Monotonic time for deadlines, rates and durations.
  virtual std::chrono::steady_clock::time_point Now() = 0;
  // Wall-clock time for timestamps shown to people and stored (HTTP dates, created).
  virtual std::chrono::system_clock::time_point WallNow() = 0;
  // Blocks the calling thread for d (FakeClock: advances time instead).
  virtual void SleepFor(Duration d) = 0;
};

class SystemClock : public Clock {
 public:
  std::chrono::steady_clock::time_point Now() override { return std::chrono::steady_clock::now(); }
  std::chrono::system_clock::time_point WallNow() override { return std::chrono::system_clock::now(); }
  void SleepFor(Duration d) override;
  // A process-wide instance for main() to hand out.
  static SystemClock& Instance();
};

// Thread-safe fake: Now() starts at an arbitrary fixed point; SleepFor advances and records.
class FakeClock : public Clock {
 public:
  FakeClock();
  std::chrono::steady_clock::time_point Now() override;
  std::chrono::system_clock::time_point WallNow() override;
  void SleepFor(Duration d) override;
  void Advance(Duration d);
  std::vector<Duration> sleeps();

 private:
  std::mutex mu_;
  std::chrono::steady_clock::time_point now_;       // protected by mu_
  std::chrono::system_clock::time_point wall_now_;  // protected by mu_
  std::vector<Duration> sleeps_;                    // protected by mu_
};

}  // namespace paypath
