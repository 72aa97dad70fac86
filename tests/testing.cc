#include "testing.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <sstream>
#include <thread>

#include "ledger/schema.h"
#include "store/pg.h"
#include "store/schema.h"

namespace paypath::testing {
namespace {

std::string Require(const char* name) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') {
    std::cerr << name << " is not set: run the tests through `make test` (it starts the stack)\n";
    std::abort();
  }
  return v;
}

}  // namespace

std::string PgUrl() { return Require("PAYPATH_PG_URL"); }
std::string RedisUrl() { return Require("PAYPATH_REDIS_URL"); }
std::string RelayAmqpUrl() { return Require("PAYPATH_RELAY_AMQP_URL"); }
std::string ConsumerAmqpUrl() { return Require("PAYPATH_CONSUMER_AMQP_URL"); }
std::string OperatorAmqpUrl() { return Require("PAYPATH_OPERATOR_AMQP_URL"); }
std::string AdminAmqpUrl() { return Require("PAYPATH_ADMIN_AMQP_URL"); }
std::string RedisAdminUrl() { return Require("PAYPATH_REDIS_ADMIN_URL"); }
std::string StackScript() { return Require("PAYPATH_STACK"); }
std::string PaypathBinary() { return PAYPATH_BIN; }

std::string FreshDatabase(const std::string& name) {
  std::string admin = PgUrl();
  auto conn = store::PgConn::Connect(admin, "paypath-test");
  if (!conn.ok()) {
    std::cerr << "cannot reach PostgreSQL at PAYPATH_PG_URL: " << conn.error().ToString() << "\n";
    std::abort();
  }
  auto& c = *conn.value();
  (void)c.ExecSimple("DROP DATABASE IF EXISTS " + name + " WITH (FORCE)");
  auto created = c.ExecSimple("CREATE DATABASE " + name);
  if (!created.ok()) {
    std::cerr << "CREATE DATABASE " << name << ": " << created.error().ToString() << "\n";
    std::abort();
  }
  // Replace the database name: the URL's path is the part after the last '/'.
  std::string url = admin.substr(0, admin.rfind('/') + 1) + name;
  auto db = store::PgConn::Connect(url, "paypath-test");
  if (!db.ok() || !store::Migrate(*db.value()).ok()) {
    std::cerr << "cannot migrate " << name << "\n";
    std::abort();
  }
  return url;
}

std::string FreshLedgerDatabase(const std::string& name) {
  std::string admin = PgUrl();
  auto conn = store::PgConn::Connect(admin, "paypath-test");
  if (!conn.ok()) {
    std::cerr << "cannot reach PostgreSQL at PAYPATH_PG_URL: " << conn.error().ToString() << "\n";
    std::abort();
  }
  (void)conn.value()->ExecSimple("DROP DATABASE IF EXISTS " + name + " WITH (FORCE)");
  auto created = conn.value()->ExecSimple("CREATE DATABASE " + name);
  if (!created.ok()) {
    std::cerr << "CREATE DATABASE " << name << ": " << created.error().ToString() << "\n";
    std::abort();
  }
  std::string url = admin.substr(0, admin.rfind('/') + 1) + name;
  Status migrated = ledger::MigrateDatabase(url);
  if (!migrated.ok()) {
    std::cerr << "cannot migrate ledger database " << name << ": " << migrated.error().ToString() << "\n";
    std::abort();
  }
  return url;
}

bool WaitUntil(const std::function<bool()>& cond, std::chrono::milliseconds deadline, std::chrono::milliseconds poll) {
  auto end = std::chrono::steady_clock::now() + deadline;
  for (;;) {
    if (cond()) return true;
    if (std::chrono::steady_clock::now() >= end) return cond();
    std::this_thread::sleep_for(poll);
  }
}

int RunShell(const std::string& cmd, std::string* output) {
  std::string full = cmd + " 2>&1";
  FILE* p = popen(full.c_str(), "r");
  if (!p) return -1;
  char buf[4096];
  std::string out;
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  int st = pclose(p);
  if (output) *output = out;
  return st;
}

Child::Child(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env,
             const std::string& log_path) {
  pid_ = fork();
  if (pid_ == 0) {
    for (const auto& [k, v] : env) setenv(k.c_str(), v.c_str(), 1);
    FILE* f = std::freopen(log_path.c_str(), "a", stderr);
    (void)f;
    if (log_path != "/dev/null") dup2(fileno(stderr), 1);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execv(args[0], args.data());
    _exit(127);
  }
}

Child::~Child() {
  if (pid_ > 0 && !reaped_) {
    ::kill(pid_, SIGKILL);
    waitpid(pid_, &status_, 0);
  }
}

bool Child::Wait(std::chrono::milliseconds deadline, int* status) {
  if (reaped_) {
    if (status) *status = status_;
    return true;
  }
  bool done = WaitUntil(
      [&] {
        int st = 0;
        if (waitpid(pid_, &st, WNOHANG) == pid_) {
          reaped_ = true;
          status_ = st;
          return true;
        }
        return false;
      },
      deadline, std::chrono::milliseconds(10));
  if (done && status) *status = status_;
  return done;
}

void Child::Kill(int sig) {
  if (!reaped_) ::kill(pid_, sig);
}

bool Child::running() {
  if (reaped_) return false;
  int st = 0;
  if (waitpid(pid_, &st, WNOHANG) == pid_) {
    reaped_ = true;
    status_ = st;
    return false;
  }
  return true;
}

std::string QueryScalar(const std::string& url, const std::string& sql) {
  auto conn = store::PgConn::Connect(url, "paypath-test");
  if (!conn.ok()) return "<unreachable>";
  auto r = conn.value()->ExecSimple(sql);
  if (!r.ok()) return "<error: " + r.error().ToString() + ">";
  if (r->rows() == 0) return "";
  return r->GetString(0, 0);
}

int TerminateSessions(const std::string& url, const std::string& application_name, std::chrono::milliseconds deadline) {
  std::string pids = QueryScalar(url, "SELECT string_agg(pid::text, ' ') FROM (SELECT pid, pg_terminate_backend(pid) "
                                      "FROM pg_stat_activity WHERE application_name = '" + application_name +
                                      "' AND pid <> pg_backend_pid()) t");
  auto exited = [](const std::string& pid) {
    std::ifstream stat("/proc/" + pid + "/stat");
    std::string line;
    if (!std::getline(stat, line)) return true;
    size_t paren = line.rfind(')');
    return paren != std::string::npos && paren + 2 < line.size() && line[paren + 2] == 'Z';
  };
  int n = 0;
  bool gone = WaitUntil(
      [&] {
        std::istringstream in(pids);
        std::string pid;
        n = 0;
        while (in >> pid) {
          if (!exited(pid)) return false;
          n++;
        }
        return true;
      },
      deadline);
  return gone ? n : -1;
}

}  // namespace paypath::testing

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

namespace paypath::testing {

std::string BuildRequest(const std::string& method, const std::string& target,
                         const std::vector<std::pair<std::string, std::string>>& headers, const std::string& body) {
  std::string r = method + " " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n";
  for (const auto& [k, v] : headers) r += k + ": " + v + "\r\n";
  if (!body.empty() || method == "POST") r += "Content-Length: " + std::to_string(body.size()) + "\r\n";
  r += "\r\n" + body;
  return r;
}

RawResponse RawHttp(uint16_t port, const std::string& raw, std::chrono::milliseconds timeout) {
  RawResponse out;
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    close(fd);
    return out;
  }
  size_t sent = 0;
  while (sent < raw.size()) {
    ssize_t n = send(fd, raw.data() + sent, raw.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) break;  // the server may close early (e.g. 413); read what it said
    sent += static_cast<size_t>(n);
  }
  std::string data;
  auto end = std::chrono::steady_clock::now() + timeout;
  size_t header_end = std::string::npos;
  size_t content_length = std::string::npos;
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(end - std::chrono::steady_clock::now()).count();
    if (left <= 0) {
      out.timed_out = true;
      break;
    }
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, static_cast<int>(left)) <= 0) continue;
    char buf[8192];
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    data.append(buf, static_cast<size_t>(n));
    if (header_end == std::string::npos) {
      header_end = data.find("\r\n\r\n");
      if (header_end != std::string::npos) {
        std::string head = data.substr(0, header_end);
        size_t pos = head.find("\r\n");
        std::string status_line = head.substr(0, pos);
        if (status_line.size() >= 12) out.status = std::atoi(status_line.c_str() + 9);
        while (pos != std::string::npos && pos < head.size()) {
          size_t next = head.find("\r\n", pos + 2);
          std::string line = head.substr(pos + 2, next == std::string::npos ? std::string::npos : next - pos - 2);
          size_t colon = line.find(':');
          if (colon != std::string::npos) {
            std::string name = line.substr(0, colon);
            for (auto& ch : name) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
            std::string value = line.substr(colon + 1);
            while (!value.empty() && value.front() == ' ') value.erase(0, 1);
            out.headers[name] = value;
            if (name == "content-length") content_length = std::stoul(value);
          }
          pos = next;
        }
      }
    }
    if (header_end != std::string::npos && content_length != std::string::npos &&
        data.size() >= header_end + 4 + content_length)
      break;
  }
  close(fd);
  if (header_end == std::string::npos) {
    out.status = 0;
    return out;
  }
  out.body = data.substr(header_end + 4);
  if (content_length != std::string::npos && out.body.size() < content_length) out.status = 0;  // truncated
  return out;
}

}  // namespace paypath::testing
