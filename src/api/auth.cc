#include "api/auth.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>

namespace paypath::api {

ApiKeys::Digest ApiKeys::Hash(std::string_view s) {
  Digest d{};
  unsigned int len = 0;
  EVP_Digest(s.data(), s.size(), d.data(), &len, EVP_sha256(), nullptr);
  return d;
}

ApiKeys::ApiKeys(const std::map<std::string, std::string>& key_to_tenant) {
  entries_.reserve(key_to_tenant.size());
  for (const auto& [key, tenant] : key_to_tenant) entries_.push_back({Hash(key), tenant});
}

const std::string* ApiKeys::Lookup(std::string_view presented) const {
  const Digest d = Hash(presented);
  // Visit every entry and fold the result into masks: no early exit, no data-dependent branch.
  size_t found = 0;  // all ones once an entry matched
  size_t index = 0;
  for (size_t i = 0; i < entries_.size(); ++i) {
    const size_t eq = static_cast<size_t>(CRYPTO_memcmp(d.data(), entries_[i].digest.data(), d.size()) == 0);
    const size_t mask = ~(eq - 1);  // eq 1 -> all ones, eq 0 -> zero
    index = (index & ~mask) | (i & mask);
    found |= mask;
  }
  // Two keys with one digest would be a SHA-256 collision; the constructor's input has unique keys.
  return found != 0 ? &entries_[index].tenant : nullptr;
}

std::optional<std::string_view> BearerToken(const http::HttpRequest& req) {
  if (req.HeaderCount("Authorization") != 1) return std::nullopt;
  std::string_view v = *req.Header("Authorization");
  constexpr std::string_view kScheme = "Bearer ";
  if (v.size() < kScheme.size() || !http::HeaderNameEquals(v.substr(0, kScheme.size()), kScheme)) return std::nullopt;
  v.remove_prefix(kScheme.size());
  while (!v.empty() && v.front() == ' ') v.remove_prefix(1);
  while (!v.empty() && v.back() == ' ') v.remove_suffix(1);
  if (v.empty()) return std::nullopt;
  return v;
}

}  // namespace paypath::api
