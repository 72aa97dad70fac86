// The HTTP server's limits, against a real `paypath api` child process (so the CLI wiring and the
// process's own file-descriptor limit are part of what is tested) and real PostgreSQL:
//   - thousands of idle connections neither peg the server's CPU nor starve a new health check;
//   - connections over --max-connections get a 503 problem+json with Retry-After, and are counted;
//   - an accept error (EMFILE: the process is out of descriptors) backs off instead of spinning;
//   - an idle keep-alive connection is closed after --idle-timeout-ms, a slow request in progress is not;
//   - with --ops-listen, /metrics, /healthz and /readyz live on the ops port only, which keeps answering
//     while the public port is full;
//   - every configured API key authenticates and near-misses are refused.
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fstream>
#include <iostream>
#include <memory>
#include <regex>
#include <sstream>
#include <thread>

#include "testing.h"

namespace paypath {
namespace {

using testing::BuildRequest;
using testing::RawHttp;
using testing::RawResponse;
using namespace std::chrono_literals;

std::string* g_db_url = nullptr;
// How many idle connections the flood test opens: 5,000, unless the machine's hard RLIMIT_NOFILE cannot
// hold them (this process needs one descriptor per client socket, the server child one per connection
// plus its reserve of 512); then as many as it allows, said in the output.
int g_flood = 5000;

// A `paypath api` child on a kernel-picked port; its JSON log goes to a file we read the ports from.
class ApiProcess {
 public:
  // soft_nofile > 0 runs the child under that soft RLIMIT_NOFILE (the hard limit is inherited), as a
  // service manager would (systemd's default soft limit is 1024); limit_hard_too lowers the hard limit too.
  ApiProcess(std::map<std::string, std::string> env, int soft_nofile = 0, bool limit_hard_too = false) {
    static int seq = 0;
    log_ = "/tmp/pp-http-limits-" + std::to_string(getpid()) + "-" + std::to_string(seq++) + ".log";
    std::remove(log_.c_str());
    env.emplace("PAYPATH_PG_URL", *g_db_url);
    env.emplace("PAYPATH_FAILPOINTS", "");
    std::vector<std::string> argv;
    if (soft_nofile > 0) {
      std::string ulimit = std::string(limit_hard_too ? "ulimit -n " : "ulimit -Sn ") + std::to_string(soft_nofile);
      argv = {"/bin/bash", "-c", ulimit + " && exec \"$0\" \"$@\"", testing::PaypathBinary()};
    } else {
      argv = {testing::PaypathBinary()};
    }
    for (const char* a : {"api", "--listen", "127.0.0.1:0", "--no-migrate", "--threads", "4"}) argv.push_back(a);
    child_ = std::make_unique<testing::Child>(argv, env, log_);
    bool up = testing::WaitUntil([&] { return (port_ = LoggedPort("api_listening")) != 0 || !child_->running(); },
                                 20s);
    EXPECT_TRUE(up && port_ != 0) << "api did not start; log:\n" << Log();
  }
  ~ApiProcess() {
    child_->Kill(SIGKILL);
    child_->Wait(5s);
    if (!::testing::Test::HasFailure()) std::remove(log_.c_str());
  }

  uint16_t port() const { return port_; }
  int pid() const { return child_->pid(); }
  std::string Log() const {
    std::ifstream f(log_);
    std::stringstream s;
    s << f.rdbuf();
    return s.str();
  }
  // The "port" of the first log line with this msg, 0 if none yet.
  uint16_t LoggedPort(const std::string& msg) const {
    std::istringstream in(Log());
    std::string line;
    std::regex port_re("\"port\":([0-9]+)");
    while (std::getline(in, line)) {
      if (line.find("\"msg\":\"" + msg + "\"") == std::string::npos) continue;
      std::smatch m;
      if (std::regex_search(line, m, port_re)) return static_cast<uint16_t>(std::stoi(m[1]));
    }
    return 0;
  }
  // Waits for the ops listener's log line; 0 if it never came.
  uint16_t OpsPort() const {
    uint16_t p = 0;
    testing::WaitUntil([&] { return (p = LoggedPort("ops_listening")) != 0; }, 5s);
    return p;
  }
  // utime + stime of the child, in seconds (/proc/PID/stat fields 14 and 15).
  double CpuSeconds() const {
    std::ifstream f("/proc/" + std::to_string(pid()) + "/stat");
    std::string stat((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    std::istringstream rest(stat.substr(stat.rfind(')') + 2));  // after "pid (comm) "
    std::string field;
    double ticks = 0;
    for (int i = 3; i <= 15 && rest >> field; ++i)
      if (i >= 14) ticks += std::stod(field);
    return ticks / static_cast<double>(sysconf(_SC_CLK_TCK));
  }
  // Resident memory of the child, KiB (/proc/PID/status VmRSS).
  int64_t RssKiB() const {
    std::ifstream f("/proc/" + std::to_string(pid()) + "/status");
    std::string line;
    while (std::getline(f, line))
      if (line.rfind("VmRSS:", 0) == 0) return std::stoll(line.substr(6));
    return -1;
  }
  // CPU seconds the child burns over one second of wall time with nothing asked of it. A server whose
  // accept loop spins shows ~1 (one core); an idle one shows ~0.
  double CpuOverOneSecond() const {
    double before = CpuSeconds();
    // A measurement window, not synchronization: the quantity measured is "CPU per wall second".
    std::this_thread::sleep_for(1s);
    return CpuSeconds() - before;
  }

 private:
  std::string log_;
  std::unique_ptr<testing::Child> child_;
  uint16_t port_ = 0;
};

// Raises this process's soft RLIMIT_NOFILE to `want` (or the hard limit, if lower); returns the result.
rlim_t RaiseNofile(rlim_t want) {
  rlimit rl{};
  getrlimit(RLIMIT_NOFILE, &rl);
  if (rl.rlim_cur < want) {
    rl.rlim_cur = std::min(want, rl.rlim_max);
    setrlimit(RLIMIT_NOFILE, &rl);
    getrlimit(RLIMIT_NOFILE, &rl);
  }
  return rl.rlim_cur;
}

// Opens up to n TCP connections to 127.0.0.1:port that send nothing. Connects are non-blocking and waited
// for together (up to `deadline`); returns the sockets whose connect completed (the others are closed).
std::vector<int> OpenIdle(uint16_t port, int n, std::chrono::milliseconds deadline = 15s) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::vector<int> pending, done;
  for (int i = 0; i < n; ++i) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) break;
    int rc = connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    if (rc == 0) done.push_back(fd);
    else if (errno == EINPROGRESS) pending.push_back(fd);
    else close(fd);
  }
  auto end = std::chrono::steady_clock::now() + deadline;
  while (!pending.empty() && std::chrono::steady_clock::now() < end) {
    std::vector<pollfd> p;
    for (int fd : pending) p.push_back({fd, POLLOUT, 0});
    if (poll(p.data(), p.size(), 100) <= 0) continue;
    std::vector<int> still;
    for (const auto& q : p) {
      if (q.revents == 0) {
        still.push_back(q.fd);
        continue;
      }
      int err = 0;
      socklen_t len = sizeof err;
      getsockopt(q.fd, SOL_SOCKET, SO_ERROR, &err, &len);
      if (err == 0) done.push_back(q.fd);
      else close(q.fd);
    }
    pending.swap(still);
  }
  for (int fd : pending) close(fd);
  return done;
}

void CloseAll(std::vector<int>& fds) {
  for (int fd : fds) close(fd);
  fds.clear();
}

// One blocking client connection for keep-alive exchanges.
class Conn {
 public:
  explicit Conn(uint16_t port) {
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ok_ = connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  }
  ~Conn() { close(fd_); }
  bool ok() const { return ok_; }
  bool Send(const std::string& s) { return send(fd_, s.data(), s.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(s.size()); }
  // Reads one Content-Length framed response; returns its status line's code, 0 on close/timeout.
  int ReadStatus(std::chrono::milliseconds timeout = 5s) {
    auto end = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      size_t he = buf_.find("\r\n\r\n");
      if (he != std::string::npos) {
        std::smatch m;
        std::string head = buf_.substr(0, he);
        size_t cl = 0;
        if (std::regex_search(head, m, std::regex("[Cc]ontent-[Ll]ength: *([0-9]+)"))) cl = std::stoul(m[1]);
        if (buf_.size() >= he + 4 + cl) {
          int status = std::atoi(buf_.c_str() + 9);
          buf_.erase(0, he + 4 + cl);
          return status;
        }
      }
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(end - std::chrono::steady_clock::now());
      if (left.count() <= 0) return 0;
      pollfd p{fd_, POLLIN, 0};
      if (poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
      char b[4096];
      ssize_t n = recv(fd_, b, sizeof b, 0);
      if (n <= 0) return 0;
      buf_.append(b, static_cast<size_t>(n));
    }
  }
  // True once the server closed the connection (EOF or reset) within `timeout`.
  bool WaitClosed(std::chrono::milliseconds timeout) {
    auto end = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < end) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(end - std::chrono::steady_clock::now());
      pollfd p{fd_, POLLIN, 0};
      if (poll(&p, 1, static_cast<int>(std::max<int64_t>(1, left.count()))) <= 0) continue;
      char b[4096];
      ssize_t n = recv(fd_, b, sizeof b, 0);
      if (n <= 0) return true;
    }
    return false;
  }

 private:
  int fd_ = -1;
  bool ok_ = false;
  std::string buf_;
};

std::string KeepAliveGet(const std::string& path) {
  return "GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
}

// The value of one sample in Prometheus text, -1 if absent.
double Sample(const std::string& text, const std::string& series) {
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line))
    if (line.rfind(series + " ", 0) == 0) return std::stod(line.substr(series.size() + 1));
  return -1;
}

class HttpLimitsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    g_db_url = new std::string(testing::FreshDatabase("pp_http_limits_test"));
    // Room for the client sockets in this process (the servers under test are child processes).
    const rlim_t limit = RaiseNofile(16384);
    g_flood = static_cast<int>(std::min<rlim_t>(5000, limit > 1200 ? limit - 1200 : 0));
    if (g_flood < 5000)
      std::cout << "RLIMIT_NOFILE hard limit " << limit << ": the flood test opens " << g_flood
                << " connections instead of 5000\n";
    ASSERT_GE(g_flood, 1000) << "the hard RLIMIT_NOFILE of this machine (" << limit << ") is too low";
  }
  const std::map<std::string, std::string> kKeys{{"PAYPATH_API_KEYS", "sk_test_limits:tenant_a"}};
};

TEST_F(HttpLimitsTest, FiveThousandIdleConnectionsNeitherPegTheCpuNorStarveANewHealthCheck) {
  // The child starts with systemd's default soft limit of 1024 descriptors, far fewer than the flood.
  auto env = kKeys;
  env["PAYPATH_MAX_CONNECTIONS"] = std::to_string(g_flood + 100);
  ApiProcess api(env, /*soft_nofile=*/1024);
  ASSERT_NE(api.port(), 0);
  const int64_t rss_before = api.RssKiB();
  std::vector<int> idle = OpenIdle(api.port(), g_flood);
  ASSERT_GE(idle.size(), static_cast<size_t>(g_flood)) << "the kernel completed only " << idle.size() << " connects";

  auto start = std::chrono::steady_clock::now();
  RawResponse health = RawHttp(api.port(), BuildRequest("GET", "/healthz", {}), 1s);
  auto took = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(health.status, 200) << "a new /healthz got no answer within 1 s behind " << idle.size() << " idle connections";
  EXPECT_LT(took, 1s);
  double cpu = api.CpuOverOneSecond();
  EXPECT_LT(cpu, 0.3) << "the server burned " << cpu << " s of CPU in one idle second (a spinning accept loop)";

  RawResponse m = RawHttp(api.port(), BuildRequest("GET", "/metrics", {}), 2s);
  EXPECT_GE(Sample(m.body, "paypath_http_connections_open{listener=\"api\"}"), g_flood) << m.body.substr(0, 300);
  // Figures for ServerOptions::max_connections' comment (informational, not asserted).
  std::cout << "healthz behind " << idle.size() << " idle connections: "
            << std::chrono::duration_cast<std::chrono::microseconds>(took).count() << " us; server CPU " << cpu
            << " s/s; RSS +" << (api.RssKiB() - rss_before) << " KiB for " << idle.size() << " connections ("
            << (api.RssKiB() - rss_before) * 1024 / static_cast<int64_t>(idle.size()) << " bytes each)\n";
  CloseAll(idle);
}

TEST_F(HttpLimitsTest, ConnectionsOverTheLimitGet503WithRetryAfterAndAreCounted) {
  auto env = kKeys;
  env["PAYPATH_MAX_CONNECTIONS"] = "50";
  ApiProcess api(env);
  ASSERT_NE(api.port(), 0);
  std::vector<int> idle = OpenIdle(api.port(), 50);
  ASSERT_EQ(idle.size(), 50u);
  // The server counts a connection as open once it accepted it: wait until it has all 50.
  // (Until then the extra requests below could take a free slot.) We cannot ask it over HTTP without
  // taking a slot, so the 51st..70th requests are sent once a probe is refused.
  ASSERT_TRUE(testing::WaitUntil([&] { return RawHttp(api.port(), BuildRequest("GET", "/healthz", {}), 2s).status == 503; },
                                 5s))
      << "the 51st connection was served although 50 were open";
  for (int i = 0; i < 20; ++i) {
    RawResponse r = RawHttp(api.port(), BuildRequest("GET", "/healthz", {}), 2s);
    EXPECT_EQ(r.status, 503);
    EXPECT_EQ(r.headers["content-type"], "application/problem+json");
    EXPECT_EQ(r.headers["retry-after"], "1");
    EXPECT_EQ(r.headers["connection"], "close");
    EXPECT_NE(r.body.find("/problems/too-many-connections"), std::string::npos) << r.body;
  }
  CloseAll(idle);
  RawResponse m;
  ASSERT_TRUE(testing::WaitUntil(
      [&] { return (m = RawHttp(api.port(), BuildRequest("GET", "/metrics", {}), 2s)).status == 200; }, 5s));
  EXPECT_GE(Sample(m.body, "paypath_http_connections_rejected_total{listener=\"api\",reason=\"max_connections\"}"), 21);
  EXPECT_EQ(Sample(m.body, "paypath_http_max_connections{listener=\"api\"}"), 50);
}

TEST_F(HttpLimitsTest, AcceptErrorsBackOffInsteadOfSpinning) {
  // 256 descriptors hard, but room for 1,000 connections configured: accept() fails with EMFILE.
  auto env = kKeys;
  env["PAYPATH_MAX_CONNECTIONS"] = "1000";
  ApiProcess api(env, /*soft_nofile=*/256, /*limit_hard_too=*/true);
  ASSERT_NE(api.port(), 0);
  std::vector<int> idle = OpenIdle(api.port(), 600);
  ASSERT_GE(idle.size(), 400u);
  double cpu = api.CpuOverOneSecond();
  EXPECT_LT(cpu, 0.3) << "out of descriptors, the server burned " << cpu << " s of CPU in one second";
  // A client beyond the descriptor limit is answered (refused) at once rather than left in the backlog.
  auto start = std::chrono::steady_clock::now();
  RawResponse refused = RawHttp(api.port(), BuildRequest("GET", "/healthz", {}), 3s);
  EXPECT_FALSE(refused.timed_out) << "a client beyond the descriptor limit hung for 3 s";
  EXPECT_LT(std::chrono::steady_clock::now() - start, 2s);
  std::cout << "out of descriptors: server CPU " << cpu << " s/s; a client beyond the limit got status "
            << refused.status << " (0: closed without a response)\n";
  CloseAll(idle);
  // Once descriptors are free again the server serves within its backoff bound (1 s) plus slack.
  ASSERT_TRUE(testing::WaitUntil(
      [&] { return RawHttp(api.port(), BuildRequest("GET", "/healthz", {}), 1s).status == 200; }, 3s));
  RawResponse m = RawHttp(api.port(), BuildRequest("GET", "/metrics", {}), 2s);
  EXPECT_GE(Sample(m.body, "paypath_http_accept_errors_total{listener=\"api\",error=\"EMFILE\"}"), 1) << m.body.substr(0, 300);
  EXPECT_NE(api.Log().find("fd_limit_below_max_connections"), std::string::npos)
      << "no start-up warning that 1,000 connections do not fit in 256 descriptors";
}

TEST_F(HttpLimitsTest, IdleKeepAliveConnectionIsClosedAfterTheIdleTimeoutButASlowRequestIsNot) {
  auto env = kKeys;
  env["PAYPATH_IDLE_TIMEOUT_MS"] = "300";
  ApiProcess api(env);  // read timeout: the default 10 s
  ASSERT_NE(api.port(), 0);
  {
    Conn c(api.port());
    ASSERT_TRUE(c.ok());
    ASSERT_TRUE(c.Send(KeepAliveGet("/healthz")));
    ASSERT_EQ(c.ReadStatus(), 200);
    auto start = std::chrono::steady_clock::now();
    EXPECT_TRUE(c.WaitClosed(3s)) << "an idle keep-alive connection was still open 3 s after its response";
    EXPECT_GE(std::chrono::steady_clock::now() - start, 250ms);
  }
  {
    // A request whose header takes longer than the idle timeout to arrive is in progress, not idle: the
    // read timeout (10 s) applies to it.
    Conn c(api.port());
    ASSERT_TRUE(c.ok());
    ASSERT_TRUE(c.Send(KeepAliveGet("/healthz")));
    ASSERT_EQ(c.ReadStatus(), 200);
    ASSERT_TRUE(c.Send("GET /healthz HTTP/1.1\r\n"));
    std::this_thread::sleep_for(600ms);  // pacing a slow client (the behaviour under test), not a sync
    ASSERT_TRUE(c.Send("Host: 127.0.0.1\r\n\r\n"));
    EXPECT_EQ(c.ReadStatus(), 200);
  }
}

TEST_F(HttpLimitsTest, OpsListenerServesMetricsHealthAndReadinessAndTheApiPortDoesNot) {
  auto env = kKeys;
  env["PAYPATH_OPS_LISTEN"] = "127.0.0.1:0";
  ApiProcess api(env);
  ASSERT_NE(api.port(), 0);
  for (const char* path : {"/metrics", "/healthz", "/readyz"})
    EXPECT_EQ(RawHttp(api.port(), BuildRequest("GET", path, {})).status, 404) << path << " on the API port";
  uint16_t ops = api.OpsPort();
  ASSERT_NE(ops, 0) << "no ops_listening log line; log:\n" << api.Log();
  RawResponse m = RawHttp(ops, BuildRequest("GET", "/metrics", {}));
  EXPECT_EQ(m.status, 200);
  EXPECT_NE(m.body.find("paypath_http_connections_open{listener=\"api\"}"), std::string::npos);
  EXPECT_NE(m.body.find("paypath_http_connections_open{listener=\"ops\"}"), std::string::npos);
  EXPECT_NE(m.body.find("paypath_idempotency_requests_total"), std::string::npos);
  EXPECT_EQ(RawHttp(ops, BuildRequest("GET", "/healthz", {})).status, 200);
  EXPECT_EQ(RawHttp(ops, BuildRequest("GET", "/readyz", {})).status, 200);
  // The ops port serves nothing else.
  EXPECT_EQ(RawHttp(ops, BuildRequest("POST", "/v1/charges", {{"Authorization", "Bearer sk_test_limits"}}, "{}")).status,
            404);
  // The API still works on its own port.
  EXPECT_EQ(RawHttp(api.port(), BuildRequest("GET", "/v1/charges/ch_nope", {{"Authorization", "Bearer sk_test_limits"}}))
                .status,
            404);
}

TEST_F(HttpLimitsTest, OpsPortKeepsAnsweringWhileThePublicPortIsFull) {
  auto env = kKeys;
  env["PAYPATH_OPS_LISTEN"] = "127.0.0.1:0";
  env["PAYPATH_MAX_CONNECTIONS"] = "200";
  ApiProcess api(env);
  ASSERT_NE(api.port(), 0);
  uint16_t ops = api.OpsPort();
  ASSERT_NE(ops, 0);
  std::vector<int> idle = OpenIdle(api.port(), 300);  // 200 held, 100 refused
  ASSERT_EQ(idle.size(), 300u);
  RawResponse m;
  ASSERT_TRUE(testing::WaitUntil(
      [&] {
        m = RawHttp(ops, BuildRequest("GET", "/metrics", {}), 1s);
        return Sample(m.body, "paypath_http_connections_rejected_total{listener=\"api\",reason=\"max_connections\"}") >= 100;
      },
      5s))
      << m.body.substr(0, 500);
  EXPECT_EQ(Sample(m.body, "paypath_http_connections_open{listener=\"api\"}"), 200);
  auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(RawHttp(ops, BuildRequest("GET", "/healthz", {}), 1s).status, 200);
  EXPECT_EQ(RawHttp(ops, BuildRequest("GET", "/readyz", {}), 1s).status, 200);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 1s);
  EXPECT_EQ(RawHttp(api.port(), BuildRequest("GET", "/v1/charges/ch_x", {}), 1s).status, 503);
  CloseAll(idle);
}

TEST_F(HttpLimitsTest, EveryConfiguredKeyAuthenticatesAndNearMissesAreRefused) {
  // Keys that share prefixes and suffixes with each other, of different lengths.
  const std::vector<std::pair<std::string, std::string>> keys = {
      {"sk_live_0123456789abcdef", "t1"}, {"sk_live_0123456789abcdeg", "t2"}, {"sk_live_0123456789abcde", "t3"},
      {"x", "t4"}, {std::string(200, 'k'), "t5"}};
  std::string spec;
  for (const auto& [k, t] : keys) spec += (spec.empty() ? "" : ",") + k + ":" + t;
  ApiProcess api({{"PAYPATH_API_KEYS", spec}});
  ASSERT_NE(api.port(), 0);
  auto status = [&](const std::string& authorization) {
    std::vector<std::pair<std::string, std::string>> h;
    if (!authorization.empty()) h.emplace_back("Authorization", authorization);
    return RawHttp(api.port(), BuildRequest("GET", "/v1/charges/ch_missing", h)).status;
  };
  for (const auto& [k, t] : keys) {
    EXPECT_EQ(status("Bearer " + k), 404) << "key of " << t << " not accepted";  // authenticated, no such charge
    EXPECT_EQ(status("bearer " + k), 404) << "the scheme is case-insensitive";
  }
  const std::string k = keys[0].first;
  for (const std::string& miss :
       {k.substr(0, k.size() - 1) + "X", k + "0", "k" + k, k.substr(1), std::string("sk_live_"), std::string(199, 'k'),
        std::string(201, 'k'), std::string("X"), std::string("sk_live_0123456789ABCDEF"), std::string(" ")}) {
    EXPECT_EQ(status("Bearer " + miss), 401) << "near-miss '" << miss << "' accepted";
  }
  EXPECT_EQ(status(""), 401);
  EXPECT_EQ(status("Bearer"), 401);
  EXPECT_EQ(status("Basic " + k), 401);
  EXPECT_EQ(status(k), 401);
}

}  // namespace
}  // namespace paypath
