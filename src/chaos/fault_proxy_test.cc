// The proxy's per-request decision: thresholds, draw discipline and seeding.
#include "chaos/fault_proxy.h"

#include <gtest/gtest.h>

#include <vector>

namespace paypath::chaos {
namespace {

using std::chrono::milliseconds;

FaultDecision Decide(const FaultOptions& o, double u_delay, double u_action) {
  FakeRandom r(/*fallback=*/~0ULL);
  r.PushUniform(u_delay);
  r.PushUniform(u_action);
  return DecideFault(o, r);
}

TEST(DecideFault, ResetThenEatThenForwardSplitTheUnitInterval) {
  FaultOptions o;
  o.reset_before = 0.25;
  o.eat_response = 0.25;
  EXPECT_EQ(Decide(o, 0, 0.0).action, FaultAction::kResetBeforeForward);
  EXPECT_EQ(Decide(o, 0, 0.2).action, FaultAction::kResetBeforeForward);
  EXPECT_EQ(Decide(o, 0, 0.25).action, FaultAction::kEatResponse);
  EXPECT_EQ(Decide(o, 0, 0.49).action, FaultAction::kEatResponse);
  EXPECT_EQ(Decide(o, 0, 0.5).action, FaultAction::kForward);
  EXPECT_EQ(Decide(o, 0, 0.99).action, FaultAction::kForward);
}

TEST(DecideFault, ProbabilityOneAlwaysFiresAndZeroNever) {
  FaultOptions eat;
  eat.eat_response = 1;
  FaultOptions none;
  for (double u : {0.0, 0.5, 0.9999999}) {
    EXPECT_EQ(Decide(eat, u, u).action, FaultAction::kEatResponse);
    EXPECT_EQ(Decide(none, u, u).action, FaultAction::kForward);
    EXPECT_FALSE(Decide(none, u, u).delay);
  }
}

TEST(DecideFault, DelaysOnlyBelowTheDelayProbabilityAndOnlyWithAPositiveDelay) {
  FaultOptions o;
  o.delay_probability = 0.5;
  o.delay = milliseconds(10);
  EXPECT_TRUE(Decide(o, 0.49, 0.9).delay);
  EXPECT_FALSE(Decide(o, 0.5, 0.9).delay);
  o.delay = milliseconds(0);
  EXPECT_FALSE(Decide(o, 0.0, 0.9).delay);
}

TEST(DecideFault, AlwaysDrawsExactlyTwoValuesEvenWhenNoFaultIsConfigured) {
  FakeRandom r(/*fallback=*/0);
  r.PushUniform(0.9);
  r.PushUniform(0.9);
  r.PushUniform(0.9);
  FaultOptions none;
  (void)DecideFault(none, r);
  FaultOptions eat_most;
  eat_most.eat_response = 0.5;
  // Third value 0.9 is the delay draw; the action draw is the fallback 0 -> eat.
  EXPECT_EQ(DecideFault(eat_most, r).action, FaultAction::kEatResponse);
}

TEST(DecideFault, TheSameSeedGivesTheSameSequenceAndAnotherSeedDoesNot) {
  FaultOptions o;
  o.eat_response = 0.3;
  o.reset_before = 0.2;
  o.delay_probability = 0.5;
  o.delay = milliseconds(5);
  auto run = [&](uint64_t seed) {
    SystemRandom r(seed);
    std::vector<std::pair<FaultAction, bool>> out;
    for (int i = 0; i < 200; ++i) {
      FaultDecision d = DecideFault(o, r);
      out.emplace_back(d.action, d.delay);
    }
    return out;
  };
  EXPECT_EQ(run(42), run(42));
  EXPECT_NE(run(42), run(43));
}

TEST(FaultOptions, RejectsImpossibleProbabilities) {
  FaultOptions o;
  EXPECT_TRUE(o.Validate().ok());
  o.eat_response = 1.5;
  EXPECT_FALSE(o.Validate().ok());
  o = FaultOptions();
  o.eat_response = 0.6;
  o.reset_before = 0.6;
  EXPECT_FALSE(o.Validate().ok());
  o = FaultOptions();
  o.delay_probability = -0.1;
  EXPECT_FALSE(o.Validate().ok());
}

}  // namespace
}  // namespace paypath::chaos
