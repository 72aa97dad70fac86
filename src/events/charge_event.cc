#include "events/charge_event.h"

#include <boost/json.hpp>
#include <cstdio>
#include <ctime>
#include <set>

#include "common/limits.h"

namespace paypath::events {
namespace json = boost::json;
namespace {

// Version 1's fields, exactly.
const std::set<std::string, std::less<>> kFieldsV1 = {"type",       "version", "message_id", "charge_id", "tenant",
                                                      "account_id", "amount",  "currency",   "created_at"};

Rejected Reject(Violation v, std::string detail) { return {v, std::move(detail)}; }

std::string Header(const amqp::Message& m, const char* key, bool* present) {
  auto it = m.headers.find(key);
  *present = it != m.headers.end();
  return *present ? it->second : "";
}

}  // namespace

const char* ViolationName(Violation v) {
  switch (v) {
    case Violation::kUndecodable: return "undecodable";
    case Violation::kUnknownType: return "unknown_type";
    case Violation::kUnknownVersion: return "unknown_version";
    case Violation::kTypeMismatch: return "type_mismatch";
    case Violation::kMessageIdMismatch: return "message_id_mismatch";
    case Violation::kTenantHeaderMissing: return "tenant_header_missing";
    case Violation::kTenantHeaderMismatch: return "tenant_header_mismatch";
    case Violation::kChargeIdHeaderMissing: return "charge_id_header_missing";
    case Violation::kChargeIdHeaderMismatch: return "charge_id_header_mismatch";
    case Violation::kInvalidField: return "invalid_field";
  }
  return "invalid_field";
}

std::string FormatUtcMicros(std::chrono::system_clock::time_point t) {
  auto us = std::chrono::duration_cast<std::chrono::microseconds>(t.time_since_epoch()).count();
  int64_t secs = us / 1000000, frac = us % 1000000;
  if (frac < 0) {  // before 1970: floor, so the fraction stays positive
    secs -= 1;
    frac += 1000000;
  }
  std::time_t tt = static_cast<std::time_t>(secs);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[48];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(frac));
  return buf;
}

Result<std::chrono::system_clock::time_point> ParseUtcTimestamp(const std::string& s) {
  int y, mo, d, h, mi, sec, n = 0;
  if (std::sscanf(s.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &sec, &n) != 6 || n != 19)
    return Error::InvalidArgument("created_at is not YYYY-MM-DDTHH:MM:SS[.f]Z");
  size_t i = 19;
  int64_t nanos = 0;
  if (i < s.size() && s[i] == '.') {
    int digits = 0;
    for (++i; i < s.size() && s[i] >= '0' && s[i] <= '9'; ++i, ++digits) {
      if (digits < 9) nanos = nanos * 10 + (s[i] - '0');
    }
    if (digits == 0) return Error::InvalidArgument("created_at has an empty fraction");
    if (digits > 9) return Error::InvalidArgument("created_at has more than 9 fraction digits");
    for (int k = digits; k < 9; ++k) nanos *= 10;
  }
  if (i + 1 != s.size() || s[i] != 'Z') return Error::InvalidArgument("created_at must end in Z (UTC)");
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60)
    return Error::InvalidArgument("created_at is out of range");
  std::tm tm{};
  tm.tm_year = y - 1900;
  tm.tm_mon = mo - 1;
  tm.tm_mday = d;
  tm.tm_hour = h;
  tm.tm_min = mi;
  tm.tm_sec = sec;
  auto t = std::chrono::system_clock::from_time_t(timegm(&tm));
  return t + std::chrono::duration_cast<std::chrono::system_clock::duration>(std::chrono::nanoseconds(nanos));
}

bool IsUuid(std::string_view s) {
  if (s.size() != 36) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (c != '-') return false;
    } else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'))) {
      return false;
    }
  }
  return true;
}

std::string EncodePayload(const ChargeEvent& e) {
  // boost::json::object keeps insertion order, so the serialized field order is the documented one.
  json::object o;
  o["type"] = kChargeSucceeded;
  o["version"] = kChargeEventVersion;
  o["message_id"] = e.message_id;
  o["charge_id"] = e.charge_id;
  o["tenant"] = e.tenant;
  o["account_id"] = e.account_id;
  o["amount"] = e.amount;
  o["currency"] = e.currency;
  o["created_at"] = FormatUtcMicros(e.created_at);
  return json::serialize(o);
}

amqp::Message EncodeMessage(const OutboxRecord& r) {
  amqp::Message m;
  m.message_id = r.message_id;
  m.type = r.event_type;
  m.content_type = "application/json";
  m.timestamp = r.created_unix_s;
  m.body = r.payload;
  m.headers = {{kHeaderTenant, r.tenant},
               {kHeaderChargeId, r.charge_id},
               {kHeaderEventType, r.event_type},
               {kHeaderOutboxId, std::to_string(r.outbox_id)}};
  return m;
}

std::variant<ChargeEvent, Rejected> Decode(const amqp::Message& m) {
  boost::system::error_code ec;
  json::value v = json::parse(m.body, ec);
  if (ec) return Reject(Violation::kUndecodable, "body is not JSON: " + ec.message());
  if (!v.is_object()) return Reject(Violation::kUndecodable, "body is not a JSON object");
  const json::object& o = v.get_object();

  // What it is comes first: a payload of another type or version has another shape.
  const json::value* type = o.if_contains("type");
  if (type == nullptr || !type->is_string()) return Reject(Violation::kUndecodable, "missing string field type");
  if (type->get_string() != kChargeSucceeded)
    return Reject(Violation::kUnknownType, "event type '" + std::string(type->get_string()) + "' is unknown");
  const json::value* version = o.if_contains("version");
  if (version == nullptr || !(version->is_int64() || version->is_uint64()))
    return Reject(Violation::kUndecodable, "missing integer field version");
  if (!version->is_int64() || version->get_int64() != kChargeEventVersion)
    return Reject(Violation::kUnknownVersion,
                  "version " + json::serialize(*version) + " of " + kChargeSucceeded + " is unknown");

  for (const auto& kv : o)
    if (!kFieldsV1.contains(std::string_view(kv.key())))
      return Reject(Violation::kUndecodable, "unknown field '" + std::string(kv.key()).substr(0, 64) + "'");
  ChargeEvent e;
  std::string created;
  for (auto [key, out] : {std::pair<const char*, std::string*>{"message_id", &e.message_id},
                          {"charge_id", &e.charge_id},
                          {"tenant", &e.tenant},
                          {"account_id", &e.account_id},
                          {"currency", &e.currency},
                          {"created_at", &created}}) {
    const json::value* f = o.if_contains(key);
    if (f == nullptr || !f->is_string()) return Reject(Violation::kUndecodable, std::string("missing string field ") + key);
    out->assign(f->get_string().data(), f->get_string().size());
  }
  const json::value* amount = o.if_contains("amount");
  if (amount == nullptr || !(amount->is_int64() || amount->is_uint64()))
    return Reject(Violation::kUndecodable, "missing integer field amount");

  if (m.type != kChargeSucceeded)
    return Reject(Violation::kTypeMismatch, "AMQP type '" + m.type.substr(0, 64) + "' differs from the payload's");
  if (m.message_id != e.message_id)
    return Reject(Violation::kMessageIdMismatch, "AMQP message_id '" + m.message_id.substr(0, 64) +
                                                      "' differs from the payload's '" + e.message_id.substr(0, 64) + "'");
  bool present = false;
  std::string tenant = Header(m, kHeaderTenant, &present);
  if (!present) return Reject(Violation::kTenantHeaderMissing, "no tenant header");
  if (tenant != e.tenant) return Reject(Violation::kTenantHeaderMismatch, "tenant header differs from the payload's");
  std::string charge_id = Header(m, kHeaderChargeId, &present);
  if (!present) return Reject(Violation::kChargeIdHeaderMissing, "no charge_id header");
  if (charge_id != e.charge_id)
    return Reject(Violation::kChargeIdHeaderMismatch, "charge_id header differs from the payload's");

  if (!IsUuid(e.message_id)) return Reject(Violation::kInvalidField, "message_id is not a UUID");
  if (!limits::IsId(e.charge_id)) return Reject(Violation::kInvalidField, "charge_id must match [A-Za-z0-9_-]{1,64}");
  if (!limits::IsId(e.tenant)) return Reject(Violation::kInvalidField, "tenant must match [A-Za-z0-9_-]{1,64}");
  if (!limits::IsId(e.account_id)) return Reject(Violation::kInvalidField, "account_id must match [A-Za-z0-9_-]{1,64}");
  if (!limits::IsCurrency(e.currency)) return Reject(Violation::kInvalidField, "currency must be [A-Z]{3}");
  if (!amount->is_int64() || !limits::IsAmount(amount->get_int64()))
    return Reject(Violation::kInvalidField, "amount must be 1..100000000000");
  e.amount = amount->get_int64();
  auto t = ParseUtcTimestamp(created);
  if (!t.ok()) return Reject(Violation::kInvalidField, t.error().message);
  e.created_at = *t;
  return e;
}

}  // namespace paypath::events
