// Random: the only source of randomness outside src/common, injected so tests can pin values.
// Identifiers (keys, owner tokens, ids) come from here too: a seeded Random makes a run repeatable.
#pragma once

#include <cstdint>
#include <deque>
#include <mutex>
#include <random>
#include <string>

namespace paypath {

class Random {
 public:
  virtual ~Random() = default;
  // Uniform in [0, 2^64).
  virtual uint64_t Next64() = 0;
  // Uniform in [0, 1).
  double Uniform01();
  // Uniform integer in [0, bound] (inclusive); bound 0 gives 0.
  uint64_t UniformInclusive(uint64_t bound);
  // RFC 9562 version 4 UUID, lower-case hex with dashes.
  std::string Uuid4();
  // 32 lower-case hex characters (128 bits), for ids and owner tokens.
  std::string Hex128();
};

// Thread-safe: seeded from std::random_device unless a seed is given (then deterministic).
class SystemRandom : public Random {
 public:
  SystemRandom();
  explicit SystemRandom(uint64_t seed);
  uint64_t Next64() override;
  static SystemRandom& Instance();

 private:
  std::mutex mu_;
  std::mt19937_64 engine_;  // protected by mu_
};

// Tests: returns queued values first, then a fixed value.
class FakeRandom : public Random {
 public:
  explicit FakeRandom(uint64_t fallback = 0) : fallback_(fallback) {}
  void Push(uint64_t v) { queue_.push_back(v); }
  // Queues the 64-bit value whose Uniform01() is u (u in [0,1)).
  void PushUniform(double u);
  uint64_t Next64() override;

 private:
  std::deque<uint64_t> queue_;
  uint64_t fallback_;
};

}  // namespace paypath
