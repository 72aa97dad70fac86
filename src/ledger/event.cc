#include "ledger/event.h"

#include <algorithm>
#include <boost/json.hpp>
#include <cstdio>
#include <ctime>

#include "outbox/outbox.h"

namespace paypath::ledger {
namespace {

bool IsIdent(const std::string& s) {
  if (s.empty() || s.size() > 64) return false;
  for (char c : s)
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-'))
      return false;
  return true;
}

bool IsUuid(const std::string& s) {
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

Result<std::string> StringField(const boost::json::object& o, const char* key) {
  auto* v = o.if_contains(key);
  if (v == nullptr || !v->is_string()) return Error::InvalidArgument(std::string("missing string field ") + key);
  return std::string(v->as_string());
}

}  // namespace

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

Result<ChargeEvent> ParseChargeEvent(const amqp::Message& m) {
  if (m.type != outbox::kChargeSucceeded)
    return Error::InvalidArgument("event type '" + m.type + "' is not " + outbox::kChargeSucceeded);
  if (!IsUuid(m.message_id)) return Error::InvalidArgument("message_id is not a UUID");
  boost::system::error_code ec;
  boost::json::value v = boost::json::parse(m.body, ec);
  if (ec) return Error::InvalidArgument("body is not JSON: " + ec.message());
  if (!v.is_object()) return Error::InvalidArgument("body is not a JSON object");
  const auto& o = v.as_object();
  ChargeEvent e;
  e.message_id = m.message_id;
  auto charge_id = StringField(o, "charge_id");
  auto tenant = StringField(o, "tenant");
  auto account = StringField(o, "account_id");
  auto currency = StringField(o, "currency");
  auto created = StringField(o, "created_at");
  for (auto* r : {&charge_id, &tenant, &account, &currency, &created})
    if (!r->ok()) return r->error();
  e.charge_id = *charge_id;
  e.tenant = *tenant;
  e.account_id = *account;
  e.currency = *currency;
  if (e.charge_id.empty() || e.charge_id.size() > 255) return Error::InvalidArgument("charge_id must be 1..255 bytes");
  if (!IsIdent(e.tenant)) return Error::InvalidArgument("tenant must match [A-Za-z0-9_-]{1,64}");
  if (!IsIdent(e.account_id)) return Error::InvalidArgument("account_id must match [A-Za-z0-9_-]{1,64}");
  if (e.currency.size() != 3 || !std::all_of(e.currency.begin(), e.currency.end(), [](char c) { return c >= 'A' && c <= 'Z'; }))
    return Error::InvalidArgument("currency must be three upper-case letters");
  auto* amount = o.if_contains("amount");
  if (amount == nullptr || !(amount->is_int64() || amount->is_uint64()))
    return Error::InvalidArgument("amount must be an integer");
  e.amount = amount->is_int64() ? amount->as_int64() : static_cast<int64_t>(std::min<uint64_t>(amount->as_uint64(), INT64_MAX));
  if (e.amount < 1 || e.amount > 100000000000LL) return Error::InvalidArgument("amount must be 1..100000000000");
  auto t = ParseUtcTimestamp(*created);
  if (!t.ok()) return t.error();
  e.created_at = *t;
  // The relay copies the tenant into a header; a mismatch means the message was tampered with or mis-built.
  auto h = m.headers.find("tenant");
  if (h != m.headers.end() && h->second != e.tenant)
    return Error::InvalidArgument("tenant header disagrees with the body");
  return e;
}

}  // namespace paypath::ledger
