#include "outbox/backoff.h"

#include <gtest/gtest.h>

#include "common/random.h"

namespace paypath::outbox {
namespace {

using std::chrono::milliseconds;

TEST(Backoff, FullJitterCeilingDoublesUpToCap) {
  // Drawing exactly the ceiling each time exposes the ceiling sequence: v % (c + 1) == c when v == c.
  FakeRandom random;
  for (uint64_t c : {100, 200, 400, 800, 1000, 1000}) random.Push(c);
  Backoff b(random, milliseconds(100), milliseconds(1000));
  std::vector<int64_t> got;
  for (int i = 0; i < 6; ++i) got.push_back(b.Next().count());
  EXPECT_EQ(got, (std::vector<int64_t>{100, 200, 400, 800, 1000, 1000}));
}

TEST(Backoff, DrawsUniformlyBelowTheCeiling) {
  FakeRandom random;
  random.Push(0);    // -> 0
  random.Push(150);  // ceiling 200: 150 % 201 = 150
  random.Push(401);  // ceiling 400: 401 % 401 = 0
  Backoff b(random, milliseconds(100), milliseconds(5000));
  EXPECT_EQ(b.Next(), milliseconds(0));
  EXPECT_EQ(b.Next(), milliseconds(150));
  EXPECT_EQ(b.Next(), milliseconds(0));
}

TEST(Backoff, ResetStartsOverFromBase) {
  FakeRandom random;
  random.Push(100);
  random.Push(100);
  random.Push(100);
  Backoff b(random, milliseconds(100), milliseconds(5000));
  (void)b.Next();
  (void)b.Next();
  EXPECT_EQ(b.attempt(), 2);
  b.Reset();
  EXPECT_EQ(b.attempt(), 0);
  EXPECT_EQ(b.Next(), milliseconds(100));  // ceiling back at 100: 100 % 101
}

TEST(Backoff, HugeAttemptCountsDoNotOverflow) {
  FakeRandom random(1999);  // 1999 % 2001 = 1999 once the ceiling is capped
  Backoff b(random, milliseconds(100), milliseconds(2000));
  for (int i = 0; i < 100; ++i) EXPECT_LE(b.Next(), milliseconds(2000));
}

}  // namespace
}  // namespace paypath::outbox
