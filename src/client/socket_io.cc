#include "client/socket_io.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>

namespace paypath::net {
namespace {

// Milliseconds left until `deadline`, rounded up so a 0.4 ms remainder still waits instead of spinning.
int RemainingMs(Clock& clock, Deadline deadline) {
  auto left = deadline - clock.Now();
  if (left <= Clock::Duration::zero()) return 0;
  auto ms = std::chrono::ceil<std::chrono::milliseconds>(left).count();
  return ms > 1'000'000'000 ? 1'000'000'000 : static_cast<int>(ms);
}

// Waits for `events` on fd. Returns false when the deadline passed first.
bool WaitFor(int fd, short events, Clock& clock, Deadline deadline) {
  for (;;) {
    pollfd p{fd, events, 0};
    int rc = ::poll(&p, 1, RemainingMs(clock, deadline));
    if (rc > 0) return true;
    if (rc == 0) {
      // poll's own timer and the Clock can disagree by a millisecond; trust the Clock.
      if (RemainingMs(clock, deadline) == 0) return false;
      continue;
    }
    if (errno != EINTR) return true;  // let the following read/write report the error
  }
}

}  // namespace

void Fd::Close() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

void Fd::Reset() {
  if (fd_ < 0) return;
  linger lg{1, 0};
  ::setsockopt(fd_, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
  Close();
}

const char* IoStatusName(IoStatus s) {
  switch (s) {
    case IoStatus::kOk: return "ok";
    case IoStatus::kClosed: return "closed";
    case IoStatus::kReset: return "reset";
    case IoStatus::kTimeout: return "timeout";
  }
  return "?";
}

Result<Fd> ConnectTcp(const std::string& host, uint16_t port, Clock& clock, Deadline deadline) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  std::string port_s = std::to_string(port);
  // getaddrinfo has no timeout; names here are local (localhost, compose service names).
  int gai = ::getaddrinfo(host.c_str(), port_s.c_str(), &hints, &res);
  if (gai != 0) return Error::Unavailable("resolve " + host + ": " + gai_strerror(gai));
  std::string last = "no addresses";
  for (addrinfo* ai = res; ai != nullptr; ai = ai->ai_next) {
    Fd fd(::socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol));
    if (!fd.valid()) {
      last = std::strerror(errno);
      continue;
    }
    int one = 1;
    ::setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (::connect(fd.get(), ai->ai_addr, ai->ai_addrlen) != 0) {
      if (errno != EINPROGRESS) {
        last = std::strerror(errno);
        continue;
      }
      if (!WaitFor(fd.get(), POLLOUT, clock, deadline)) {
        last = "timed out";
        continue;
      }
      int err = 0;
      socklen_t len = sizeof err;
      ::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &len);
      if (err != 0) {
        last = std::strerror(err);
        continue;
      }
    }
    ::freeaddrinfo(res);
    return fd;
  }
  ::freeaddrinfo(res);
  return Error::Unavailable("connect " + host + ":" + port_s + ": " + last);
}

Result<Fd> ListenTcp(const std::string& host, uint16_t port, int backlog) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE;
  addrinfo* res = nullptr;
  std::string port_s = std::to_string(port);
  int gai = ::getaddrinfo(host.empty() ? nullptr : host.c_str(), port_s.c_str(), &hints, &res);
  if (gai != 0) return Error::Unavailable("resolve " + host + ": " + gai_strerror(gai));
  std::string last = "no addresses";
  for (addrinfo* ai = res; ai != nullptr; ai = ai->ai_next) {
    Fd fd(::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol));
    if (!fd.valid()) {
      last = std::strerror(errno);
      continue;
    }
    int one = 1;
    ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (::bind(fd.get(), ai->ai_addr, ai->ai_addrlen) != 0 || ::listen(fd.get(), backlog) != 0) {
      last = std::strerror(errno);
      continue;
    }
    ::freeaddrinfo(res);
    return fd;
  }
  ::freeaddrinfo(res);
  return Error::Unavailable("listen " + host + ":" + port_s + ": " + last);
}

uint16_t LocalPort(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return 0;
  if (ss.ss_family == AF_INET) return ntohs(reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
  if (ss.ss_family == AF_INET6) return ntohs(reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port);
  return 0;
}

IoStatus ReadSome(int fd, std::string* out, size_t max, Clock& clock, Deadline deadline) {
  for (;;) {
    if (!WaitFor(fd, POLLIN, clock, deadline)) return IoStatus::kTimeout;
    size_t old = out->size();
    out->resize(old + max);
    ssize_t n = ::recv(fd, out->data() + old, max, MSG_DONTWAIT);
    if (n > 0) {
      out->resize(old + static_cast<size_t>(n));
      return IoStatus::kOk;
    }
    out->resize(old);
    if (n == 0) return IoStatus::kClosed;
    if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK) continue;
    return IoStatus::kReset;
  }
}

IoStatus WriteAll(int fd, std::string_view data, Clock& clock, Deadline deadline) {
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = ::send(fd, data.data() + off, data.size() - off, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      off += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && (errno == EINTR)) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      if (!WaitFor(fd, POLLOUT, clock, deadline)) return IoStatus::kTimeout;
      continue;
    }
    return IoStatus::kReset;
  }
  return IoStatus::kOk;
}

}  // namespace paypath::net
