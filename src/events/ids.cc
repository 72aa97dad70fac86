#include "events/ids.h"

#include <openssl/evp.h>

#include <array>

#include "common/crypto.h"

namespace paypath::events {
namespace {

constexpr char kHex[] = "0123456789abcdef";

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// The 16 bytes of a textual UUID; all zero (the nil UUID) if it is malformed.
std::array<unsigned char, 16> UuidBytes(std::string_view s) {
  std::array<unsigned char, 16> out{};
  if (s.size() != 36) return {};
  size_t j = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (s[i] != '-') return {};
      continue;
    }
    int v = HexValue(s[i]);
    if (v < 0) return {};
    out[j / 2] = static_cast<unsigned char>(out[j / 2] | (j % 2 == 0 ? v << 4 : v));
    ++j;
  }
  return out;
}

}  // namespace

std::string ChargeId(std::string_view tenant, std::string_view idem_key) {
  std::string input = "paypath.charge_id.v1";
  input.push_back('\0');
  input.append(tenant);
  input.push_back('\0');
  input.append(idem_key);
  return "ch_" + Sha256Hex(input).substr(0, 32);
}

std::string Uuid5(std::string_view namespace_uuid, std::string_view name) {
  std::array<unsigned char, 16> ns = UuidBytes(namespace_uuid);
  std::string input(reinterpret_cast<const char*>(ns.data()), ns.size());
  input.append(name);
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(input.data(), input.size(), digest, &len, EVP_sha1(), nullptr);
  digest[6] = static_cast<unsigned char>((digest[6] & 0x0F) | 0x50);  // version 5
  digest[8] = static_cast<unsigned char>((digest[8] & 0x3F) | 0x80);  // RFC 4122 variant
  std::string out;
  out.reserve(36);
  for (int i = 0; i < 16; ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) out.push_back('-');
    out.push_back(kHex[digest[i] >> 4]);
    out.push_back(kHex[digest[i] & 0xF]);
  }
  return out;
}

std::string MessageId(std::string_view charge_id, std::string_view event_type) {
  std::string name(event_type);
  name.push_back('\0');
  name.append(charge_id);
  return Uuid5(kMessageIdNamespace, name);
}

}  // namespace paypath::events
