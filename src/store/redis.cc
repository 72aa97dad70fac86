#include "store/redis.h"

#include <cstdlib>

namespace paypath::store {

Result<RedisAddress> ParseRedisUrl(const std::string& url) {
  const std::string scheme = "redis://";
  if (url.rfind(scheme, 0) != 0) return Error::InvalidArgument("redis URL must start with redis://");
  std::string rest = url.substr(scheme.size());
  RedisAddress a;
  size_t slash = rest.find('/');
  if (slash != std::string::npos) {
    std::string db = rest.substr(slash + 1);
    rest = rest.substr(0, slash);
    if (!db.empty()) a.db = std::atoi(db.c_str());
  }
  size_t at = rest.rfind('@');
  if (at != std::string::npos) {
    std::string userinfo = rest.substr(0, at);
    rest = rest.substr(at + 1);
    size_t colon = userinfo.find(':');
    if (colon == std::string::npos) {
      a.password = userinfo;
    } else {
      a.user = userinfo.substr(0, colon);
      a.password = userinfo.substr(colon + 1);
    }
  }
  size_t colon = rest.rfind(':');
  if (colon != std::string::npos) {
    a.host = rest.substr(0, colon);
    a.port = std::atoi(rest.c_str() + colon + 1);
  } else if (!rest.empty()) {
    a.host = rest;
  }
  if (a.port <= 0 || a.port > 65535) return Error::InvalidArgument("redis URL has no valid port");
  return a;
}

Result<std::unique_ptr<RedisConn>> RedisConn::Connect(const RedisAddress& addr, std::chrono::milliseconds timeout) {
  timeval tv{static_cast<time_t>(timeout.count() / 1000), static_cast<suseconds_t>((timeout.count() % 1000) * 1000)};
  redisContext* c = redisConnectWithTimeout(addr.host.c_str(), addr.port, tv);
  if (c == nullptr) return Error::Unavailable("redis: cannot allocate context");
  if (c->err) {
    std::string msg = c->errstr;
    redisFree(c);
    return Error::Unavailable("redis connect: " + msg);
  }
  redisSetTimeout(c, tv);
  auto conn = std::unique_ptr<RedisConn>(new RedisConn(c));
  if (!addr.password.empty()) {
    std::vector<std::string> auth = {"AUTH"};
    if (!addr.user.empty()) auth.push_back(addr.user);
    auth.push_back(addr.password);
    // The reply names no password; say who failed to log in and nothing more.
    auto r = conn->Command(auth);
    if (!r.ok()) return Error::Unavailable("redis AUTH as " + (addr.user.empty() ? "default" : addr.user) + " refused");
  }
  if (addr.db != 0) {
    auto r = conn->Command({"SELECT", std::to_string(addr.db)});
    if (!r.ok()) return r.error();
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
