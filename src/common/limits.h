// The limits every paypath component shares, in one place: the api validates requests against them, the
// configuration validates tenants against them, the charge event (events/charge_event.h) carries them to
// the ledger, and the consumer verifies them again before it posts. The SQL schemas repeat them as CHECK
// constraints (sql/schema.sql, sql/ledger_schema.sql); limits_test.cc checks that the texts agree.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace paypath::limits {

// Amounts are integers in minor units. 1: a charge moves money. 100000000000 (1e11): one billion in a
// two-decimal currency, far above any single card payment, and small enough that a sum of 90 million of
// them still fits in a signed 64-bit balance.
inline constexpr int64_t kMinAmount = 1;
inline constexpr int64_t kMaxAmount = 100000000000;

// Identifiers (tenant, account_id, charge_id): [A-Za-z0-9_-]{1,64}. 64 bytes hold a UUID or a 32-hex id
// with a prefix; the alphabet keeps ids safe in URLs, log lines, Redis keys and SQL literals.
inline constexpr size_t kMaxIdLength = 64;

// ISO 4217 alphabetic codes: exactly three upper-case letters.
inline constexpr size_t kCurrencyLength = 3;

// Free-text description of a charge, in Unicode characters (not bytes).
inline constexpr size_t kMaxDescriptionChars = 500;

constexpr bool IsIdChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
}

// True if s matches [A-Za-z0-9_-]{1,64}.
constexpr bool IsId(std::string_view s) {
  if (s.empty() || s.size() > kMaxIdLength) return false;
  for (char c : s)
    if (!IsIdChar(c)) return false;
  return true;
}

// True if s matches [A-Z]{3}.
constexpr bool IsCurrency(std::string_view s) {
  if (s.size() != kCurrencyLength) return false;
  for (char c : s)
    if (c < 'A' || c > 'Z') return false;
  return true;
}

constexpr bool IsAmount(int64_t a) { return a >= kMinAmount && a <= kMaxAmount; }

}  // namespace paypath::limits
