// Every connection paypath makes is bounded in time. Against "silent peers" (loopback listeners that
// never answer) and the real PostgreSQL of scripts/stack:
//   - libpq: a connect to a silent peer fails within connect_timeout; sessions carry TCP keepalives
//     (idle, interval, count) and TCP_USER_TIMEOUT, and set statement_timeout and
//     idle_in_transaction_session_timeout on the server;
//   - hiredis: connect (to a listener whose backlog is full, so the TCP handshake never completes) and a
//     command (to a listener that accepts and never answers) fail within their timeouts;
//   - the asynchronous Redis client: every outstanding group fails within its deadline against both kinds
//     of silent peer, and its destructor fails what is still queued;
//   - AMQP: Connection::Open fails within Settings::timeout against both kinds of silent peer.
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <functional>
#include <future>
#include <mutex>
#include <optional>
#include <thread>

#include "broker/amqp.h"
#include "store/pg.h"
#include "store/redis.h"
#include "store/redis_async.h"
#include "testing.h"

namespace paypath {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// A loopback listener that never says a word.
//   kAcceptsNeverAnswers: the kernel completes every TCP handshake (the backlog is large) and buffers what
//     the client sends; nobody ever reads or writes. A connect succeeds; the first read hangs.
//   kNeverAccepts: backlog 0 and already filled by one connection, so further SYNs are dropped and a
//     connect hangs in SYN_SENT (the client's connect timeout is what ends it).
class SilentPeer {
 public:
  enum class Mode { kAcceptsNeverAnswers, kNeverAccepts };
  explicit SilentPeer(Mode mode) {
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    EXPECT_EQ(listen(fd_, mode == Mode::kNeverAccepts ? 0 : 128), 0);
    socklen_t len = sizeof addr;
    getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    if (mode == Mode::kNeverAccepts) Fill();
  }
  ~SilentPeer() {
    for (int fd : fillers_) close(fd);
    close(fd_);
  }
  uint16_t port() const { return port_; }
  std::string Url(const std::string& scheme_and_userinfo, const std::string& path) const {
    return scheme_and_userinfo + "127.0.0.1:" + std::to_string(port_) + path;
  }

 private:
  // Connects until one connect does not complete within 300 ms: from then on the queue is full.
  void Fill() {
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port_);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    for (int i = 0; i < 16; ++i) {
      int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
      fillers_.push_back(fd);
      if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) continue;
      pollfd p{fd, POLLOUT, 0};
      if (poll(&p, 1, 300) == 0) return;  // this SYN was dropped: the queue is full
    }
    ADD_FAILURE() << "could not fill the accept queue of the silent peer";
  }

  int fd_ = -1;
  uint16_t port_ = 0;
  std::vector<int> fillers_;
};

// What a bounded call did: how long it took and whether it failed (with the error text).
struct Outcome {
  Clock::duration took{};
  bool failed = false;
  std::string error;
};

// Runs f (which returns "" on success, else the error text) on its own thread and waits at most `guard`
// for it, so a hang fails this test instead of blocking the suite. nullopt on a hang: the thread is then
// abandoned, which is safe because f captures only copies.
std::optional<Outcome> Timed(std::function<std::string()> f, std::chrono::milliseconds guard) {
  auto start = Clock::now();
  auto fut = std::make_shared<std::future<std::string>>(std::async(std::launch::async, std::move(f)));
  if (fut->wait_for(guard) != std::future_status::ready) {
    new std::shared_ptr<std::future<std::string>>(fut);  // leaked: std::async's future joins on destruction
    return std::nullopt;
  }
  std::string err = fut->get();
  return Outcome{Clock::now() - start, !err.empty(), err};
}

int SockOpt(int fd, int level, int name) {
  int v = -1;
  socklen_t len = sizeof v;
  if (getsockopt(fd, level, name, &v, &len) != 0) return -1;
  return v;
}

// ---------------------------------------------------------------- PostgreSQL

std::string PgConnectError(const std::string& url) {
  auto r = store::PgConn::Connect(url, "timeouts-test");
  if (r.ok()) return "";
  return r.error().ToString();
}

TEST(PostgresTimeouts, ConnectToASilentPeerFailsWithinTheConnectTimeout) {
  SilentPeer peer(SilentPeer::Mode::kAcceptsNeverAnswers);
  std::string url = peer.Url("postgresql://u@", "/db");
  auto out = Timed([url] { return PgConnectError(url); }, 10s);
  ASSERT_TRUE(out.has_value()) << "libpq connect to a silent peer still hanging after 10 s";
  EXPECT_TRUE(out->failed);
  EXPECT_EQ(out->error.rfind("unavailable: ", 0), 0u) << out->error;
  // connect_timeout is 2 s (libpq counts whole seconds, so its timer may end up to 1 s early).
  EXPECT_LT(out->took, 3500ms) << out->error;
}

TEST(PostgresTimeouts, SessionsCarryKeepalivesAndTcpUserTimeout) {
  auto c = store::PgConn::Connect(testing::PgUrl(), "timeouts-test");
  ASSERT_TRUE(c.ok()) << c.error().ToString();
  int fd = PQsocket(c.value()->raw());
  ASSERT_GE(fd, 0);
  EXPECT_EQ(SockOpt(fd, SOL_SOCKET, SO_KEEPALIVE), 1);
  EXPECT_EQ(SockOpt(fd, IPPROTO_TCP, TCP_KEEPIDLE), 5);
  EXPECT_EQ(SockOpt(fd, IPPROTO_TCP, TCP_KEEPINTVL), 2);
  EXPECT_EQ(SockOpt(fd, IPPROTO_TCP, TCP_KEEPCNT), 3);
  EXPECT_EQ(SockOpt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT), 10000);
}

TEST(PostgresTimeouts, SessionsSetStatementAndIdleInTransactionTimeouts) {
  auto c = store::PgConn::Connect(testing::PgUrl(), "timeouts-test");
  ASSERT_TRUE(c.ok()) << c.error().ToString();
  auto st = c.value()->ExecSimple("SHOW statement_timeout");
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->GetString(0, 0), "10s");
  auto it = c.value()->ExecSimple("SHOW idle_in_transaction_session_timeout");
  ASSERT_TRUE(it.ok());
  EXPECT_EQ(it->GetString(0, 0), "30s");
}

TEST(PostgresTimeouts, AnIdleTransactionIsEndedByTheServerAndItsLocksReleased) {
  std::string url = testing::FreshDatabase("pp_timeouts_test");
  auto setup = store::PgConn::Connect(url, "timeouts-test");
  ASSERT_TRUE(setup.ok());
  ASSERT_TRUE(setup.value()->ExecSimple("CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1)").ok());

  store::PgSessionOptions quick;
  quick.idle_in_transaction_timeout = 300ms;
  auto holder = store::PgConn::Connect(url, "timeouts-test-holder", quick);
  ASSERT_TRUE(holder.ok()) << holder.error().ToString();
  ASSERT_TRUE(holder.value()->Begin().ok());
  ASSERT_TRUE(holder.value()->ExecSimple("SELECT id FROM t WHERE id = 1 FOR UPDATE").ok());
  // The holder now goes quiet inside its transaction, as a frozen or partitioned client would.
  auto other = store::PgConn::Connect(url, "timeouts-test-other");
  ASSERT_TRUE(other.ok());
  EXPECT_FALSE(other.value()->ExecSimple("SELECT id FROM t WHERE id = 1 FOR UPDATE NOWAIT").ok())
      << "the row should be locked while the holder's transaction is open";
  auto start = Clock::now();
  EXPECT_TRUE(testing::WaitUntil(
      [&] { return other.value()->ExecSimple("SELECT id FROM t WHERE id = 1 FOR UPDATE NOWAIT").ok(); }, 5s))
      << "the idle transaction still holds its lock after 5 s";
  EXPECT_LT(Clock::now() - start, 3s);
  // The holder learns its session is gone at its next statement: retry later, never a silent success.
  auto after = holder.value()->ExecSimple("SELECT 1");
  ASSERT_FALSE(after.ok());
  EXPECT_EQ(after.error().code, ErrorCode::kUnavailable) << after.error().ToString();
}

TEST(PostgresTimeouts, StatementTimeoutIsAnOptionPerSession) {
  store::PgSessionOptions quick;
  quick.statement_timeout = 200ms;
  auto c = store::PgConn::Connect(testing::PgUrl(), "timeouts-test", quick);
  ASSERT_TRUE(c.ok()) << c.error().ToString();
  auto start = Clock::now();
  auto r = c.value()->ExecSimple("SELECT pg_sleep(5)");
  EXPECT_FALSE(r.ok());
  EXPECT_LT(Clock::now() - start, 2s);
  // The session survives a cancelled statement.
  EXPECT_TRUE(c.value()->ExecSimple("SELECT 1").ok());
}

// ---------------------------------------------------------------- Redis

TEST(RedisTimeouts, ConnectToAPeerThatNeverCompletesTheHandshakeFailsWithinTheTimeout) {
  SilentPeer peer(SilentPeer::Mode::kNeverAccepts);
  std::string url = peer.Url("redis://", "/0");
  auto out = Timed(
      [url]() -> std::string {
        auto addr = store::ParseRedisUrl(url);
        if (!addr.ok()) return "bad url";
        auto c = store::RedisConn::Connect(addr.value(), 300ms);
        return c.ok() ? "" : c.error().ToString();
      },
      10s);
  ASSERT_TRUE(out.has_value()) << "hiredis connect still hanging after 10 s";
  EXPECT_TRUE(out->failed);
  EXPECT_LT(out->took, 1300ms) << out->error;
}

TEST(RedisTimeouts, CommandToAPeerThatNeverAnswersFailsWithinTheTimeout) {
  SilentPeer peer(SilentPeer::Mode::kAcceptsNeverAnswers);
  std::string url = peer.Url("redis://", "/0");
  auto out = Timed(
      [url]() -> std::string {
        auto addr = store::ParseRedisUrl(url);
        if (!addr.ok()) return "bad url";
        // A connect that authenticates or selects a database already waits for an answer; otherwise the
        // first command does. Either must give up within the timeout.
        auto c = store::RedisConn::Connect(addr.value(), 300ms);
        if (!c.ok()) return c.error().ToString();
        auto p = c.value()->Command({"PING"});
        return p.ok() ? "" : p.error().ToString();
      },
      10s);
  ASSERT_TRUE(out.has_value()) << "a Redis command to a silent peer still hanging after 10 s";
  EXPECT_TRUE(out->failed);
  EXPECT_LT(out->took, 1300ms) << out->error;
}

// The asynchronous client (store/redis_async.h): every outstanding group of a connection fails together
// once the oldest is overdue, whether the peer accepted and never answers or never completes the handshake.
TEST(RedisTimeouts, EveryOutstandingAsyncCommandFailsWithinTheDeadlineOfAPeerThatNeverAnswers) {
  for (auto mode : {SilentPeer::Mode::kAcceptsNeverAnswers, SilentPeer::Mode::kNeverAccepts}) {
    SCOPED_TRACE(mode == SilentPeer::Mode::kNeverAccepts ? "never accepts" : "accepts, never answers");
    SilentPeer peer(mode);
    auto addr = store::ParseRedisUrl(peer.Url("redis://user:secret-pw@", "/3"));  // AUTH and SELECT pipelined
    ASSERT_TRUE(addr.ok());
    store::AsyncRedisOptions o;
    o.timeout = 300ms;
    auto redis = std::make_unique<store::AsyncRedis>(addr.value(), o);
    constexpr int kGroups = 100;
    std::mutex mu;
    std::vector<std::pair<Clock::duration, Error>> failed;  // protected by mu
    const auto start = Clock::now();
    for (int i = 0; i < kGroups; ++i)
      redis->Run({{"GET", "pp:k" + std::to_string(i)}, {"PING"}}, [&](Result<std::vector<store::RedisReply>> r) {
        std::lock_guard lock(mu);
        failed.emplace_back(Clock::now() - start, r.ok() ? Error::Internal("answered?") : r.error());
      });
    bool all = testing::WaitUntil([&] { std::lock_guard lock(mu); return failed.size() == kGroups; }, 10s);
    ASSERT_TRUE(all) << "async Redis callbacks still outstanding after 10 s";
    std::lock_guard lock(mu);
    for (const auto& [took, e] : failed) {
      EXPECT_EQ(e.code, ErrorCode::kUnavailable) << e.ToString();
      EXPECT_LT(took, 1300ms) << e.ToString();
      EXPECT_EQ(e.message.find("secret-pw"), std::string::npos) << e.message;
    }
    EXPECT_NE(failed.front().second.message.find("no reply within 300 ms"), std::string::npos)
        << failed.front().second.message;
    // The next command reconnects (and fails the same way); the destructor fails what is still queued.
    std::atomic<bool> late{false};
    redis->Run({{"PING"}}, [&](Result<std::vector<store::RedisReply>> r) { late = !r.ok(); });
    redis.reset();
    EXPECT_TRUE(late.load());
  }
}

// ---------------------------------------------------------------- AMQP (read-only check of src/broker)

TEST(AmqpTimeouts, OpenFailsWithinItsTimeoutAgainstBothKindsOfSilentPeer) {
  for (auto mode : {SilentPeer::Mode::kNeverAccepts, SilentPeer::Mode::kAcceptsNeverAnswers}) {
    SilentPeer peer(mode);
    amqp::Settings s;
    s.url = peer.Url("amqp://u:p@", "/paypath");
    s.timeout = 500ms;
    auto out = Timed(
        [s]() -> std::string {
          auto c = amqp::Connection::Open(s);
          return c.ok() ? "" : c.error().ToString();
        },
        10s);
    ASSERT_TRUE(out.has_value()) << "AMQP Open to a silent peer still hanging after 10 s (mode "
                                 << static_cast<int>(mode) << ")";
    EXPECT_TRUE(out->failed);
    EXPECT_LT(out->took, 1500ms) << "mode " << static_cast<int>(mode) << ": " << out->error;
  }
}

}  // namespace
}  // namespace paypath
