#include "common/backoff.h"

#include <gtest/gtest.h>

#include <vector>

namespace paypath {
namespace {

using std::chrono::milliseconds;

TEST(Backoff, CeilingDoublesFromTwiceTheBaseForTheFirstRetryAndStopsAtTheCap) {
  Backoff b(milliseconds(100), milliseconds(1000));
  EXPECT_EQ(b.Ceiling(1), milliseconds(200));
  EXPECT_EQ(b.Ceiling(2), milliseconds(400));
  EXPECT_EQ(b.Ceiling(3), milliseconds(800));
  EXPECT_EQ(b.Ceiling(4), milliseconds(1000));
  EXPECT_EQ(b.Ceiling(5), milliseconds(1000));
}

TEST(Backoff, CeilingDoesNotOverflowForLargeRetryNumbers) {
  Backoff b(milliseconds(1), milliseconds(30000));
  EXPECT_EQ(b.Ceiling(200), milliseconds(30000));
}

TEST(Backoff, DelayIsTheDrawnFractionOfTheCeilingExactly) {
  Backoff b(milliseconds(100), milliseconds(1000));
  FakeRandom r;
  for (double u : {0.5, 0.25, 0.75, 0.5, 0.125}) r.PushUniform(u);  // dyadic: exact in binary
  std::vector<milliseconds> got;
  for (int n = 1; n <= 5; ++n) got.push_back(b.Delay(n, r));
  EXPECT_EQ(got, (std::vector<milliseconds>{milliseconds(100), milliseconds(100), milliseconds(600),
                                            milliseconds(500), milliseconds(125)}));
}

TEST(Backoff, FullJitterSpansZeroToJustBelowTheCeiling) {
  Backoff b(milliseconds(100), milliseconds(1000));
  FakeRandom r;
  r.PushUniform(0.0);
  r.PushUniform(0.9999999);
  EXPECT_EQ(b.Delay(1, r), milliseconds(0));
  EXPECT_EQ(b.Delay(1, r), milliseconds(199));
}

TEST(Backoff, DrawsExactlyOneRandomValuePerDelay) {
  Backoff b(milliseconds(100), milliseconds(1000));
  FakeRandom r(/*fallback=*/0);
  r.PushUniform(0.5);
  r.PushUniform(0.5);
  EXPECT_EQ(b.Delay(3, r), milliseconds(400));
  EXPECT_EQ(b.Delay(3, r), milliseconds(400));
  EXPECT_EQ(b.Delay(3, r), milliseconds(0));  // queue empty: the fallback 0 shows both draws were used
}

TEST(BackoffSequence, WindowStartsAtBaseAndDoublesUpToCap) {
  // Draws just below 1 expose each window: floor(0.9999999 * ceiling) = ceiling - 1.
  FakeRandom r;
  for (int i = 0; i < 6; ++i) r.PushUniform(0.9999999);
  BackoffSequence b(r, milliseconds(100), milliseconds(1000));
  std::vector<int64_t> got;
  for (int i = 0; i < 6; ++i) got.push_back(b.Next().count());
  EXPECT_EQ(got, (std::vector<int64_t>{99, 199, 399, 799, 999, 999}));
}

TEST(BackoffSequence, ResetStartsOverFromBase) {
  FakeRandom r;
  for (double u : {0.5, 0.5, 0.5}) r.PushUniform(u);
  BackoffSequence b(r, milliseconds(100), milliseconds(5000));
  EXPECT_EQ(b.Next(), milliseconds(50));
  EXPECT_EQ(b.Next(), milliseconds(100));
  EXPECT_EQ(b.attempt(), 2);
  b.Reset();
  EXPECT_EQ(b.attempt(), 0);
  EXPECT_EQ(b.Next(), milliseconds(50));
}

TEST(BackoffSequence, HugeAttemptCountsStayAtTheCap) {
  FakeRandom r;
  BackoffSequence b(r, milliseconds(100), milliseconds(2000));
  for (int i = 0; i < 2000; ++i) (void)b.Next();
  r.PushUniform(0.5);
  EXPECT_EQ(b.Next(), milliseconds(1000));
}

}  // namespace
}  // namespace paypath
