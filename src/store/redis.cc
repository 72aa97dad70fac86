#include "store/redis.h"

#include <algorithm>
#include <cstdlib>
#include <string_view>

namespace paypath::store {

namespace {

int HexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// RFC 3986 percent-decoding of a userinfo part (a password may hold '@', ':' or '/').
Result<std::string> PercentDecode(std::string_view s, const char* what) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') {
      out += s[i];
      continue;
    }
    int hi = i + 2 < s.size() ? HexDigit(s[i + 1]) : -1;
    int lo = i + 2 < s.size() ? HexDigit(s[i + 2]) : -1;
    if (hi < 0 || lo < 0) return Error::InvalidArgument(std::string("redis URL: bad %-escape in the ") + what);
    out += static_cast<char>(hi * 16 + lo);
    i += 2;
  }
  return out;
}

bool AllDigits(std::string_view s) {
  return !s.empty() && s.size() <= 9 && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

}  // namespace

std::string RedisAddress::Describe() const {
  std::string out = "redis://";
  if (!user.empty() || !password.empty()) out += user + (password.empty() ? "" : ":***") + "@";
  return out + host + ":" + std::to_string(port) + "/" + std::to_string(db);
}

Result<RedisAddress> ParseRedisUrl(const std::string& url) {
  const std::string scheme = "redis://";
  if (url.rfind(scheme, 0) != 0) return Error::InvalidArgument("redis URL must start with redis://");
  std::string_view rest = std::string_view(url).substr(scheme.size());
  RedisAddress a;
  if (rest.find_first_of("?#") != std::string_view::npos)
    return Error::InvalidArgument("redis URL: query strings and fragments are not supported");
  // The authority ends at the first '/' after the userinfo (a raw '/' in a password must be %2F).
  size_t at = rest.rfind('@');
  std::string_view userinfo;
  if (at != std::string_view::npos) {
    userinfo = rest.substr(0, at);
    rest = rest.substr(at + 1);
  }
  size_t slash = rest.find('/');
  std::string_view hostport = rest.substr(0, slash);
  if (slash != std::string_view::npos) {
    std::string_view db = rest.substr(slash + 1);
    if (!db.empty()) {
      if (!AllDigits(db)) return Error::InvalidArgument("redis URL: the database must be a number, as in redis://host:6379/0");
      a.db = std::stoi(std::string(db));
    }
  }
  if (!userinfo.empty()) {
    size_t colon = userinfo.find(':');
    auto user = PercentDecode(userinfo.substr(0, colon), "user");
    if (!user.ok()) return user.error();
    a.user = user.value();
    if (colon != std::string_view::npos) {
      auto pw = PercentDecode(userinfo.substr(colon + 1), "password");
      if (!pw.ok()) return pw.error();
      a.password = pw.value();
    }
    if (!a.user.empty() && a.password.empty())
      return Error::InvalidArgument("redis URL names user '" + a.user + "' but no password (redis://user:password@host)");
  }
  if (!hostport.empty() && hostport.front() == '[') {  // [IPv6]:port
    size_t close = hostport.find(']');
    if (close == std::string_view::npos) return Error::InvalidArgument("redis URL: unterminated [IPv6] host");
    a.host = std::string(hostport.substr(1, close - 1));
    hostport = hostport.substr(close + 1);
    if (!hostport.empty() && hostport.front() != ':') return Error::InvalidArgument("redis URL: junk after the [IPv6] host");
    if (!hostport.empty()) {
      hostport.remove_prefix(1);
      if (!AllDigits(hostport)) return Error::InvalidArgument("redis URL: the port must be a number");
      a.port = std::stoi(std::string(hostport));
    }
  } else {
    size_t colon = hostport.rfind(':');
    std::string_view host = hostport.substr(0, colon);
    if (!host.empty()) a.host = std::string(host);
    if (colon != std::string_view::npos) {
      std::string_view port = hostport.substr(colon + 1);
      if (!AllDigits(port)) return Error::InvalidArgument("redis URL: the port must be a number");
      a.port = std::stoi(std::string(port));
    }
  }
  if (a.port <= 0 || a.port > 65535) return Error::InvalidArgument("redis URL: the port must be in 1..65535");
  return a;
}

Result<std::unique_ptr<RedisConn>> RedisConn::Connect(const RedisAddress& addr, std::chrono::milliseconds timeout) {
  timeval tv{static_cast<time_t>(timeout.count() / 1000), static_cast<suseconds_t>((timeout.count() % 1000) * 1000)};
  redisContext* c = redisConnectWithTimeout(addr.host.c_str(), addr.port, tv);
  if (c == nullptr) return Error::Unavailable("redis: cannot allocate context");
  if (c->err) {
    std::string msg = c->errstr;
    redisFree(c);
    return Error::Unavailable("redis connect " + addr.Describe() + ": " + msg);
  }
  redisSetTimeout(c, tv);
  auto conn = std::unique_ptr<RedisConn>(new RedisConn(c));
  if (!addr.password.empty()) {
    std::vector<std::string> auth = {"AUTH"};
    if (!addr.user.empty()) auth.push_back(addr.user);
    auth.push_back(addr.password);
    auto r = conn->Command(auth);
    // The reply (WRONGPASS ...) never echoes the password; the command is not logged.
    if (!r.ok()) {
      if (!conn->healthy()) return r.error();
      return Error::FailedPrecondition("redis AUTH as " + (addr.user.empty() ? std::string("default") : addr.user) +
                                       " refused by " + addr.Describe() + ": " + r.error().message);
    }
  }
  if (addr.db != 0) {
    auto r = conn->Command({"SELECT", std::to_string(addr.db)});
    if (!r.ok()) {
      if (!conn->healthy()) return r.error();
      return Error::FailedPrecondition("redis SELECT " + std::to_string(addr.db) + " refused: " + r.error().message);
    }
  }
  return conn;
}

RedisConn::~RedisConn() {
  if (ctx_) redisFree(ctx_);
}

Result<std::string> RedisConn::Run(const std::vector<std::string>& argv, int* type) {
  if (!healthy()) return Error::Unavailable("redis connection is broken");
  std::vector<const char*> args;
  std::vector<size_t> lens;
  for (const auto& a : argv) {
    args.push_back(a.data());
    lens.push_back(a.size());
  }
  auto* reply = static_cast<redisReply*>(
      redisCommandArgv(ctx_, static_cast<int>(args.size()), args.data(), lens.data()));
  if (reply == nullptr) return Error::Unavailable(std::string("redis: ") + (ctx_->errstr[0] ? ctx_->errstr : "no reply"));
  *type = reply->type;
  std::string out;
  switch (reply->type) {
    case REDIS_REPLY_STRING:
    case REDIS_REPLY_STATUS:
      out.assign(reply->str, reply->len);
      break;
    case REDIS_REPLY_INTEGER:
      out = std::to_string(reply->integer);
      break;
    case REDIS_REPLY_ERROR: {
      std::string msg(reply->str, reply->len);
      freeReplyObject(reply);
      return Error::Internal("redis error reply: " + msg);
    }
    default:
      break;
  }
  freeReplyObject(reply);
  return out;
}

Result<std::optional<std::string>> RedisConn::Get(const std::string& key) {
  int type = 0;
  auto r = Run({"GET", key}, &type);
  if (!r.ok()) return r.error();
  if (type == REDIS_REPLY_NIL) return std::optional<std::string>();
  return std::optional<std::string>(std::move(r.value()));
}

Result<bool> RedisConn::Set(const std::string& key, const std::string& value, std::chrono::milliseconds ttl, bool nx) {
  std::vector<std::string> argv = {"SET", key, value, "PX", std::to_string(std::max<int64_t>(1, ttl.count()))};
  if (nx) argv.push_back("NX");
  int type = 0;
  auto r = Run(argv, &type);
  if (!r.ok()) return r.error();
  return type != REDIS_REPLY_NIL;
}

Status RedisConn::Del(const std::string& key) {
  int type = 0;
  auto r = Run({"DEL", key}, &type);
  if (!r.ok()) return r.error();
  return OkStatus();
}

Result<std::string> RedisConn::Command(const std::vector<std::string>& argv) {
  int type = 0;
  return Run(argv, &type);
}

}  // namespace paypath::store
