#include "api/validation.h"

#include <boost/json.hpp>

#include <algorithm>
#include <vector>

#include "common/crypto.h"

namespace paypath::api {
namespace json = boost::json;
namespace {

size_t Utf8Chars(std::string_view s) {
  size_t n = 0;
  for (unsigned char c : s)
    if ((c & 0xC0) != 0x80) n++;
  return n;
}

void AppendCanonical(std::string& out, const json::value& v) {
  switch (v.kind()) {
    case json::kind::object: {
      const json::object& o = v.get_object();
      std::vector<const json::key_value_pair*> items;
      items.reserve(o.size());
      for (const auto& kv : o) items.push_back(&kv);
      std::sort(items.begin(), items.end(),
                [](const auto* a, const auto* b) { return a->key() < b->key(); });
      out.push_back('{');
      for (size_t i = 0; i < items.size(); ++i) {
        if (i) out.push_back(',');
        out += json::serialize(json::string_view(items[i]->key()));
        out.push_back(':');
        AppendCanonical(out, items[i]->value());
      }
      out.push_back('}');
      break;
    }
    case json::kind::array: {
      out.push_back('[');
      bool first = true;
      for (const auto& e : v.get_array()) {
        if (!first) out.push_back(',');
        first = false;
        AppendCanonical(out, e);
      }
      out.push_back(']');
      break;
    }
    default:
      out += json::serialize(v);
  }
}

Result<json::value> ParseJson(std::string_view text) {
  json::parse_options opts;
  opts.allow_invalid_utf8 = true;  // checked per field below, so the error can name the field
  opts.max_depth = 32;
  boost::system::error_code ec;
  json::value v = json::parse(json::string_view(text.data(), text.size()), ec, {}, opts);
  if (ec) return Error::InvalidArgument("body is not valid JSON: " + ec.message());
  return v;
}

}  // namespace

bool IsValidUtf8(std::string_view s) {
  size_t i = 0, n = s.size();
  while (i < n) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      i++;
      continue;
    }
    int len;
    uint32_t cp;
    if ((c & 0xE0) == 0xC0) {
      len = 2;
      cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      len = 3;
      cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      len = 4;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (i + len > n) return false;
    for (int k = 1; k < len; ++k) {
      unsigned char cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3F);
    }
    if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000)) return false;
    if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += len;
  }
  return true;
}

Result<std::string> ParseIdempotencyKey(std::string_view header) {
  std::string key;
  if (!header.empty() && header.front() == '"') {
    if (header.size() < 2 || header.back() != '"')
      return Error::InvalidArgument("Idempotency-Key starts with a quote but is not a valid quoted string");
    std::string_view inner = header.substr(1, header.size() - 2);
    for (size_t i = 0; i < inner.size(); ++i) {
      char c = inner[i];
      if (c == '\\') {
        if (i + 1 >= inner.size() || (inner[i + 1] != '"' && inner[i + 1] != '\\'))
          return Error::InvalidArgument("Idempotency-Key quoted string has an invalid escape");
        key.push_back(inner[++i]);
      } else if (c == '"') {
        return Error::InvalidArgument("Idempotency-Key quoted string has an unescaped quote");
      } else {
        key.push_back(c);
      }
    }
  } else {
    key.assign(header);
  }
  if (key.empty()) return Error::InvalidArgument("Idempotency-Key is empty");
  if (key.size() > kMaxKeyLength)
    return Error::InvalidArgument("Idempotency-Key is longer than 255 characters");
  for (char c : key) {
    if (c < 0x21 || c > 0x7E)
      return Error::InvalidArgument("Idempotency-Key may contain only visible ASCII characters (0x21-0x7E)");
  }
  return key;
}

Result<std::string> CanonicalJson(std::string_view text) {
  auto v = ParseJson(text);
  if (!v.ok()) return v.error();
  std::string out;
  AppendCanonical(out, v.value());
  return out;
}

std::string Fingerprint(std::string_view method, std::string_view path, std::string_view canonical_body) {
  std::string data;
  data.reserve(method.size() + path.size() + canonical_body.size() + 2);
  data.append(method).append("\n").append(path).append("\n").append(canonical_body);
  return Sha256Hex(data);
}

std::variant<ChargeRequest, FieldError> ParseChargeRequest(std::string_view body) {
  auto parsed = ParseJson(body);
  if (!parsed.ok()) return FieldError{"", parsed.error().message};
  const json::value& v = parsed.value();
  if (!v.is_object()) return FieldError{"", "body must be a JSON object"};
  const json::object& o = v.get_object();
  ChargeRequest req;
  bool have_account = false, have_amount = false, have_currency = false;
  for (const auto& kv : o) {
    std::string_view key(kv.key().data(), kv.key().size());
    if (!IsValidUtf8(key)) return FieldError{"", "a field name is not valid UTF-8"};
    const json::value& f = kv.value();
    if (key == "account_id") {
      if (!f.is_string()) return FieldError{"account_id", "account_id must be a string"};
      std::string_view s(f.get_string().data(), f.get_string().size());
      if (!IsValidUtf8(s)) return FieldError{"account_id", "account_id is not valid UTF-8"};
      if (!limits::IsId(s))
        return FieldError{"account_id", "account_id must match [A-Za-z0-9_-]{1,64}"};
      req.account_id.assign(s);
      have_account = true;
    } else if (key == "amount") {
      int64_t amount;
      if (f.is_int64()) {
        amount = f.get_int64();
      } else if (f.is_uint64()) {
        return FieldError{"amount", "amount must be at most 100000000000"};
      } else if (f.is_double()) {
        return FieldError{"amount", "amount must be an integer number of minor units"};
      } else {
        return FieldError{"amount", "amount must be an integer"};
      }
      if (amount < limits::kMinAmount) return FieldError{"amount", "amount must be at least 1"};
      if (amount > kMaxAmount) return FieldError{"amount", "amount must be at most 100000000000"};
      req.amount = amount;
      have_amount = true;
    } else if (key == "currency") {
      if (!f.is_string()) return FieldError{"currency", "currency must be a string"};
      std::string_view s(f.get_string().data(), f.get_string().size());
      if (!limits::IsCurrency(s))
        return FieldError{"currency", "currency must be three upper-case letters (ISO 4217), e.g. USD"};
      req.currency.assign(s);
      have_currency = true;
    } else if (key == "description") {
      if (f.is_null()) continue;
      if (!f.is_string()) return FieldError{"description", "description must be a string or null"};
      std::string_view s(f.get_string().data(), f.get_string().size());
      if (!IsValidUtf8(s)) return FieldError{"description", "description is not valid UTF-8"};
      if (Utf8Chars(s) > kMaxDescriptionChars)
        return FieldError{"description", "description must be at most 500 characters"};
      req.description = std::string(s);
    } else {
      std::string name(key.substr(0, 64));
      return FieldError{name, "unknown field '" + name + "'"};
    }
  }
  if (!have_account) return FieldError{"account_id", "account_id is required"};
  if (!have_amount) return FieldError{"amount", "amount is required"};
  if (!have_currency) return FieldError{"currency", "currency is required"};
  AppendCanonical(req.canonical_body, v);
  return req;
}

}  // namespace paypath::api
