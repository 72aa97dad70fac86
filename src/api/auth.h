// API keys: which tenant a request's bearer token belongs to, without a timing side channel.
//
// A std::map lookup compares the presented token with stored keys byte by byte and stops at the first
// difference, so the time it takes tells an attacker how long a prefix they guessed right, and which key
// (by its position in the tree) they are near. Here both the presented token and every configured key are
// reduced to SHA-256 digests (fixed length, and a digest's prefix says nothing about the key's prefix),
// and the presented digest is compared with *every* configured digest with CRYPTO_memcmp (constant time),
// selecting the match without a branch. The time depends only on the number of configured keys and the
// length of the presented token, neither of which is secret.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "http/message.h"

namespace paypath::api {

class ApiKeys {
 public:
  // key -> tenant, as ParseApiKeys returns it. The keys themselves are not kept, only their digests.
  explicit ApiKeys(const std::map<std::string, std::string>& key_to_tenant);

  // The tenant whose key equals `presented` exactly, or nullptr. Thread-safe (const); the pointer stays
  // valid as long as this object.
  const std::string* Lookup(std::string_view presented) const;

  size_t size() const { return entries_.size(); }

 private:
  using Digest = std::array<unsigned char, 32>;
  static Digest Hash(std::string_view s);
  struct Entry {
    Digest digest;
    std::string tenant;
  };
  std::vector<Entry> entries_;
};

// The token of "Authorization: Bearer <token>" (scheme case-insensitive, RFC 9110 section 11.1), or
// nullopt when the header is missing, repeated, of another scheme, or the token is empty.
std::optional<std::string_view> BearerToken(const http::HttpRequest& req);

}  // namespace paypath::api
