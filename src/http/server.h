// The HTTP/1.1 server: moves bytes between sockets and a handler, with limits and timeouts everywhere.
// The handler is a function from Request to Response that never sees a socket (src/api).
//
// Limits (each answered, then the connection is closed):
//   body over body_limit            -> 413 problem+json
//   header block over header_limit  -> 431 problem+json (this also bounds the header count)
//   malformed request               -> 400 problem+json
//   request not complete within read_timeout (slow or stalled clients, e.g. a header sent byte by byte)
//                                   -> connection closed
//   keep-alive connection idle for idle_timeout between requests -> connection closed
//   more than max_connections open  -> the new connection gets 503 /problems/too-many-connections with
//                                      Retry-After and Connection: close, then is closed
//   accept() fails (EMFILE/ENFILE: out of descriptors; ENOBUFS/ENOMEM) -> out of descriptors, one pending
//                                      connection is refused the same way through a spare descriptor;
//                                      otherwise accepting pauses (10 ms doubling to 1 s) instead of spinning
//
// Deadlines: the read_timeout runs from a connection's start for its first request, and from the first
// byte of every later request; between requests the idle_timeout applies. A response must be written
// within read_timeout.
//
// Metrics, labelled listener=<name>: paypath_http_connections_open (gauge), paypath_http_max_connections
// (gauge), paypath_http_connections_rejected_total{reason=max_connections|fd_limit} and
// paypath_http_accept_errors_total{error=EMFILE|ENFILE|ENOBUFS|ENOMEM|other}.
//
// Handlers come in two forms. A Handler (synchronous) runs on one of `threads` I/O threads and returns the
// response; while it blocks, its thread serves nobody else. An AsyncHandler is called on an I/O thread with
// a Responder and returns at once; the response is written when Responder::Send is called (from any
// thread), so any number of requests can wait for their answers on a few threads. The server's limits and
// timeouts are the same for both; a request waiting for its answer has no read or write deadline (the
// handler bounds it: the api's bounded queue, store timeouts), and the response must then be written within
// read_timeout. The destructor first waits (up to drain_timeout) for every outstanding Responder to
// answer or be dropped; a Responder still held after that must not be used (its server is gone), so an
// owner whose requests may wait longer (the api: a batch on a hung database) calls Drain, ends what holds
// them, and only then destroys the server.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "common/result.h"
#include "http/message.h"

namespace paypath::http {

struct ServerOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 8080;  // 0: pick a free port (see Server::port())
  int threads = 16;
  // Names the listener in metrics and logs ("api", "ops", "metrics"). A fixed word, never user input.
  std::string name = "api";
  size_t body_limit = 16 * 1024;
  size_t header_limit = 8 * 1024;
  // 10 s: a legitimate client sends a ≤ 24 KiB request in milliseconds; a trickling one is cut off soon.
  std::chrono::milliseconds read_timeout{10000};
  // 75 s (nginx's keepalive_timeout): longer than the 60 s idle timeout of common load balancers, so the
  // balancer, not us, closes a pooled connection first and never sends on one we just closed; short
  // enough that abandoned client pools give their slots back within a minute or so.
  std::chrono::milliseconds idle_timeout{75000};
  // 4096 open connections. Each idle one costs a descriptor and ~3 KiB of memory (13.7 MiB of RSS for
  // 5,000, measured by tests/http_limits_test.cc), up to ~30 KiB while a maximal request sits in its read
  // buffer: 4096 is 12-120 MiB. It is 128 times the 32 handler threads that actually serve requests, room
  // for many clients' keep-alive pools; and 4096 +
  // fd_reserve fits a soft RLIMIT_NOFILE that Start() can raise without privileges (systemd's hard limit
  // is 524288). Beyond it, refusing with a 503 is cheaper for everyone than queueing.
  int max_connections = 4096;
  // Descriptors the rest of the process needs besides this listener's connections: the PostgreSQL pool
  // (threads + 2), Redis, logs, the other listener and connections being refused. 512 covers 256 handler
  // threads (the flag's maximum) with room to spare.
  int fd_reserve = 512;
  // How long the destructor waits for requests still waiting for their answers (see above).
  std::chrono::milliseconds drain_timeout{5000};
};

using Handler = std::function<HttpResponse(const HttpRequest&)>;
using AsyncHandler = std::function<void(const HttpRequest&, ResponderPtr)>;

class Server {
 public:
  // Binds and starts serving on background threads. kUnavailable if the address cannot be bound,
  // kInvalidArgument for a bad address or limits.
  // Raises the process's soft RLIMIT_NOFILE (up to the hard limit) to fit max_connections + fd_reserve;
  // if the hard limit is lower, logs fd_limit_below_max_connections and keeps serving (accept errors then
  // refuse and back off as described above).
  static Result<std::unique_ptr<Server>> Start(const ServerOptions& options, AsyncHandler handler);
  // The synchronous form: the handler's return value is sent at once.
  static Result<std::unique_ptr<Server>> Start(const ServerOptions& options, Handler handler);
  virtual ~Server() = default;  // stops accepting, closes connections, joins threads
  virtual uint16_t port() const = 0;
  // Waits up to `timeout` for every outstanding Responder to answer or be dropped, and returns how many are
  // still outstanding. The server keeps serving meanwhile, so a caller can then end what still holds
  // requests (the api stops its store's batches, which answers them) before destroying the server.
  virtual int Drain(std::chrono::milliseconds timeout) = 0;
};

}  // namespace paypath::http
