#include "chaos/supervisor.h"

#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <fcntl.h>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <string_view>
#include <vector>

#include "client/http_transport.h"
#include "common/log.h"
#include "common/metrics.h"

namespace paypath::chaos {

int HttpGet(Clock& clock, const std::string& hostport, const std::string& path, std::string* body) {
  auto url = client::ParseHttpUrl("http://" + hostport);
  if (!url.ok()) return 0;
  client::HttpTransport t(url.value(), clock);
  client::HttpRequest req;
  req.method = "GET";
  req.target = path;
  client::Exchange ex = t.RoundTrip(req, std::chrono::milliseconds(2000));
  if (ex.kind != client::Exchange::Kind::kResponse) return 0;
  if (body) *body = ex.response.body;
  return ex.response.status;
}

int FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  int port = ntohs(a.sin_port);
  close(fd);
  return port;
}

Supervisor::Supervisor(std::string binary, std::string log_dir, Clock& clock)
    : binary_(std::move(binary)), log_dir_(std::move(log_dir)), clock_(clock) {
  monitor_ = std::thread([this] {
    for (;;) {
      {
        std::lock_guard lock(mu_);
        if (done_) return;
      }
      RunOnce();
      clock_.SleepFor(std::chrono::milliseconds(50));
    }
  });
}

Supervisor::~Supervisor() {
  StopAll();
  {
    std::lock_guard lock(mu_);
    done_ = true;
  }
  monitor_.join();
}

int Supervisor::Spawn(const ChildSpec& spec, bool restarted) {
  std::string log_path = log_dir_ + "/" + spec.name + ".log";
  const auto& env = restarted ? spec.restart_env : spec.env;
  // Everything the child gets is built before fork(): between fork and exec only async-signal-safe calls
  // (no setenv, no allocation) are allowed in a multi-threaded process.
  std::vector<std::string> env_strings;
  for (char** e = environ; *e != nullptr; ++e)
    if (std::string_view(*e).rfind("PAYPATH_", 0) != 0) env_strings.emplace_back(*e);
  for (const auto& [k, v] : env) env_strings.push_back(k + "=" + v);
  std::vector<char*> envp;
  for (auto& kv : env_strings) envp.push_back(kv.data());
  envp.push_back(nullptr);
  std::vector<char*> argv;
  argv.push_back(const_cast<char*>(binary_.c_str()));
  for (const auto& a : spec.args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  pid_t pid = fork();
  if (pid == 0) {
    // Child: its own process group, so a terminal's Ctrl-C reaches only the prover, which stops us.
    setpgid(0, 0);
    // The prover blocks SIGINT/SIGTERM in its threads (it waits for them); children must not inherit that.
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    int fd = open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
      dup2(fd, 1);
      dup2(fd, 2);
      close(fd);
    }
    execve(binary_.c_str(), argv.data(), envp.data());
    _exit(127);
  }
  return pid;
}

bool Supervisor::WaitReady(const ChildSpec& spec, std::chrono::milliseconds timeout) {
  if (spec.metrics_hostport.empty()) return true;
  auto end = clock_.Now() + timeout;
  while (clock_.Now() < end) {
    if (HttpGet(clock_, spec.metrics_hostport, spec.ready_path, nullptr) == 200) return true;
    clock_.SleepFor(std::chrono::milliseconds(50));
  }
  return false;
}

bool Supervisor::Start(const ChildSpec& spec, std::chrono::milliseconds ready_timeout) {
  {
    std::lock_guard lock(mu_);
    auto& slot = children_[spec.name];
    // Starting a name again (after Stop) keeps its banked metrics and crash count: one logical process.
    if (!slot) slot = std::make_unique<Child>();
    slot->spec = spec;
    slot->stopping = false;
    slot->pid = Spawn(spec, false);
  }
  bool ok = WaitReady(spec, ready_timeout);
  if (!ok) log::Error("child_not_ready", {{"child", spec.name}});
  return ok;
}

bool Supervisor::Kill(const std::string& name) {
  std::lock_guard lock(mu_);
  auto it = children_.find(name);
  if (it == children_.end() || it->second->pid <= 0 || it->second->stopping) return false;
  return kill(it->second->pid, SIGKILL) == 0;
}

void Supervisor::Stop(const std::string& name, std::chrono::milliseconds grace) {
  int pid;
  {
    std::lock_guard lock(mu_);
    auto it = children_.find(name);
    if (it == children_.end() || it->second->pid <= 0) return;
    it->second->stopping = true;
    pid = it->second->pid;
  }
  kill(pid, SIGTERM);
  auto end = clock_.Now() + grace;
  int st = 0;
  while (waitpid(pid, &st, WNOHANG) == 0) {
    if (clock_.Now() >= end) {
      kill(pid, SIGKILL);
      waitpid(pid, &st, 0);
      break;
    }
    clock_.SleepFor(std::chrono::milliseconds(20));
  }
  std::lock_guard lock(mu_);
  auto& c = children_[name];
  if (!c->spec.final_metrics_path.empty()) {
    std::ifstream in(c->spec.final_metrics_path);
    std::stringstream text;
    text << in.rdbuf();
    if (!text.str().empty()) c->last = metrics::ParseText(text.str());
    std::remove(c->spec.final_metrics_path.c_str());
  }
  for (const auto& [k, v] : c->last) c->banked[k] += v;
  c->last.clear();
  c->pid = -1;
}

void Supervisor::StopAll() {
  std::vector<std::string> names;
  {
    std::lock_guard lock(mu_);
    for (const auto& [n, c] : children_)
      if (c->pid > 0) names.push_back(n);
  }
  for (const auto& n : names) Stop(n);
}

void Supervisor::RunOnce() {
  std::vector<std::string> restart;
  {
    std::lock_guard lock(mu_);
    for (auto& [name, c] : children_) {
      if (c->pid <= 0 || c->stopping) continue;
      int st = 0;
      if (waitpid(c->pid, &st, WNOHANG) != c->pid) continue;
      c->crashes++;
      c->crash_times.push_back(clock_.Now());
      for (const auto& [k, v] : c->last) c->banked[k] += v;
      c->last.clear();
      log::Warn("child_died", {{"child", name},
                               {"signal", WIFSIGNALED(st) ? WTERMSIG(st) : 0},
                               {"exit", WIFEXITED(st) ? WEXITSTATUS(st) : -1},
                               {"crashes", c->crashes}});
      c->pid = Spawn(c->spec, true);
      restart.push_back(name);
    }
  }
  for (const auto& name : restart) {
    ChildSpec spec;
    {
      std::lock_guard lock(mu_);
      spec = children_[name]->spec;
    }
    WaitReady(spec, std::chrono::seconds(30));
  }
}

void Supervisor::Scrape() {
  std::vector<std::pair<std::string, std::string>> targets;
  {
    std::lock_guard lock(mu_);
    for (const auto& [n, c] : children_)
      if (c->pid > 0 && !c->spec.metrics_hostport.empty()) targets.emplace_back(n, c->spec.metrics_hostport);
  }
  for (const auto& [name, hp] : targets) {
    std::string body;
    if (HttpGet(clock_, hp, "/metrics", &body) != 200) continue;
    auto parsed = metrics::ParseText(body);
    std::lock_guard lock(mu_);
    auto& c = children_[name];
    c->last = std::move(parsed);
    c->last_text = std::move(body);
  }
}

int Supervisor::Crashes(const std::string& name) {
  std::lock_guard lock(mu_);
  auto it = children_.find(name);
  return it == children_.end() ? 0 : it->second->crashes;
}

std::vector<std::chrono::steady_clock::time_point> Supervisor::CrashTimes(const std::string& name) {
  std::lock_guard lock(mu_);
  auto it = children_.find(name);
  return it == children_.end() ? std::vector<std::chrono::steady_clock::time_point>{} : it->second->crash_times;
}

std::map<std::string, double> Supervisor::Totals(const std::string& name) {
  std::lock_guard lock(mu_);
  auto it = children_.find(name);
  if (it == children_.end()) return {};
  std::map<std::string, double> out = it->second->banked;
  for (const auto& [k, v] : it->second->last) out[k] += v;
  return out;
}

std::string Supervisor::LastScrapeText(const std::string& name) {
  std::lock_guard lock(mu_);
  auto it = children_.find(name);
  return it == children_.end() ? "" : it->second->last_text;
}

}  // namespace paypath::chaos
