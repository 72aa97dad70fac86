#include "common/random.h"

#include <cstdio>

namespace paypath {

double Random::Uniform01() {
  // 53 random bits into the mantissa: exact, never returns 1.0.
  return static_cast<double>(Next64() >> 11) * 0x1.0p-53;
}

uint64_t Random::UniformInclusive(uint64_t bound) {
  if (bound == 0) return 0;
  if (bound == UINT64_MAX) return Next64();
  // Rejection sampling avoids modulo bias.
  const uint64_t range = bound + 1;
  const uint64_t limit = UINT64_MAX - (UINT64_MAX % range);
  for (;;) {
    uint64_t v = Next64();
    if (v < limit) return v % range;
  }
}

std::string Random::Uuid4() {
  uint64_t hi = Next64(), lo = Next64();
  hi = (hi & 0xFFFFFFFFFFFF0FFFULL) | 0x0000000000004000ULL;  // version 4
  lo = (lo & 0x3FFFFFFFFFFFFFFFULL) | 0x8000000000000000ULL;  // variant 10
  char buf[37];
  std::snprintf(buf, sizeof buf, "%08x-%04x-%04x-%04x-%012llx", static_cast<unsigned>(hi >> 32),
                static_cast<unsigned>((hi >> 16) & 0xFFFF), static_cast<unsigned>(hi & 0xFFFF),
                static_cast<unsigned>(lo >> 48), static_cast<unsigned long long>(lo & 0xFFFFFFFFFFFFULL));
  return buf;
}

std::string Random::Hex128() {
  char buf[33];
  std::snprintf(buf, sizeof buf, "%016llx%016llx", static_cast<unsigned long long>(Next64()),
                static_cast<unsigned long long>(Next64()));
  return buf;
}

SystemRandom::SystemRandom() : engine_(std::random_device{}()) {
  std::random_device rd;
  engine_.seed((static_cast<uint64_t>(rd()) << 32) ^ rd());
}

SystemRandom::SystemRandom(uint64_t seed) : engine_(seed) {}

uint64_t SystemRandom::Next64() {
  std::lock_guard lock(mu_);
  return engine_();
}

SystemRandom& SystemRandom::Instance() {
  static SystemRandom random;
  return random;
}

void FakeRandom::PushUniform(double u) { Push(static_cast<uint64_t>(u * 0x1.0p53) << 11); }

uint64_t FakeRandom::Next64() {
  if (queue_.empty()) return fallback_;
  uint64_t v = queue_.front();
  queue_.pop_front();
  return v;
}

}  // namespace paypath
