// Exponential backoff with full jitter (AWS Architecture Blog, "Exponential Backoff And Jitter", 2015):
//   before retry n (n = 1 for the first retry):  delay = uniform[0, min(cap, base * 2^n))
// Full jitter spreads a crowd of clients that failed together over the whole window, so their retries do
// not arrive as a second synchronized wave; the cap bounds the worst single wait. Like Envoy's
// JitteredExponentialBackOffStrategy the randomness is passed in, so tests pin it and assert exact delays.
#pragma once

#include <chrono>

#include "common/random.h"

namespace paypath {

class Backoff {
 public:
  // base > 0 and cap >= base (callers validate; see client::ClientOptions::Validate).
  Backoff(std::chrono::milliseconds base, std::chrono::milliseconds cap) : base_(base), cap_(cap) {}

  // The upper bound of the jitter window before retry n (n >= 1): min(cap, base * 2^n), overflow-safe.
  std::chrono::milliseconds Ceiling(int retry) const;

  // The delay before retry n: floor(u * Ceiling(n)) ms with u = random.Uniform01() in [0, 1).
  // Draws exactly one value from `random`. Pure apart from that draw; thread-safe if `random` is.
  std::chrono::milliseconds Delay(int retry, Random& random) const;

 private:
  std::chrono::milliseconds base_;
  std::chrono::milliseconds cap_;
};

// The same full-jitter law as a sequence, for a worker that retries one thing until it works (the relay's
// and the consumer's reconnect loops): the n-th consecutive failure waits Delay(n - 1), so the first wait
// is drawn from [0, base). Not thread-safe.
class BackoffSequence {
 public:
  BackoffSequence(Random& random, std::chrono::milliseconds base, std::chrono::milliseconds cap)
      : random_(random), backoff_(base, cap) {}
  // The delay before the next attempt; each call doubles the window until it reaches cap.
  std::chrono::milliseconds Next();
  // After a success: the next failure starts again from base.
  void Reset() { attempt_ = 0; }
  int attempt() const { return attempt_; }

 private:
  Random& random_;
  const Backoff backoff_;
  int attempt_ = 0;
};

}  // namespace paypath
