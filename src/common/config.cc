#include "common/config.h"

#include <cstdlib>
#include <cstring>
#include <ctime>

#include "common/limits.h"

namespace paypath {
namespace {

const char* kDays[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
const char* kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

}  // namespace

std::string EnvOr(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);
  return (v == nullptr || *v == '\0') ? fallback : std::string(v);
}

Result<std::map<std::string, std::string>> ParseApiKeys(const std::string& spec) {
  std::map<std::string, std::string> out;
  size_t pos = 0;
  while (pos <= spec.size()) {
    size_t comma = spec.find(',', pos);
    std::string item = spec.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
    pos = comma == std::string::npos ? spec.size() + 1 : comma + 1;
    if (item.empty()) continue;
    size_t colon = item.rfind(':');
    if (colon == std::string::npos || colon == 0 || colon + 1 == item.size())
      return Error::InvalidArgument("API key entry #" + std::to_string(out.size() + 1) + " is not key:tenant");
    std::string key = item.substr(0, colon), tenant = item.substr(colon + 1);
    if (tenant.size() > limits::kMaxIdLength)
      return Error::InvalidArgument("tenant '" + tenant + "' is longer than 64 characters");
    if (!limits::IsId(tenant)) return Error::InvalidArgument("tenant '" + tenant + "' must match [A-Za-z0-9_-]{1,64}");
    if (!out.emplace(key, tenant).second)
      return Error::InvalidArgument("an API key is listed twice (for tenant '" + tenant + "')");
  }
  if (out.empty()) return Error::InvalidArgument("no API keys configured (PAYPATH_API_KEYS=key:tenant,...)");
  return out;
}

Result<HostPort> ParseHostPort(const std::string& s) {
  size_t colon = s.rfind(':');
  if (colon == std::string::npos || colon == 0) return Error::InvalidArgument("'" + s + "' is not host:port");
  char* end = nullptr;
  long port = std::strtol(s.c_str() + colon + 1, &end, 10);
  if (*end != '\0' || port < 0 || port > 65535 || colon + 1 == s.size())
    return Error::InvalidArgument("'" + s + "' has no valid port");
  std::string host = s.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  return HostPort{host, static_cast<uint16_t>(port)};
}

std::string FormatHttpDate(std::chrono::system_clock::time_point t) {
  std::time_t secs = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[40];
  std::snprintf(buf, sizeof buf, "%s, %02d %s %04d %02d:%02d:%02d GMT", kDays[tm.tm_wday], tm.tm_mday,
                kMonths[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
  return buf;
}

Result<std::chrono::system_clock::time_point> ParseHttpDate(const std::string& s) {
  char day[4] = {}, mon[4] = {};
  int mday = 0, year = 0, hh = 0, mm = 0, ss = 0;
  char gmt[4] = {};
  if (std::sscanf(s.c_str(), "%3s, %2d %3s %4d %2d:%2d:%2d %3s", day, &mday, mon, &year, &hh, &mm, &ss, gmt) != 8 ||
      std::strcmp(gmt, "GMT") != 0)
    return Error::InvalidArgument("not an HTTP date: '" + s + "'");
  int month = -1;
  for (int i = 0; i < 12; ++i)
    if (std::strcmp(mon, kMonths[i]) == 0) month = i;
  if (month < 0 || mday < 1 || mday > 31 || hh > 23 || mm > 59 || ss > 60)
    return Error::InvalidArgument("not an HTTP date: '" + s + "'");
  std::tm tm{};
  tm.tm_year = year - 1900;
  tm.tm_mon = month;
  tm.tm_mday = mday;
  tm.tm_hour = hh;
  tm.tm_min = mm;
  tm.tm_sec = ss;
  return std::chrono::system_clock::from_time_t(timegm(&tm));
}

}  // namespace paypath

#include "common/cli.h"

namespace paypath::cli {
namespace {
int g_exit_code = 0;
}
void SetExitCode(int code) { g_exit_code = code; }
int ExitCode() { return g_exit_code; }
}  // namespace paypath::cli
