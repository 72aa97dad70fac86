// FaultProxy: an HTTP-aware TCP proxy between the client and the API that injects the failures an
// effectively-once payment path must survive. Per request, seeded, with configurable probabilities:
//   - eat the response: forward the request, wait for the upstream's complete response, then reset (or
//     close) the client connection without sending it. The charge happened; the client does not know.
//   - reset before forwarding: the upstream never sees the request.
//   - add latency before forwarding.
// It parses each request (head + Content-Length or chunked body) and each response, so it knows message
// boundaries: client keep-alive is supported and every request gets exactly one decision.
//
// Upstream connections: a fresh one per request, closed after the response. That avoids ever resending a
// request on a keep-alive connection the upstream closed meanwhile (which would duplicate a charge
// attempt outside the experiment's control) at the cost of a loopback handshake per request.
//
// Threads: one accept thread plus one thread per client connection (fine at the ~64 concurrent
// connections of the proof run). Stop() (or the destructor) wakes and joins all of them.
//
// Metrics (registry given at Start):
//   paypath_proxy_requests_total                 requests read from clients
//   paypath_proxy_responses_eaten_total          responses received from upstream and not delivered
//   paypath_proxy_resets_before_forward_total    requests dropped with a reset before forwarding
//   paypath_proxy_delayed_total                  requests delayed
//   paypath_proxy_upstream_errors_total          upstream unreachable or broke mid-response (client
//                                                gets 502, or a reset once the request was forwarded)
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "client/socket_io.h"
#include "common/clock.h"
#include "common/metrics.h"
#include "common/random.h"
#include "common/result.h"

namespace paypath::chaos {

struct FaultOptions {
  double eat_response = 0;       // probability per request
  double reset_before = 0;       // probability per request; eat_response + reset_before <= 1
  double delay_probability = 0;  // probability per request, independent of the two above
  std::chrono::milliseconds delay{0};
  // How an eaten response ends the client connection: RST (the client sees "connection reset") or FIN
  // (it sees EOF before any response). Both are "no response" to the retrying client.
  bool eat_with_reset = true;

  // kInvalidArgument naming the bad field: probabilities outside [0, 1], their sum over 1, delay < 0.
  Status Validate() const;
};

enum class FaultAction { kForward, kResetBeforeForward, kEatResponse };
const char* FaultActionName(FaultAction a);

struct FaultDecision {
  FaultAction action = FaultAction::kForward;
  bool delay = false;
};

// The per-request decision. Always draws exactly two values from `random` (delay first, then action), so
// the decision sequence depends only on the seed and the order requests arrive, not on the options'
// values having short-circuited a draw. Action: u < reset_before -> reset; u < reset_before + eat_response
// -> eat; else forward. Pure apart from the draws.
FaultDecision DecideFault(const FaultOptions& options, Random& random);

struct ProxyOptions {
  std::string listen_host = "127.0.0.1";
  uint16_t listen_port = 0;  // 0: pick a free port (see FaultProxy::port)
  std::string upstream_host = "127.0.0.1";
  uint16_t upstream_port = 0;
  FaultOptions faults;
  // Connect + request + complete response. Longer than any client's attempt timeout, so the proxy never
  // gives up on an answer the client is still waiting for.
  std::chrono::milliseconds upstream_timeout{30000};
  // A client connection idle this long between requests is closed.
  std::chrono::milliseconds idle_timeout{60000};
};

class FaultProxy {
 public:
  // Validates the options, binds the listener and starts accepting. kInvalidArgument for bad options,
  // kUnavailable if the address cannot be bound. clock, random and registry must outlive the proxy;
  // random is shared by all connections (SystemRandom is thread-safe).
  static Result<std::unique_ptr<FaultProxy>> Start(ProxyOptions options, Clock& clock, Random& random,
                                                   metrics::Registry& registry = metrics::Registry::Default());
  ~FaultProxy();
  FaultProxy(const FaultProxy&) = delete;
  FaultProxy& operator=(const FaultProxy&) = delete;

  uint16_t port() const { return port_; }

  // Stops accepting, breaks every open connection and joins all threads. Idempotent.
  void Stop();

  struct Counts {
    double requests, eaten, resets_before, delayed, upstream_errors;
  };
  Counts counts() const;

 private:
  FaultProxy(ProxyOptions options, Clock& clock, Random& random, metrics::Registry& registry);
  void AcceptLoop();
  void ServeConnection(net::Fd client);
  // Handles one request already read from the client. Returns false when the client connection must end;
  // *reset says whether to end it with RST.
  bool Relay(int client_fd, const std::string& raw_request, const std::string& method, bool* reset);
  void Track(int fd);
  void Untrack(int fd);

  const ProxyOptions options_;
  Clock& clock_;
  Random& random_;
  metrics::Counter& requests_;
  metrics::Counter& eaten_;
  metrics::Counter& resets_before_;
  metrics::Counter& delayed_;
  metrics::Counter& upstream_errors_;

  net::Fd listener_;
  uint16_t port_ = 0;
  int wake_pipe_[2] = {-1, -1};
  std::thread accept_thread_;
  std::atomic<bool> stopping_{false};

  // Joins connection threads that have finished (all of them once stopping_ is set and fds are shut).
  void ReapThreads(bool all);

  std::mutex mu_;
  std::set<int> open_fds_;  // protected by mu_: sockets a Stop() must shut down to wake their thread
  std::map<std::thread::id, std::thread> threads_;  // protected by mu_: connection threads
  std::vector<std::thread::id> finished_;            // protected by mu_: threads done, not yet joined
};

}  // namespace paypath::chaos
