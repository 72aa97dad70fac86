// Hashing used for request fingerprints.
#pragma once

#include <string>
#include <string_view>

namespace paypath {

// SHA-256 of data as 64 lower-case hex characters (OpenSSL EVP).
std::string Sha256Hex(std::string_view data);

}  // namespace paypath
