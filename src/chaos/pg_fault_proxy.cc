#include "chaos/pg_fault_proxy.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>

namespace paypath::chaos {
namespace {

// Startup-phase request codes (PostgreSQL protocol, "Message Formats").
constexpr uint32_t kSslRequest = 80877103;
constexpr uint32_t kGssEncRequest = 80877104;
constexpr uint32_t kCancelRequest = 80877102;
// No frontend message paypath sends comes near this; a larger length means the stream is not PostgreSQL.
constexpr uint32_t kMaxMessage = 64u << 20;
// How often a connection thread looks at the stop flag while both sides are idle.
constexpr int kPollMs = 200;
// Connecting to the server is local; 5 s only bounds a server that accepts and then hangs.
constexpr auto kUpstreamConnect = std::chrono::seconds(5);
// A stuck peer must not hold a connection thread forever on one write.
constexpr auto kWriteTimeout = std::chrono::seconds(10);
// poll() already said the socket is readable; this only bounds a spurious wakeup.
constexpr auto kReadAfterPoll = std::chrono::seconds(1);

uint32_t ReadU32(std::string_view b, size_t at) {
  return (static_cast<uint32_t>(static_cast<unsigned char>(b[at])) << 24) |
         (static_cast<uint32_t>(static_cast<unsigned char>(b[at + 1])) << 16) |
         (static_cast<uint32_t>(static_cast<unsigned char>(b[at + 2])) << 8) |
         static_cast<uint32_t>(static_cast<unsigned char>(b[at + 3]));
}

// The NUL-terminated string starting at `at` (empty if unterminated); *next is the offset after the NUL.
std::string_view CString(std::string_view b, size_t at, size_t* next) {
  size_t end = b.find('\0', at);
  if (end == std::string_view::npos || at > b.size()) {
    *next = b.size();
    return {};
  }
  *next = end + 1;
  return b.substr(at, end - at);
}

std::string Upper(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return out;
}

bool IsCommit(std::string_view q) {
  auto space = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == ';'; };
  while (!q.empty() && space(q.front())) q.remove_prefix(1);
  while (!q.empty() && space(q.back())) q.remove_suffix(1);
  return Upper(q) == "COMMIT";
}

void SetNonBlocking(int fd) { ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL, 0) | O_NONBLOCK); }

}  // namespace

const char* PgCutTargetName(PgCutTarget t) { return t == PgCutTarget::kCommit ? "commit" : "claim"; }

Result<std::optional<PgFrontendStream::Message>> PgFrontendStream::Next() {
  using Out = std::optional<Message>;
  Message m;
  if (startup_) {
    if (buf_.size() < 8) return Out();
    uint32_t len = ReadU32(buf_, 0);
    if (len < 8 || len > kMaxMessage) return Error::InvalidArgument("bad startup packet length");
    if (buf_.size() < len) return Out();
    uint32_t code = ReadU32(buf_, 4);
    m.bytes = buf_.substr(0, len);
    buf_.erase(0, len);
    if (code == kSslRequest || code == kGssEncRequest) m.ssl_request = true;
    else if (code != kCancelRequest) startup_ = false;  // the StartupMessage: typed messages follow
    return Out(std::move(m));
  }
  if (buf_.size() < 5) return Out();
  uint32_t len = ReadU32(buf_, 1);
  if (len < 4 || len > kMaxMessage) return Error::InvalidArgument("bad message length");
  if (buf_.size() < len + 1) return Out();
  m.type = buf_[0];
  m.bytes = buf_.substr(0, len + 1);
  buf_.erase(0, len + 1);
  std::string_view body = std::string_view(m.bytes).substr(5);
  size_t next = 0;
  switch (m.type) {
    case 'Q':
      m.commit = IsCommit(CString(body, 0, &next));
      break;
    case 'P': {
      std::string name(CString(body, 0, &next));
      std::string_view query = CString(body, next, &next);
      if (Upper(query).find(Upper(claim_pattern_)) != std::string::npos) claim_statements_.insert(name);
      else claim_statements_.erase(name);
      break;
    }
    case 'B': {
      (void)CString(body, 0, &next);  // portal
      std::string stmt(CString(body, next, &next));
      bound_claim_ = claim_statements_.count(stmt) > 0;
      break;
    }
    case 'E':
      if (bound_claim_) {
        m.claim_execute = true;
        executed_claim_ = true;
      }
      break;
    case 'S':
      if (executed_claim_) m.claim_sync = true;
      executed_claim_ = false;
      bound_claim_ = false;
      break;
    case 'C':
      if (!body.empty() && body[0] == 'S') claim_statements_.erase(std::string(CString(body, 1, &next)));
      break;
    default:
      break;
  }
  return Out(std::move(m));
}

Result<std::unique_ptr<PgFaultProxy>> PgFaultProxy::Start(PgFaultProxyOptions options, Clock& clock) {
  auto listener = net::ListenTcp(options.listen_host, options.listen_port);
  if (!listener.ok()) return listener.error();
  std::unique_ptr<PgFaultProxy> p(new PgFaultProxy(std::move(options), clock));
  p->listener_ = std::move(listener.value());
  p->port_ = net::LocalPort(p->listener_.get());
  p->accept_thread_ = std::thread([raw = p.get()] { raw->AcceptLoop(); });
  return p;
}

PgFaultProxy::~PgFaultProxy() { Stop(); }

void PgFaultProxy::Arm(PgCutTarget target, int count, PgCutMode mode) {
  std::lock_guard lock(mu_);
  armed_[static_cast<int>(target)] = {std::max(0, count), mode};
}

PgFaultProxy::Counts PgFaultProxy::counts() const {
  std::lock_guard lock(mu_);
  return counts_;
}

std::optional<PgCutMode> PgFaultProxy::TakeCut(PgCutTarget target) {
  std::lock_guard lock(mu_);
  if (target == PgCutTarget::kCommit) counts_.commits++;
  else counts_.claims++;
  Armed& a = armed_[static_cast<int>(target)];
  if (a.count <= 0) return std::nullopt;
  a.count--;
  if (target == PgCutTarget::kCommit) counts_.commit_cuts++;
  else counts_.claim_cuts++;
  return a.mode;
}

void PgFaultProxy::Stop() {
  if (stopping_.exchange(true)) return;
  // Wakes the accept thread's poll; the connection threads poll with a timeout and see the flag.
  ::shutdown(listener_.get(), SHUT_RDWR);
  if (accept_thread_.joinable()) accept_thread_.join();
  {
    std::lock_guard lock(mu_);
    for (int fd : open_fds_) ::shutdown(fd, SHUT_RDWR);
  }
  ReapThreads(/*all=*/true);
  listener_.Close();
}

bool PgFaultProxy::Track(int fd) {
  std::lock_guard lock(mu_);
  if (stopping_.load()) return false;
  open_fds_.insert(fd);
  return true;
}

void PgFaultProxy::Untrack(int fd) {
  std::lock_guard lock(mu_);
  open_fds_.erase(fd);
}

void PgFaultProxy::ReapThreads(bool all) {
  std::vector<std::thread> to_join;
  {
    std::lock_guard lock(mu_);
    if (all) {
      for (auto& [id, t] : threads_) to_join.push_back(std::move(t));
      threads_.clear();
    } else {
      for (auto id : finished_) {
        auto it = threads_.find(id);
        if (it == threads_.end()) continue;
        to_join.push_back(std::move(it->second));
        threads_.erase(it);
      }
    }
    finished_.clear();
  }
  for (auto& t : to_join) t.join();
}

void PgFaultProxy::AcceptLoop() {
  while (!stopping_.load()) {
    ReapThreads(/*all=*/false);
    pollfd p{listener_.get(), POLLIN, 0};
    int rc = ::poll(&p, 1, kPollMs);
    if (rc <= 0 || (p.revents & POLLIN) == 0) continue;
    int c = ::accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC);
    if (c < 0) continue;
    net::Fd client(c);
    if (refuse_.load()) {
      std::lock_guard lock(mu_);
      counts_.refused++;
      continue;  // closed by ~Fd: the client's connect fails at once
    }
    std::lock_guard lock(mu_);
    counts_.connections++;
    std::thread t([this, fd = client.Release()]() mutable {
      Serve(net::Fd(fd));
      std::lock_guard done(mu_);
      finished_.push_back(std::this_thread::get_id());  // joined by the accept thread or Stop()
    });
    threads_.emplace(t.get_id(), std::move(t));
  }
}

void PgFaultProxy::Drain(net::Fd upstream) {
  // Half-close: the server reads the statement, then an orderly EOF, so it runs the statement to the end
  // (a COMMIT commits) before it notices the client is gone. Its answer is read and thrown away.
  ::shutdown(upstream.get(), SHUT_WR);
  auto deadline = clock_.Now() + options_.drain_timeout;
  std::string sink;
  for (;;) {
    sink.clear();
    net::IoStatus s = net::ReadSome(upstream.get(), &sink, 65536, clock_, deadline);
    if (s != net::IoStatus::kOk) break;
  }
}

void PgFaultProxy::Serve(net::Fd client) {
  SetNonBlocking(client.get());
  auto up = net::ConnectTcp(options_.upstream_host, options_.upstream_port, clock_, clock_.Now() + kUpstreamConnect);
  if (!up.ok()) return;  // the client sees its connection closed, like a server that went away
  net::Fd upstream = std::move(up.value());
  if (!Track(client.get()) || !Track(upstream.get())) {
    Untrack(client.get());
    return;
  }
  PgFrontendStream stream(options_.claim_pattern);
  bool claim_cut_pending = false;  // a forward-then-cut of the claim waits for the batch's Sync
  bool done = false;
  std::string buf;
  auto write = [&](int fd, std::string_view data) {
    return net::WriteAll(fd, data, clock_, clock_.Now() + kWriteTimeout) == net::IoStatus::kOk;
  };
  while (!done && !stopping_.load()) {
    pollfd fds[2] = {{client.get(), POLLIN, 0}, {upstream.get(), POLLIN, 0}};
    int rc = ::poll(fds, 2, kPollMs);
    if (rc < 0 && errno != EINTR) break;
    if (rc <= 0) continue;
    if (fds[1].revents != 0) {
      buf.clear();
      if (net::ReadSome(upstream.get(), &buf, 65536, clock_, clock_.Now() + kReadAfterPoll) != net::IoStatus::kOk) break;
      if (!write(client.get(), buf)) break;
    }
    if (fds[0].revents == 0) continue;
    buf.clear();
    if (net::ReadSome(client.get(), &buf, 65536, clock_, clock_.Now() + kReadAfterPoll) != net::IoStatus::kOk) break;
    stream.Feed(buf);
    for (;;) {
      auto next = stream.Next();
      if (!next.ok() || !next->has_value()) {
        if (!next.ok()) done = true;
        break;
      }
      PgFrontendStream::Message& m = **next;
      if (m.ssl_request) {
        if (!write(client.get(), "N")) done = true;
        if (done) break;
        continue;
      }
      // What to do with this message: relay it, drop it and hang up, or relay it and then hang up.
      enum class Act { kRelay, kDrop, kRelayThenCut } act = Act::kRelay;
      if (m.commit) {
        if (auto cut = TakeCut(PgCutTarget::kCommit))
          act = *cut == PgCutMode::kCutBeforeForward ? Act::kDrop : Act::kRelayThenCut;
      }
      if (m.claim_execute) {
        if (auto cut = TakeCut(PgCutTarget::kClaim)) {
          if (*cut == PgCutMode::kCutBeforeForward) act = Act::kDrop;
          else claim_cut_pending = true;  // relay through the batch's Sync first
        }
      }
      if (m.claim_sync && claim_cut_pending) act = Act::kRelayThenCut;
      if (act == Act::kDrop) {
        done = true;
        break;
      }
      if (!write(upstream.get(), m.bytes)) {
        done = true;
        break;
      }
      if (act == Act::kRelayThenCut) {
        Untrack(client.get());
        client.Close();  // the client sees EOF before any answer
        Untrack(upstream.get());
        Drain(std::move(upstream));
        return;
      }
    }
  }
  Untrack(client.get());
  Untrack(upstream.get());
}

}  // namespace paypath::chaos
