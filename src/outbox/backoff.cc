#include "outbox/backoff.h"

#include <algorithm>

namespace paypath::outbox {

Backoff::Backoff(Random& random, std::chrono::milliseconds base, std::chrono::milliseconds cap)
    : random_(random), base_(base), cap_(cap) {}

std::chrono::milliseconds Backoff::Next() {
  // 2^30 * base already exceeds any sensible cap; stop doubling there so the shift cannot overflow.
  int shift = std::min(attempt_, 30);
  int64_t ceiling = std::min<int64_t>(cap_.count(), base_.count() << shift);
  if (attempt_ < 31) attempt_++;
  return std::chrono::milliseconds(static_cast<int64_t>(random_.UniformInclusive(static_cast<uint64_t>(ceiling))));
}

}  // namespace paypath::outbox
