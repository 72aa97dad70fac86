// Settings shared by every subcommand. Environment variables give defaults, command-line flags override
// (main.cc wires the flags). Secrets (API keys, URLs with passwords) are never logged.
#pragma once

#include <chrono>
#include <map>
#include <string>

#include "common/result.h"

namespace paypath {

// The value of environment variable `name`, or `fallback` when unset or empty.
std::string EnvOr(const char* name, const std::string& fallback);

// Parses "key:tenant,key:tenant" into key -> tenant. Rejects empty keys/tenants and duplicate keys.
// Tenants must match [A-Za-z0-9_-]{1,64}, since they appear in account names and metrics.
Result<std::map<std::string, std::string>> ParseApiKeys(const std::string& spec);

// Splits "host:port"; rejects a missing or out-of-range port.
struct HostPort {
  std::string host;
  uint16_t port = 0;
};
Result<HostPort> ParseHostPort(const std::string& s);

// RFC 9110 IMF-fixdate, e.g. "Sun, 06 Nov 1994 08:49:37 GMT".
std::string FormatHttpDate(std::chrono::system_clock::time_point t);
// Parses an IMF-fixdate; other (obsolete) forms are rejected.
Result<std::chrono::system_clock::time_point> ParseHttpDate(const std::string& s);

}  // namespace paypath
