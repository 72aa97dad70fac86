// A TCP forwarder standing in for one node of a cluster: every connection to port() is relayed to the
// upstream server, until Kill(), which closes the listener and every relayed connection at once (what a
// node dying looks like to its clients: refused connects, reset sockets). Test-only.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace paypath::testing {

class NodeProxy {
 public:
  explicit NodeProxy(int upstream_port) : upstream_port_(upstream_port) {
    // CLOEXEC: a child process (the api under test) must not inherit the listener and keep the port open.
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    ::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof a);
    ::listen(listen_fd_, 64);
    socklen_t len = sizeof a;
    ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this] { Run(); });
  }
  ~NodeProxy() {
    Kill();
    stop_ = true;
    thread_.join();
  }
  NodeProxy(const NodeProxy&) = delete;
  NodeProxy& operator=(const NodeProxy&) = delete;

  int port() const { return port_; }
  int accepted() const { return accepted_; }  // connections relayed so far
  // The node dies: no more connects, every relayed connection reset. Idempotent.
  void Kill() { killed_ = true; }

 private:
  static int ConnectUpstream(int port) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
      ::close(fd);
      return -1;
    }
    return fd;
  }

  static void Reset(int fd) {
    linger l{1, 0};  // RST, not FIN: the peer sees the connection die, as when a host goes away
    ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    ::close(fd);
  }

  void Run() {
    std::vector<std::pair<int, int>> pairs;  // client, upstream
    char buf[16384];
    while (!stop_) {
      if (killed_) {
        if (listen_fd_ >= 0) ::close(listen_fd_);
        listen_fd_ = -1;
        for (auto [c, u] : pairs) {
          Reset(c);
          Reset(u);
        }
        pairs.clear();
        ::usleep(10000);
        continue;
      }
      std::vector<pollfd> fds;
      fds.push_back({listen_fd_, POLLIN, 0});
      for (auto [c, u] : pairs) {
        fds.push_back({c, POLLIN, 0});
        fds.push_back({u, POLLIN, 0});
      }
      if (::poll(fds.data(), fds.size(), 20) <= 0) continue;
      if (fds[0].revents & POLLIN) {
        int c = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
        if (c >= 0) {
          int u = ConnectUpstream(upstream_port_);
          if (u < 0) {
            ::close(c);
          } else {
            pairs.emplace_back(c, u);
            ++accepted_;
          }
        }
      }
      std::vector<size_t> dead;
      for (size_t i = 0; i < pairs.size(); ++i) {
        for (int side = 0; side < 2; ++side) {
          const pollfd& p = fds[1 + 2 * i + side];
          if (!(p.revents & (POLLIN | POLLHUP | POLLERR))) continue;
          int from = side == 0 ? pairs[i].first : pairs[i].second;
          int to = side == 0 ? pairs[i].second : pairs[i].first;
          ssize_t n = ::recv(from, buf, sizeof buf, 0);
          bool ok = n > 0;
          for (ssize_t off = 0; ok && off < n;) {
            ssize_t w = ::send(to, buf + off, static_cast<size_t>(n - off), MSG_NOSIGNAL);
            if (w <= 0) ok = false;
            else off += w;
          }
          if (!ok) {
            dead.push_back(i);
            break;
          }
        }
      }
      for (auto it = dead.rbegin(); it != dead.rend(); ++it) {
        ::close(pairs[*it].first);
        ::close(pairs[*it].second);
        pairs.erase(pairs.begin() + static_cast<long>(*it));
      }
    }
    for (auto [c, u] : pairs) {
      ::close(c);
      ::close(u);
    }
    if (listen_fd_ >= 0) ::close(listen_fd_);
  }

  int upstream_port_;
  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<bool> killed_{false};
  std::atomic<int> accepted_{0};
  std::thread thread_;
};

}  // namespace paypath::testing
