// Exponential backoff with full jitter (delay = uniform(0, min(cap, base * 2^attempt))), as in the AWS
// architecture blog's "Exponential Backoff And Jitter": full jitter spreads reconnecting relays and
// consumers evenly after a broker outage instead of having them retry in lockstep.
// Random is injected so tests pin the draw and assert exact delays. Not thread-safe.
#pragma once

#include <chrono>

#include "common/random.h"

namespace paypath::outbox {

class Backoff {
 public:
  Backoff(Random& random, std::chrono::milliseconds base, std::chrono::milliseconds cap);

  // The delay before the next attempt; each call doubles the ceiling until it reaches cap.
  std::chrono::milliseconds Next();
  // After a success: the next failure starts again from base.
  void Reset() { attempt_ = 0; }
  int attempt() const { return attempt_; }

 private:
  Random& random_;
  const std::chrono::milliseconds base_;
  const std::chrono::milliseconds cap_;
  int attempt_ = 0;
};

}  // namespace paypath::outbox
