// Blocking POSIX socket I/O with deadlines, shared by the HTTP transport (client) and the fault proxy
// (chaos). Every wait goes through poll() with the time left until a deadline taken from the injected
// Clock, so nothing here reads the time on its own. No Boost: these translation units compile in a second.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/clock.h"
#include "common/result.h"

namespace paypath::net {

using Deadline = std::chrono::steady_clock::time_point;

// Owns one file descriptor; closes it on destruction. Move-only.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() { Close(); }
  Fd(Fd&& o) noexcept : fd_(o.Release()) {}
  Fd& operator=(Fd&& o) noexcept {
    if (this != &o) {
      Close();
      fd_ = o.Release();
    }
    return *this;
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  int Release() {
    int f = fd_;
    fd_ = -1;
    return f;
  }
  void Close();
  // Closes with SO_LINGER {on, 0}: the kernel sends RST instead of FIN, and the peer sees
  // "connection reset" (the fault proxy's way of hanging up abruptly).
  void Reset();

 private:
  int fd_ = -1;
};

// Connects to host:port (numeric or resolvable name), non-blocking connect bounded by `deadline`.
// Errors: kUnavailable with the cause ("connection refused", "timed out") in the message. The request
// was certainly not sent when this fails, which is why callers may always retry it.
Result<Fd> ConnectTcp(const std::string& host, uint16_t port, Clock& clock, Deadline deadline);

// Binds and listens on host:port (port 0 picks a free port; read it back with LocalPort). SO_REUSEADDR.
// Errors: kUnavailable when the address cannot be bound.
Result<Fd> ListenTcp(const std::string& host, uint16_t port, int backlog = 128);
uint16_t LocalPort(int fd);

enum class IoStatus {
  kOk,       // some bytes moved (ReadSome) / all bytes written (WriteAll)
  kClosed,   // orderly EOF from the peer (reads only)
  kReset,    // ECONNRESET/EPIPE or another socket error
  kTimeout,  // the deadline passed first
};
const char* IoStatusName(IoStatus s);

// Appends up to `max` bytes to *out. kOk means at least one byte was appended.
IoStatus ReadSome(int fd, std::string* out, size_t max, Clock& clock, Deadline deadline);

// Writes all of `data` (MSG_NOSIGNAL: a dead peer is kReset, never SIGPIPE).
IoStatus WriteAll(int fd, std::string_view data, Clock& clock, Deadline deadline);

}  // namespace paypath::net
