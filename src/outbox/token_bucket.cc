#include "outbox/token_bucket.h"

#include <algorithm>
#include <cmath>

namespace paypath::outbox {

TokenBucket::TokenBucket(Clock& clock, double rate, double burst)
    : clock_(clock), rate_(rate), burst_(std::max(1.0, burst)), tokens_(burst_), last_(clock.Now()) {}

void TokenBucket::Refill() {
  auto now = clock_.Now();
  if (now <= last_) return;
  double elapsed = std::chrono::duration<double>(now - last_).count();
  tokens_ = std::min(burst_, tokens_ + elapsed * rate_);
  last_ = now;
}

double TokenBucket::Available() {
  Refill();
  return tokens_;
}

bool TokenBucket::TryTake(double n) {
  Refill();
  if (tokens_ < n) return false;
  tokens_ -= n;
  return true;
}

void TokenBucket::Take(double n) {
  Refill();
  tokens_ -= n;
}

Clock::Duration TokenBucket::TimeUntil(double n) {
  Refill();
  n = std::min(n, burst_);
  if (tokens_ >= n) return Clock::Duration::zero();
  double secs = (n - tokens_) / rate_;
  return std::chrono::duration_cast<Clock::Duration>(std::chrono::duration<double>(secs)) +
         std::chrono::nanoseconds(1);  // round up: never wake a hair early and spin
}

}  // namespace paypath::outbox
