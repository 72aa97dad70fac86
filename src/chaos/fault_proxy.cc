#include "chaos/fault_proxy.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "client/http1.h"
#include "common/log.h"

namespace paypath::chaos {
namespace {

constexpr char kBadGateway[] = "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";

bool IsProbability(double p) { return p >= 0 && p <= 1; }

}  // namespace

Status FaultOptions::Validate() const {
  if (!IsProbability(eat_response)) return Error::InvalidArgument("eat-response must be in [0, 1]");
  if (!IsProbability(reset_before)) return Error::InvalidArgument("reset-before must be in [0, 1]");
  if (!IsProbability(delay_probability)) return Error::InvalidArgument("delay-probability must be in [0, 1]");
  if (eat_response + reset_before > 1)
    return Error::InvalidArgument("eat-response + reset-before must not exceed 1 (they exclude each other)");
  if (delay.count() < 0) return Error::InvalidArgument("delay-ms must be >= 0");
  return OkStatus();
}

const char* FaultActionName(FaultAction a) {
  switch (a) {
    case FaultAction::kForward: return "forward";
    case FaultAction::kResetBeforeForward: return "reset_before_forward";
    case FaultAction::kEatResponse: return "eat_response";
  }
  return "?";
}

FaultDecision DecideFault(const FaultOptions& options, Random& random) {
  FaultDecision d;
  const double u_delay = random.Uniform01();
  const double u_action = random.Uniform01();
  d.delay = options.delay.count() > 0 && u_delay < options.delay_probability;
  if (u_action < options.reset_before) d.action = FaultAction::kResetBeforeForward;
  else if (u_action < options.reset_before + options.eat_response) d.action = FaultAction::kEatResponse;
  return d;
}

FaultProxy::FaultProxy(ProxyOptions options, Clock& clock, Random& random, metrics::Registry& registry)
    : options_(std::move(options)),
      clock_(clock),
      random_(random),
      requests_(registry.GetCounter("paypath_proxy_requests_total", "Requests read from clients by the fault proxy")),
      eaten_(registry.GetCounter("paypath_proxy_responses_eaten_total",
                                 "Upstream responses received in full and not delivered to the client")),
      resets_before_(registry.GetCounter("paypath_proxy_resets_before_forward_total",
                                         "Client connections reset before the request was forwarded")),
      delayed_(registry.GetCounter("paypath_proxy_delayed_total", "Requests delayed before forwarding")),
      upstream_errors_(registry.GetCounter("paypath_proxy_upstream_errors_total",
                                           "Requests whose upstream was unreachable or broke mid-response")) {}

Result<std::unique_ptr<FaultProxy>> FaultProxy::Start(ProxyOptions options, Clock& clock, Random& random,
                                                      metrics::Registry& registry) {
  if (Status s = options.faults.Validate(); !s.ok()) return s.error();
  if (options.upstream_port == 0) return Error::InvalidArgument("upstream port must be set");
  auto listener = net::ListenTcp(options.listen_host, options.listen_port);
  if (!listener.ok()) return listener.error();
  std::unique_ptr<FaultProxy> p(new FaultProxy(std::move(options), clock, random, registry));
  p->listener_ = std::move(listener.value());
  p->port_ = net::LocalPort(p->listener_.get());
  if (::pipe2(p->wake_pipe_, O_CLOEXEC) != 0) return Error::Internal("pipe2 failed");
  p->accept_thread_ = std::thread([raw = p.get()] { raw->AcceptLoop(); });
  return p;
}

FaultProxy::~FaultProxy() {
  Stop();
  for (int fd : wake_pipe_)
    if (fd >= 0) ::close(fd);
}

void FaultProxy::Stop() {
  if (stopping_.exchange(true)) return;
  char b = 1;
  ssize_t unused = ::write(wake_pipe_[1], &b, 1);
  (void)unused;
  if (accept_thread_.joinable()) accept_thread_.join();
  {
    // Wake every connection thread blocked on a socket; each then unwinds and closes its own fds.
    std::lock_guard lock(mu_);
    for (int fd : open_fds_) ::shutdown(fd, SHUT_RDWR);
  }
  ReapThreads(/*all=*/true);
  listener_.Close();
}

FaultProxy::Counts FaultProxy::counts() const {
  return {requests_.Value(), eaten_.Value(), resets_before_.Value(), delayed_.Value(), upstream_errors_.Value()};
}

void FaultProxy::Track(int fd) {
  std::lock_guard lock(mu_);
  open_fds_.insert(fd);
  // A Stop() that ran its shutdown sweep before this fd existed must still end it.
  if (stopping_.load()) ::shutdown(fd, SHUT_RDWR);
}

void FaultProxy::Untrack(int fd) {
  std::lock_guard lock(mu_);
  open_fds_.erase(fd);
}

void FaultProxy::ReapThreads(bool all) {
  std::vector<std::thread> to_join;
  {
    std::lock_guard lock(mu_);
    if (all) {
      for (auto& [id, t] : threads_) to_join.push_back(std::move(t));
      threads_.clear();
      finished_.clear();
    } else {
      for (auto id : finished_) {
        auto it = threads_.find(id);
        if (it == threads_.end()) continue;
        to_join.push_back(std::move(it->second));
        threads_.erase(it);
      }
      finished_.clear();
    }
  }
  for (auto& t : to_join) t.join();
}

void FaultProxy::AcceptLoop() {
  while (!stopping_.load()) {
    ReapThreads(/*all=*/false);
    pollfd fds[2] = {{listener_.get(), POLLIN, 0}, {wake_pipe_[0], POLLIN, 0}};
    int rc = ::poll(fds, 2, -1);
    if (rc < 0) continue;  // EINTR
    if (fds[1].revents != 0) break;
    if ((fds[0].revents & POLLIN) == 0) continue;
    int c = ::accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC);
    if (c < 0) continue;
    net::Fd client(c);
    Track(client.get());
    std::lock_guard lock(mu_);
    std::thread t([this, fd = client.Release()]() mutable { ServeConnection(net::Fd(fd)); });
    threads_.emplace(t.get_id(), std::move(t));
  }
}

void FaultProxy::ServeConnection(net::Fd client) {
  std::string buf;
  bool reset = false;
  while (!stopping_.load()) {
    http1::Parsed req;
    std::string raw;
    http1::ReadStatus rs = http1::ReadMessage(client.get(), &buf, /*is_response=*/false, "", clock_,
                                              clock_.Now() + options_.idle_timeout, &req, &raw);
    if (rs != http1::ReadStatus::kComplete) break;  // idle, closed, or not HTTP: just hang up
    if (!Relay(client.get(), raw, req.head.method, &reset)) break;
    if (req.head.WantsClose()) break;
  }
  Untrack(client.get());
  if (reset) client.Reset();
  else client.Close();
  std::lock_guard lock(mu_);
  finished_.push_back(std::this_thread::get_id());
  // Reaping happens on the accept thread's next turn or in Stop(); nothing of `this` is touched after.
}

bool FaultProxy::Relay(int client_fd, const std::string& raw_request, const std::string& method, bool* reset) {
  requests_.Inc();
  const FaultDecision d = DecideFault(options_.faults, random_);
  if (d.delay) {
    delayed_.Inc();
    clock_.SleepFor(options_.faults.delay);
  }
  if (d.action == FaultAction::kResetBeforeForward) {
    resets_before_.Inc();
    *reset = true;
    return false;
  }

  const net::Deadline deadline = clock_.Now() + options_.upstream_timeout;
  auto conn = net::ConnectTcp(options_.upstream_host, options_.upstream_port, clock_, deadline);
  if (!conn.ok()) {
    upstream_errors_.Inc();
    log::Warn("proxy_upstream_unreachable", {{"error", conn.error().message}});
    (void)net::WriteAll(client_fd, kBadGateway, clock_, clock_.Now() + options_.idle_timeout);
    return false;
  }
  net::Fd upstream = std::move(conn.value());
  Track(upstream.get());
  std::string ubuf, raw_response;
  http1::Parsed resp;
  http1::ReadStatus rs = http1::ReadStatus::kNoData;
  if (net::WriteAll(upstream.get(), raw_request, clock_, deadline) == net::IoStatus::kOk)
    rs = http1::ReadMessage(upstream.get(), &ubuf, /*is_response=*/true, method, clock_, deadline, &resp,
                            &raw_response);
  Untrack(upstream.get());
  upstream.Close();
  if (rs != http1::ReadStatus::kComplete) {
    // The request may have been acted on: hang up abruptly rather than invent an answer.
    upstream_errors_.Inc();
    *reset = true;
    return false;
  }
  if (d.action == FaultAction::kEatResponse) {
    eaten_.Inc();
    log::Info("proxy_ate_response", {{"status", resp.head.status}});
    *reset = options_.faults.eat_with_reset;
    return false;
  }
  if (net::WriteAll(client_fd, raw_response, clock_, clock_.Now() + options_.idle_timeout) != net::IoStatus::kOk)
    return false;
  return !(resp.head.WantsClose() || resp.until_close);
}

}  // namespace paypath::chaos
