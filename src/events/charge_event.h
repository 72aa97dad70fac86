// The charge event: the one contract between the api (which writes it into the outbox in the charge's own
// transaction), the relay (which publishes it) and the ledger consumer (which verifies it, then posts it).
// Its fields, version, limits, AMQP properties and headers are defined here and nowhere else.
//
// Payload (the outbox row's jsonb and the message body), version 1, fields in this order:
//   {"type":"charge.succeeded","version":1,"message_id":"<uuid>","charge_id":"ch_...","tenant":"tenant_a",
//    "account_id":"acct_1","amount":1234,"currency":"USD","created_at":"2026-11-28T04:00:00.123456Z"}
//   type, version   what the payload is; a consumer that does not know both refuses the message
//   message_id      the outbox row's message_id (UUID): the inbox key, the same on every republish
//   charge_id, tenant, account_id   ids matching [A-Za-z0-9_-]{1,64} (common/limits.h)
//   amount          integer minor units, 1..100000000000 (common/limits.h)
//   currency        [A-Z]{3}
//   created_at      the charge's commit time, RFC 3339 UTC with microseconds (the apply-delay histogram)
// A new field or a changed meaning is a new version; version 1 payloads carry exactly these fields.
//
// AMQP message (built by the relay from the outbox row, EncodeMessage):
//   properties  message_id = payload message_id, type = payload type, content_type application/json,
//               timestamp = created_at (seconds), delivery_mode 2 (persistent, set by amqp::Connection)
//   headers     tenant = payload tenant, charge_id = payload charge_id, event_type = type,
//               outbox_id = the outbox row id (forensics only, not verified)
// The consumer checks that the properties and the tenant / charge_id headers agree with the payload
// (Decode). The headers let an operator read a message (dlq list) without parsing its body; the check
// means a message whose headers and body tell two stories is refused rather than believed.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <variant>

#include "broker/amqp.h"
#include "common/result.h"

namespace paypath::events {

inline constexpr const char* kChargeSucceeded = "charge.succeeded";
inline constexpr int kChargeEventVersion = 1;

inline constexpr const char* kHeaderTenant = "tenant";
inline constexpr const char* kHeaderChargeId = "charge_id";
inline constexpr const char* kHeaderEventType = "event_type";
inline constexpr const char* kHeaderOutboxId = "outbox_id";

struct ChargeEvent {
  std::string message_id;
  std::string charge_id;
  std::string tenant;
  std::string account_id;
  int64_t amount = 0;
  std::string currency;
  std::chrono::system_clock::time_point created_at;  // microsecond precision on the wire

  bool operator==(const ChargeEvent&) const = default;
};

// The version-1 payload of `e`, as above. Pure; does not validate (the api has validated the charge, and
// Decode refuses anything out of range).
std::string EncodePayload(const ChargeEvent& e);

// An outbox row as the relay reads it.
struct OutboxRecord {
  int64_t outbox_id = 0;
  std::string message_id;
  std::string tenant;
  std::string charge_id;  // outbox.aggregate_id
  std::string event_type;
  std::string payload;    // as stored (EncodePayload's output, re-serialized by jsonb)
  int64_t created_unix_s = 0;
};

// The AMQP message the relay publishes for an outbox row: properties and headers as above, the stored
// payload as the body. Pure.
amqp::Message EncodeMessage(const OutboxRecord& r);

// Why a message can never be applied. Each name is a value of the consumer's dead-letter metric label.
enum class Violation {
  kUndecodable,            // body is not a JSON object of the version's shape (missing, extra or mistyped field)
  kUnknownType,            // payload type is not an event this consumer knows
  kUnknownVersion,         // payload version is not one this consumer knows
  kTypeMismatch,           // AMQP type property differs from the payload's type
  kMessageIdMismatch,      // AMQP message_id missing or differs from the payload's message_id
  kTenantHeaderMissing,
  kTenantHeaderMismatch,
  kChargeIdHeaderMissing,
  kChargeIdHeaderMismatch,
  kInvalidField,           // a field outside its limits (ids, amount, currency, UUID, timestamp)
};
inline constexpr Violation kAllViolations[] = {
    Violation::kUndecodable,          Violation::kUnknownType,          Violation::kUnknownVersion,
    Violation::kTypeMismatch,         Violation::kMessageIdMismatch,    Violation::kTenantHeaderMissing,
    Violation::kTenantHeaderMismatch, Violation::kChargeIdHeaderMissing, Violation::kChargeIdHeaderMismatch,
    Violation::kInvalidField,
};

// "undecodable", "unknown_type", ... (snake_case of the enumerator).
const char* ViolationName(Violation v);

// A message refused by Decode: the named reason and a sentence for the log.
struct Rejected {
  Violation violation;
  std::string detail;
};

// Decodes and verifies a delivered message: known type and version, the exact version-1 shape, every
// field within its limits, and properties and headers agreeing with the payload. Returns the event or the
// first rule it breaks. Pure; retrying cannot change the answer.
std::variant<ChargeEvent, Rejected> Decode(const amqp::Message& m);

// RFC 3339 UTC with exactly six fraction digits: "2026-11-28T04:00:00.123456Z".
std::string FormatUtcMicros(std::chrono::system_clock::time_point t);

// Parses RFC 3339 UTC "YYYY-MM-DDTHH:MM:SS[.f{1,9}]Z". kInvalidArgument otherwise.
Result<std::chrono::system_clock::time_point> ParseUtcTimestamp(const std::string& s);

// True for a UUID in 8-4-4-4-12 hex form (either case).
bool IsUuid(std::string_view s);

}  // namespace paypath::events
