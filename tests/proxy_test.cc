// The fault proxy against a real upstream: a tiny HTTP server started inside the test (a thread per
// connection answering every request with a fixed 201 and counting what it saw). Clients are the real
// HttpTransport (a fresh connection per request) or a raw keep-alive socket.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <mutex>
#include <thread>
#include <vector>

#include "chaos/fault_proxy.h"
#include "client/http1.h"
#include "client/http_transport.h"
#include "client/socket_io.h"
#include "testing.h"

namespace paypath::chaos {
namespace {

using client::Exchange;
using std::chrono::milliseconds;
using std::chrono::seconds;

constexpr char kUpstreamBody[] = "{\"id\":\"ch_1\"}";

class TestUpstream {
 public:
  TestUpstream() {
    auto l = net::ListenTcp("127.0.0.1", 0);
    EXPECT_TRUE(l.ok());
    listener_ = std::move(l.value());
    port_ = net::LocalPort(listener_.get());
    accept_thread_ = std::thread([this] { AcceptLoop(); });
  }
  ~TestUpstream() {
    ::shutdown(listener_.get(), SHUT_RDWR);  // wakes accept() with an error
    accept_thread_.join();
    std::lock_guard lock(mu_);
    for (int fd : conn_fds_) ::shutdown(fd, SHUT_RDWR);
    for (auto& t : conn_threads_) t.join();
    for (int fd : conn_fds_) ::close(fd);
  }
  uint16_t port() const { return port_; }
  int requests() const { return requests_.load(); }
  int connections() const { return connections_.load(); }

 private:
  void AcceptLoop() {
    for (;;) {
      int c = ::accept(listener_.get(), nullptr, nullptr);
      if (c < 0) return;
      connections_++;
      std::lock_guard lock(mu_);
      conn_fds_.push_back(c);
      conn_threads_.emplace_back([this, c] { Serve(c); });
    }
  }
  void Serve(int fd) {
    std::string buf;
    Clock& clock = SystemClock::Instance();
    for (;;) {
      http1::Parsed req;
      if (http1::ReadMessage(fd, &buf, false, "", clock, clock.Now() + seconds(30), &req) !=
          http1::ReadStatus::kComplete)
        return;
      requests_++;  // counted before answering: once a client learns anything, the count is final
      std::string resp = "HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nContent-Length: " +
                         std::to_string(sizeof kUpstreamBody - 1) + "\r\n\r\n" + kUpstreamBody;
      if (net::WriteAll(fd, resp, clock, clock.Now() + seconds(30)) != net::IoStatus::kOk) return;
    }
    // The fd is closed by ~TestUpstream after its shutdown sweep, so its number is never reused meanwhile.
  }

  net::Fd listener_;
  uint16_t port_ = 0;
  std::atomic<int> requests_{0};
  std::atomic<int> connections_{0};
  std::thread accept_thread_;
  std::mutex mu_;
  std::vector<int> conn_fds_;              // protected by mu_
  std::vector<std::thread> conn_threads_;  // protected by mu_
};

class ProxyTest : public ::testing::Test {
 protected:
  std::unique_ptr<FaultProxy> StartProxy(FaultOptions faults, uint64_t seed = 1, uint16_t upstream_port = 0,
                                         metrics::Registry* registry = nullptr) {
    ProxyOptions o;
    o.upstream_port = upstream_port != 0 ? upstream_port : upstream_.port();
    o.faults = faults;
    randoms_.push_back(std::make_unique<SystemRandom>(seed));
    auto p = FaultProxy::Start(o, SystemClock::Instance(), *randoms_.back(), registry ? *registry : registry_);
    EXPECT_TRUE(p.ok()) << p.error().ToString();
    return std::move(p.value());
  }
  Exchange Post(uint16_t port) {
    client::HttpTransport t(client::HttpUrl{"127.0.0.1", port, ""}, SystemClock::Instance());
    client::HttpRequest r;
    r.target = "/v1/charges";
    r.headers = {{"Idempotency-Key", "k"}};
    r.body = "{\"amount\":1}";
    return t.RoundTrip(r, seconds(10));
  }
  double Metric(const std::string& name) { return metrics::ParseText(registry_.Render())[name]; }

  TestUpstream upstream_;
  metrics::Registry registry_;
  std::vector<std::unique_ptr<SystemRandom>> randoms_;
};

TEST_F(ProxyTest, WithEatProbabilityOneTheUpstreamSeesTheRequestButTheClientGetsNoResponse) {
  FaultOptions f;
  f.eat_response = 1;
  auto proxy = StartProxy(f);
  Exchange ex = Post(proxy->port());
  EXPECT_EQ(ex.kind, Exchange::Kind::kNoResponse) << ex.detail;
  EXPECT_EQ(upstream_.requests(), 1);
  EXPECT_EQ(proxy->counts().eaten, 1);
  EXPECT_EQ(Metric("paypath_proxy_responses_eaten_total"), 1);
  EXPECT_EQ(Metric("paypath_proxy_requests_total"), 1);
}

TEST_F(ProxyTest, EatingWithCloseEndsTheConnectionWithoutAnyResponseByte) {
  FaultOptions f;
  f.eat_response = 1;
  f.eat_with_reset = false;
  auto proxy = StartProxy(f);
  Exchange ex = Post(proxy->port());
  EXPECT_EQ(ex.kind, Exchange::Kind::kNoResponse);
  EXPECT_EQ(ex.detail, "connection closed before any response");
  EXPECT_EQ(upstream_.requests(), 1);
}

TEST_F(ProxyTest, WithZeroProbabilitiesEveryRequestPassesThroughUnchanged) {
  auto proxy = StartProxy(FaultOptions{});
  for (int i = 0; i < 20; ++i) {
    Exchange ex = Post(proxy->port());
    ASSERT_EQ(ex.kind, Exchange::Kind::kResponse) << ex.detail;
    EXPECT_EQ(ex.response.status, 201);
    EXPECT_EQ(ex.response.body, kUpstreamBody);
  }
  EXPECT_EQ(upstream_.requests(), 20);
  auto c = proxy->counts();
  EXPECT_EQ(c.requests, 20);
  EXPECT_EQ(c.eaten + c.resets_before + c.delayed + c.upstream_errors, 0);
}

TEST_F(ProxyTest, ResetBeforeForwardMeansTheUpstreamSeesNothing) {
  FaultOptions f;
  f.reset_before = 1;
  auto proxy = StartProxy(f);
  Exchange ex = Post(proxy->port());
  EXPECT_EQ(ex.kind, Exchange::Kind::kNoResponse) << ex.detail;
  EXPECT_EQ(upstream_.requests(), 0);
  EXPECT_EQ(upstream_.connections(), 0);
  EXPECT_EQ(Metric("paypath_proxy_resets_before_forward_total"), 1);
}

TEST_F(ProxyTest, AKeepAliveConnectionGetsOneDecisionPerRequest) {
  auto proxy = StartProxy(FaultOptions{});
  Clock& clock = SystemClock::Instance();
  auto conn = net::ConnectTcp("127.0.0.1", proxy->port(), clock, clock.Now() + seconds(5));
  ASSERT_TRUE(conn.ok());
  std::string buf;
  for (int i = 0; i < 3; ++i) {
    std::string req = "POST /v1/charges HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}";
    ASSERT_EQ(net::WriteAll(conn->get(), req, clock, clock.Now() + seconds(5)), net::IoStatus::kOk);
    http1::Parsed resp;
    ASSERT_EQ(http1::ReadMessage(conn->get(), &buf, true, "POST", clock, clock.Now() + seconds(5), &resp),
              http1::ReadStatus::kComplete);
    EXPECT_EQ(resp.head.status, 201);
  }
  EXPECT_EQ(proxy->counts().requests, 3);
  EXPECT_EQ(upstream_.requests(), 3);
}

TEST_F(ProxyTest, TheSameSeedRepeatsTheSameFaultsAndTheCountersMatchWhatClientsSaw) {
  FaultOptions f;
  f.eat_response = 0.5;
  auto run = [&](uint64_t seed) {
    metrics::Registry registry;  // per run: each proxy's counters start at zero
    auto proxy = StartProxy(f, seed, 0, &registry);
    std::string pattern;
    for (int i = 0; i < 40; ++i) pattern += Post(proxy->port()).kind == Exchange::Kind::kResponse ? 'R' : 'x';
    size_t lost = std::count(pattern.begin(), pattern.end(), 'x');
    EXPECT_EQ(proxy->counts().eaten, lost);
    EXPECT_EQ(proxy->counts().requests, 40);
    return pattern;
  };
  std::string first = run(7);
  EXPECT_EQ(run(7), first);
  EXPECT_NE(first.find('x'), std::string::npos) << first;
  EXPECT_NE(first.find('R'), std::string::npos) << first;
  EXPECT_NE(run(8), first);
  EXPECT_EQ(upstream_.requests(), 120);  // eaten responses were still produced upstream
}

TEST_F(ProxyTest, MixedFaultsAddUpToTheRequestsAndResetsNeverReachTheUpstream) {
  FaultOptions f;
  f.eat_response = 0.3;
  f.reset_before = 0.3;
  auto proxy = StartProxy(f, 99);
  int answered = 0;
  for (int i = 0; i < 100; ++i) answered += Post(proxy->port()).kind == Exchange::Kind::kResponse;
  auto c = proxy->counts();
  EXPECT_EQ(c.requests, 100);
  EXPECT_EQ(c.eaten + c.resets_before + answered, 100);
  EXPECT_EQ(upstream_.requests(), 100 - c.resets_before);
  EXPECT_GT(c.eaten, 0);
  EXPECT_GT(c.resets_before, 0);
}

TEST_F(ProxyTest, DelayAddsLatencyAndIsCounted) {
  FaultOptions f;
  f.delay_probability = 1;
  f.delay = milliseconds(200);
  auto proxy = StartProxy(f);
  auto start = std::chrono::steady_clock::now();
  Exchange ex = Post(proxy->port());
  EXPECT_EQ(ex.kind, Exchange::Kind::kResponse);
  EXPECT_GE(std::chrono::steady_clock::now() - start, milliseconds(200));
  EXPECT_EQ(proxy->counts().delayed, 1);
}

TEST_F(ProxyTest, AnUnreachableUpstreamAnswers502AndIsCounted) {
  uint16_t dead_port;
  {
    auto l = net::ListenTcp("127.0.0.1", 0);
    ASSERT_TRUE(l.ok());
    dead_port = net::LocalPort(l->get());
  }
  auto proxy = StartProxy(FaultOptions{}, 1, dead_port);
  Exchange ex = Post(proxy->port());
  ASSERT_EQ(ex.kind, Exchange::Kind::kResponse) << ex.detail;
  EXPECT_EQ(ex.response.status, 502);
  EXPECT_EQ(proxy->counts().upstream_errors, 1);
}

TEST_F(ProxyTest, StopEndsIdleKeepAliveConnections) {
  auto proxy = StartProxy(FaultOptions{});
  Clock& clock = SystemClock::Instance();
  auto conn = net::ConnectTcp("127.0.0.1", proxy->port(), clock, clock.Now() + seconds(5));
  ASSERT_TRUE(conn.ok());
  // The proxy has accepted once the first request is answered; then the connection sits idle.
  std::string req = "GET /x HTTP/1.1\r\nHost: x\r\n\r\n", buf;
  ASSERT_EQ(net::WriteAll(conn->get(), req, clock, clock.Now() + seconds(5)), net::IoStatus::kOk);
  http1::Parsed resp;
  ASSERT_EQ(http1::ReadMessage(conn->get(), &buf, true, "GET", clock, clock.Now() + seconds(5), &resp),
            http1::ReadStatus::kComplete);
  auto start = std::chrono::steady_clock::now();
  proxy->Stop();  // would block for the 60 s idle timeout if it did not wake the connection thread
  EXPECT_LT(std::chrono::steady_clock::now() - start, seconds(5));
  std::string rest;
  EXPECT_NE(net::ReadSome(conn->get(), &rest, 100, clock, clock.Now() + seconds(5)), net::IoStatus::kTimeout);
}

}  // namespace
}  // namespace paypath::chaos
