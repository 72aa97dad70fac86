// A token bucket: the relay's catch-up rate limit. `rate` tokens per second flow into a bucket that holds
// at most `burst`; publishing an event costs one token. A backlog (say 18,000 rows after a broker outage)
// therefore drains at `rate` after an initial `burst`, instead of as fast as the relay can go, so the
// consumer and the database behind it see a bounded load.
//
// Time comes from the injected Clock, so tests assert exact refill arithmetic. Not thread-safe: one relay
// loop owns one bucket.
#pragma once

#include "common/clock.h"

namespace paypath::outbox {

class TokenBucket {
 public:
  // rate > 0 tokens per second, burst >= 1. The bucket starts full.
  TokenBucket(Clock& clock, double rate, double burst);

  // Tokens available now (after refilling for the time since the last call); may be fractional.
  double Available();
  // Takes n tokens if available and returns true; otherwise takes nothing and returns false.
  bool TryTake(double n);
  // Takes n tokens unconditionally (may leave the bucket negative: a debt repaid by later refills).
  void Take(double n);
  // How long until n tokens are available (zero if they are now). n above burst is capped at burst.
  Clock::Duration TimeUntil(double n);

  double rate() const { return rate_; }
  double burst() const { return burst_; }

 private:
  void Refill();

  Clock& clock_;
  const double rate_;
  const double burst_;
  double tokens_;
  std::chrono::steady_clock::time_point last_;
};

}  // namespace paypath::outbox
