#include "store/redis_async.h"

#include <hiredis/hiredis.h>

#include <array>
#include <boost/asio.hpp>
#include <deque>
#include <optional>
#include <thread>

namespace paypath::store {

namespace net = boost::asio;
using tcp = net::ip::tcp;
using SteadyClock = std::chrono::steady_clock;

namespace {

// The RESP encoding of one command (hiredis' own formatter, so arguments may hold any bytes).
std::string Encode(const AsyncRedis::Command& argv) {
  std::vector<const char*> args;
  std::vector<size_t> lens;
  args.reserve(argv.size());
  lens.reserve(argv.size());
  for (const auto& a : argv) {
    args.push_back(a.data());
    lens.push_back(a.size());
  }
  char* out = nullptr;
  int n = redisFormatCommandArgv(&out, static_cast<int>(args.size()), args.data(), lens.data());
  if (n < 0 || out == nullptr) return {};
  std::string s(out, static_cast<size_t>(n));
  redisFreeCommand(out);
  return s;
}

RedisReply Convert(const redisReply* r) {
  RedisReply out;
  switch (r->type) {
    case REDIS_REPLY_STRING: out.type = RedisReply::Type::kString; break;
    case REDIS_REPLY_STATUS: out.type = RedisReply::Type::kStatus; break;
    case REDIS_REPLY_ERROR: out.type = RedisReply::Type::kError; break;
    case REDIS_REPLY_INTEGER: out.type = RedisReply::Type::kInteger; out.integer = r->integer; break;
    case REDIS_REPLY_ARRAY: out.type = RedisReply::Type::kArray; break;
    default: out.type = RedisReply::Type::kNil; break;
  }
  if (out.type == RedisReply::Type::kString || out.type == RedisReply::Type::kStatus ||
      out.type == RedisReply::Type::kError)
    out.str.assign(r->str, r->len);
  return out;
}

}  // namespace

struct AsyncRedis::Impl {
  // One TCP connection and its parser. Handlers hold it by shared_ptr, so a failed connection's buffers
  // stay alive until its cancelled operations have completed; a handler whose connection is no longer
  // `conn` does nothing.
  struct Conn {
    explicit Conn(net::io_context& io) : sock(io), resolver(io), reader(redisReaderCreate()) {}
    ~Conn() { redisReaderFree(reader); }
    tcp::socket sock;
    tcp::resolver resolver;
    redisReader* reader;
    std::array<char, 16384> buf;
  };
  // A group of commands answered together. `internal`: the handshake (not counted in outstanding).
  struct Group {
    size_t n = 0;
    std::vector<RedisReply> replies;
    Done done;
    SteadyClock::time_point deadline;
    bool internal = false;
  };

  Impl(const RedisAddress& a, AsyncRedisOptions o) : addr(a), opts(o), guard(net::make_work_guard(io)), timer(io) {
    thread = std::thread([this] { io.run(); });
  }

  ~Impl() {
    {
      std::lock_guard lock(mu);
      closed = true;  // from here on Run refuses inline; everything posted before runs (and fails) below
    }
    net::post(io, [this] { Shutdown(); });
    guard.reset();
    thread.join();
  }

  void Submit(std::string wire, size_t n, Done done) {
    {
      std::lock_guard lock(mu);
      if (!closed) {
        net::post(io, [this, wire = std::move(wire), n, done = std::move(done)]() mutable {
          Enqueue(std::move(wire), n, std::move(done));
        });
        return;
      }
    }
    outstanding.fetch_sub(n);
    done(Error::Unavailable("redis client is shutting down"));
  }

  // --- Everything below runs on the I/O thread.

  // The deadline counts from here (the I/O thread's queue adds microseconds), so deadlines grow in FIFO order.
  void Enqueue(std::string wire, size_t n, Done done) {
    if (shut) {
      outstanding.fetch_sub(n);
      return done(Error::Unavailable("redis client is shutting down"));
    }
    const auto deadline = SteadyClock::now() + opts.timeout;
    if (!conn) Connect(deadline);
    wbuf += wire;
    groups.push_back(Group{n, {}, std::move(done), deadline, false});
    commands.fetch_add(n);
    Arm();
    Flush();
  }

  void Connect(SteadyClock::time_point deadline) {
    conn = std::make_shared<Conn>(io);
    connects.fetch_add(1);
    ready = false;
    // The handshake goes first on the new connection; a refusal fails it (and everything queued behind).
    std::vector<Command> hs;
    if (!addr.password.empty()) {
      Command auth = {"AUTH"};
      if (!addr.user.empty()) auth.push_back(addr.user);
      auth.push_back(addr.password);
      hs.push_back(std::move(auth));
    }
    if (addr.db != 0) hs.push_back({"SELECT", std::to_string(addr.db)});
    if (!hs.empty()) {
      for (const auto& c : hs) wbuf += Encode(c);
      const size_t n = hs.size();
      groups.push_back(Group{n, {}, [this, n](Result<std::vector<RedisReply>> r) {
                               if (!r.ok()) return;  // the connection failed already
                               for (size_t i = 0; i < n; ++i) {
                                 if (r.value()[i].type != RedisReply::Type::kError) continue;
                                 // WRONGPASS / NOPERM / ERR DB index: the server's text never holds the password.
                                 const bool auth = !addr.password.empty() && i == 0;
                                 return Fail(Error::FailedPrecondition(
                                     auth ? "redis AUTH as " + (addr.user.empty() ? std::string("default") : addr.user) +
                                                " refused by " + addr.Describe() + ": " + r.value()[i].str
                                          : "redis SELECT " + std::to_string(addr.db) + " refused by " +
                                                addr.Describe() + ": " + r.value()[i].str));
                               }
                             },
                             deadline, true});
      commands.fetch_add(n);
    }
    auto c = conn;
    c->resolver.async_resolve(addr.host, std::to_string(addr.port),
                              [this, c](boost::system::error_code ec, tcp::resolver::results_type eps) {
                                if (c != conn) return;
                                if (ec) return Fail(Error::Unavailable("redis resolve " + addr.Describe() + ": " + ec.message()));
                                net::async_connect(c->sock, eps, [this, c](boost::system::error_code ec, const tcp::endpoint&) {
                                  if (c != conn) return;
                                  if (ec)
                                    return Fail(Error::Unavailable("redis connect " + addr.Describe() + ": " + ec.message()));
                                  boost::system::error_code ignored;
                                  c->sock.set_option(tcp::no_delay(true), ignored);
                                  ready = true;
                                  Read(c);
                                  Flush();
                                });
                              });
  }

  // One write of everything queued; what is queued meanwhile leaves in the next one.
  void Flush() {
    if (!conn || !ready || writing || wbuf.empty()) return;
    writing = true;
    auto out = std::make_shared<std::string>(std::move(wbuf));
    wbuf.clear();
    writes.fetch_add(1);
    auto c = conn;
    net::async_write(c->sock, net::buffer(*out), [this, c, out](boost::system::error_code ec, size_t) {
      if (c != conn) return;
      writing = false;
      if (ec) return Fail(Error::Unavailable("redis write " + addr.Describe() + ": " + ec.message()));
      Flush();
    });
  }

  void Read(const std::shared_ptr<Conn>& c) {
    c->sock.async_read_some(net::buffer(c->buf), [this, c](boost::system::error_code ec, size_t n) {
      if (c != conn) return;
      if (ec) return Fail(Error::Unavailable("redis read " + addr.Describe() + ": " + ec.message()));
      if (redisReaderFeed(c->reader, c->buf.data(), n) != REDIS_OK)
        return Fail(Error::Unavailable("redis: reply buffer: " + std::string(c->reader->errstr)));
      for (;;) {
        void* raw = nullptr;
        if (redisReaderGetReply(c->reader, &raw) != REDIS_OK)
          return Fail(Error::Unavailable("redis protocol error: " + std::string(c->reader->errstr)));
        if (raw == nullptr) break;
        RedisReply reply = Convert(static_cast<redisReply*>(raw));
        freeReplyObject(raw);
        if (groups.empty()) return Fail(Error::Unavailable("redis: a reply nobody asked for"));
        Group& g = groups.front();
        g.replies.push_back(std::move(reply));
        if (g.replies.size() == g.n) {
          Group done = std::move(g);
          groups.pop_front();
          if (!done.internal) outstanding.fetch_sub(done.n);
          done.done(std::move(done.replies));
          if (c != conn) return;  // the handshake's verdict failed the connection
        }
      }
      Read(c);
    });
  }

  // The deadline of the oldest group. Deadlines grow in FIFO order (submission time + one timeout), so the
  // front is always the first to be overdue, and the timer is never set later than the front's deadline.
  void Arm() {
    if (armed || groups.empty()) return;
    armed = true;
    timer.expires_at(groups.front().deadline);
    timer.async_wait([this](boost::system::error_code) {
      armed = false;
      if (shut) return;
      if (!groups.empty() && groups.front().deadline <= SteadyClock::now())
        Fail(Error::Unavailable("redis " + addr.Describe() + ": no reply within " + std::to_string(opts.timeout.count()) +
                                " ms"));
      Arm();
    });
  }

  // Fails the connection: every outstanding group gets `e`, the socket closes, the next command reconnects.
  void Fail(const Error& e) {
    if (!conn) return;
    failures.fetch_add(1);
    boost::system::error_code ignored;
    conn->resolver.cancel();
    conn->sock.close(ignored);
    conn.reset();
    ready = false;
    writing = false;
    wbuf.clear();
    std::deque<Group> failed;
    failed.swap(groups);
    for (Group& g : failed) {
      if (!g.internal) outstanding.fetch_sub(g.n);
      g.done(e);
    }
  }

  void Shutdown() {
    shut = true;
    Fail(Error::Unavailable("redis client is shutting down"));
    timer.cancel();
  }

  const RedisAddress addr;
  const AsyncRedisOptions opts;
  net::io_context io;
  net::executor_work_guard<net::io_context::executor_type> guard;
  std::thread thread;

  std::mutex mu;
  bool closed = false;  // protected by mu: Run refuses new groups

  std::atomic<size_t> outstanding{0};  // commands submitted and not yet answered (any thread)
  std::atomic<uint64_t> commands{0}, writes{0}, connects{0}, failures{0};

  // I/O thread only.
  net::steady_timer timer;
  bool armed = false;
  bool shut = false;
  bool ready = false;    // conn is connected (the handshake may still be on the wire)
  bool writing = false;  // an async_write is in flight on conn
  std::shared_ptr<Conn> conn;
  std::string wbuf;  // encoded commands waiting for the next write
  std::deque<Group> groups;  // written or queued, answered in this order
};

AsyncRedis::AsyncRedis(RedisAddress addr, AsyncRedisOptions options)
    : addr_(std::move(addr)), impl_(std::make_unique<Impl>(addr_, options)) {}

AsyncRedis::~AsyncRedis() = default;

void AsyncRedis::Run(std::vector<Command> commands, Done done) {
  const size_t n = commands.size();
  if (n == 0) return done(std::vector<RedisReply>{});
  if (impl_->outstanding.fetch_add(n) + n > impl_->opts.max_outstanding) {
    impl_->outstanding.fetch_sub(n);
    return done(Error::Unavailable("redis: " + std::to_string(impl_->opts.max_outstanding) +
                                   " commands already outstanding"));
  }
  std::string wire;
  for (const auto& c : commands) wire += Encode(c);
  impl_->Submit(std::move(wire), n, std::move(done));
}

AsyncRedis::Stats AsyncRedis::stats() const {
  return {impl_->commands.load(), impl_->writes.load(), impl_->connects.load(), impl_->failures.load()};
}

}  // namespace paypath::store
