#include "common/backoff.h"

#include <cmath>

namespace paypath {

std::chrono::milliseconds Backoff::Ceiling(int retry) const {
  // Double step by step and stop at the cap: base * 2^n overflows int64 at n ~ 53 for a 1 ms base.
  int64_t ceiling = base_.count();
  for (int i = 0; i < retry && ceiling < cap_.count(); ++i) ceiling *= 2;
  return std::chrono::milliseconds(std::min<int64_t>(ceiling, cap_.count()));
}

std::chrono::milliseconds Backoff::Delay(int retry, Random& random) const {
  const double u = random.Uniform01();
  return std::chrono::milliseconds(static_cast<int64_t>(std::floor(u * static_cast<double>(Ceiling(retry).count()))));
}

}  // namespace paypath

namespace paypath {

std::chrono::milliseconds BackoffSequence::Next() {
  std::chrono::milliseconds d = backoff_.Delay(attempt_, random_);
  if (attempt_ < 1000) attempt_++;  // Ceiling() stops doubling at the cap, so the count only needs a bound
  return d;
}

}  // namespace paypath
