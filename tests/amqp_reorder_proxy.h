// A one-connection TCP proxy between an AMQP client and the real broker that holds back the broker's
// basic.ack / basic.nack frames until it has forwarded `returns` complete basic.return messages, then lets
// everything through. The stream the client sees stays one the broker may legally send (each return still
// precedes its own ack; AMQP promises nothing more), but it is the interleaving RabbitMQ 3.10 happens not
// to produce on its own: return, return, ..., then the acks. Test-only.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <string>
#include <thread>
#include <vector>

namespace paypath::testing {

class AmqpReorderProxy {
 public:
  AmqpReorderProxy(std::string upstream_host, int upstream_port, int returns)
      : host_(std::move(upstream_host)), upstream_port_(upstream_port), returns_wanted_(returns) {
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    ::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof a);
    ::listen(listen_fd_, 1);
    socklen_t len = sizeof a;
    ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this] { Run(); });
  }
  ~AmqpReorderProxy() {
    stop_ = true;
    thread_.join();
    ::close(listen_fd_);
  }
  int port() const { return port_; }
  int acks_held() const { return acks_held_; }  // how many ack/nack frames were held back

 private:
  static bool WriteAll(int fd, const std::string& s) {
    size_t off = 0;
    while (off < s.size()) {
      ssize_t n = ::send(fd, s.data() + off, s.size() - off, MSG_NOSIGNAL);
      if (n <= 0) return false;
      off += static_cast<size_t>(n);
    }
    return true;
  }

  static uint32_t Be32(const std::string& b, size_t at) {
    return (uint32_t(uint8_t(b[at])) << 24) | (uint32_t(uint8_t(b[at + 1])) << 16) |
           (uint32_t(uint8_t(b[at + 2])) << 8) | uint32_t(uint8_t(b[at + 3]));
  }

  // Forwards the complete frames at the front of `buf` from the broker, holding acks as described above.
  bool Pump(std::string& buf, int client) {
    for (;;) {
      if (buf.size() < 7) return true;
      size_t size = Be32(buf, 3);
      if (buf.size() < 7 + size + 1) return true;
      std::string frame = buf.substr(0, 7 + size + 1);
      buf.erase(0, frame.size());
      uint8_t type = uint8_t(frame[0]);
      bool ack = false;
      if (type == 1 && size >= 4) {  // method frame: class id, method id
        int cls = (uint8_t(frame[7]) << 8) | uint8_t(frame[8]);
        int method = (uint8_t(frame[9]) << 8) | uint8_t(frame[10]);
        if (cls == 60 && method == 50) in_return_ = true;                  // basic.return
        ack = cls == 60 && (method == 80 || method == 120);                 // basic.ack / basic.nack
      } else if (type == 2 && in_return_ && size >= 12) {                   // content header
        uint64_t body = (uint64_t(Be32(frame, 11)) << 32) | Be32(frame, 15);
        body_left_ = body;
        if (body == 0) EndReturn();
      } else if (type == 3 && in_return_) {                                 // content body
        body_left_ -= std::min<uint64_t>(body_left_, size);
        if (body_left_ == 0) EndReturn();
      }
      if (ack && returns_seen_ < returns_wanted_) {
        held_.push_back(frame);
        acks_held_++;
        continue;
      }
      if (!WriteAll(client, frame)) return false;
      if (returns_seen_ >= returns_wanted_ && !held_.empty()) {
        for (const auto& h : held_)
          if (!WriteAll(client, h)) return false;
        held_.clear();
      }
    }
  }

  void EndReturn() {
    in_return_ = false;
    returns_seen_++;
  }

  void Run() {
    int client = -1;
    while (!stop_ && client < 0) {
      pollfd p{listen_fd_, POLLIN, 0};
      if (::poll(&p, 1, 50) > 0) client = ::accept(listen_fd_, nullptr, nullptr);
    }
    if (client < 0) return;
    int up = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(upstream_port_));
    ::inet_pton(AF_INET, host_.c_str(), &a.sin_addr);
    if (::connect(up, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
      ::close(client);
      ::close(up);
      return;
    }
    std::string from_broker;
    char chunk[65536];
    while (!stop_) {
      pollfd p[2] = {{client, POLLIN, 0}, {up, POLLIN, 0}};
      if (::poll(p, 2, 50) <= 0) continue;
      if (p[0].revents) {
        ssize_t n = ::recv(client, chunk, sizeof chunk, 0);
        if (n <= 0 || !WriteAll(up, std::string(chunk, static_cast<size_t>(n)))) break;
      }
      if (p[1].revents) {
        ssize_t n = ::recv(up, chunk, sizeof chunk, 0);
        if (n <= 0) break;
        from_broker.append(chunk, static_cast<size_t>(n));
        if (!Pump(from_broker, client)) break;
      }
    }
    ::close(client);
    ::close(up);
  }

  const std::string host_;
  const int upstream_port_;
  const int returns_wanted_;
  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  // Used by the proxy thread only (acks_held_ is read after the exchange is over).
  bool in_return_ = false;
  uint64_t body_left_ = 0;
  int returns_seen_ = 0;
  std::atomic<int> acks_held_{0};
  std::vector<std::string> held_;
};

}  // namespace paypath::testing
