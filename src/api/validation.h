// Input validation for POST /v1/charges: the Idempotency-Key header, the JSON body, its canonical form
// and the request fingerprint. Pure functions; no I/O.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include "common/limits.h"
#include "common/result.h"

namespace paypath::api {

// Limits from the public contract (docs/api.md); those the ledger shares live in common/limits.h.
inline constexpr size_t kMaxKeyLength = 255;
inline constexpr size_t kMaxBodyBytes = 16 * 1024;
inline constexpr int64_t kMaxAmount = limits::kMaxAmount;
inline constexpr size_t kMaxDescriptionChars = limits::kMaxDescriptionChars;

// Validates an Idempotency-Key header value and returns the key. Accepts 1..255 visible ASCII characters
// (0x21-0x7E), or the same key in RFC 8941 sf-string form ("abc", with \" and \\ escapes), which means the
// same key as abc. A value that begins with a double quote must be a well-formed sf-string.
// kInvalidArgument with a human-readable reason otherwise.
Result<std::string> ParseIdempotencyKey(std::string_view header);

struct ChargeRequest {
  std::string account_id;
  int64_t amount = 0;
  std::string currency;
  std::optional<std::string> description;  // absent or null: no description
  std::string canonical_body;               // canonical JSON of the body as sent (see CanonicalJson)
};

// A validation failure names the offending field ("" for the body as a whole).
struct FieldError {
  std::string field;
  std::string message;
};

// Parses and validates a charge body. Rejects: invalid JSON, non-object bodies, unknown fields, wrong
// types, invalid UTF-8 (in any string, naming the field), missing required fields, and values out of range.
// Returns the request or the first problem found.
std::variant<ChargeRequest, FieldError> ParseChargeRequest(std::string_view body);

// Canonical JSON of a JSON text: object keys sorted by their UTF-8 bytes at every level, no insignificant
// whitespace, strings with minimal escaping, integers in plain decimal. Two bodies that differ only in key
// order or whitespace have the same canonical form; any changed value changes it.
// kInvalidArgument when `json` does not parse.
Result<std::string> CanonicalJson(std::string_view json);

// The request fingerprint: lower-case hex SHA-256 over "METHOD\nPATH\nCANONICAL_BODY".
std::string Fingerprint(std::string_view method, std::string_view path, std::string_view canonical_body);

// True if s is well-formed UTF-8 (no overlongs, no surrogates, nothing above U+10FFFF).
bool IsValidUtf8(std::string_view s);

}  // namespace paypath::api
