#include "common/worker.h"

#include <gtest/gtest.h>

#include <vector>

namespace paypath::worker {
namespace {

using std::chrono::milliseconds;

TEST(RunLoop, BacksOffWithFullJitterAfterFailuresAndResetsAfterASuccess) {
  FakeClock clock;
  FakeRandom random;
  // Uniform draws 0.5 each: delays are half of 100, 200, 400 ms, then after the success half of 100 ms again.
  for (int i = 0; i < 4; ++i) random.PushUniform(0.5);
  std::atomic<bool> stop{false};
  std::vector<Result<Clock::Duration>> script = {Error::Unavailable("a"), Error::Aborted("b"),
                                                 Error::OutcomeUnknown("c"), Clock::Duration(milliseconds(7)),
                                                 Error::Unavailable("d")};
  size_t calls = 0;
  Status s = RunLoop({"test", milliseconds(100), milliseconds(2000)}, clock, random, stop, [&]() {
    auto r = script[calls++];
    if (calls == script.size()) stop.store(true);
    return r;
  });
  EXPECT_TRUE(s.ok());
  EXPECT_EQ(calls, script.size());
  Clock::Duration total{};
  for (auto d : clock.sleeps()) total += d;
  // 50 + 100 + 200 (backoff) + 7 (as the step asked); the last failure sees the stop flag and never sleeps.
  EXPECT_EQ(total, milliseconds(50 + 100 + 200 + 7));
}

TEST(RunLoop, StopsOnAConfigurationErrorButRetriesADatabaseRefusal) {
  FakeClock clock;
  FakeRandom random;
  std::atomic<bool> stop{false};
  Error refused = Error::InvalidArgument("postgres 23514: check");
  refused.sqlstate = "23514";
  int calls = 0;
  Status s = RunLoop({"test"}, clock, random, stop, [&]() -> Result<Clock::Duration> {
    if (++calls == 1) return refused;  // retried: the data may be fixed by an operator
    return Error::FailedPrecondition("queue declared with other arguments");
  });
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code, ErrorCode::kFailedPrecondition);
  EXPECT_EQ(calls, 2);
  EXPECT_TRUE(IsConfigurationError(Error::InvalidArgument("not an AMQP URL")));
  EXPECT_FALSE(IsConfigurationError(refused));
}

TEST(RunLoop, TicksWhileItWaits) {
  FakeClock clock;
  FakeRandom random;
  std::atomic<bool> stop{false};
  int calls = 0, ticks = 0;
  Status s = RunLoop(
      {"test"}, clock, random, stop,
      [&]() -> Result<Clock::Duration> {
        if (++calls == 2) stop.store(true);
        return Clock::Duration(milliseconds(500));
      },
      [&] { ticks++; });
  EXPECT_TRUE(s.ok());
  EXPECT_EQ(ticks, 10);  // 500 ms in 50 ms slices, once; the second step set the stop flag
}

}  // namespace
}  // namespace paypath::worker
