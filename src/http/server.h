// The HTTP/1.1 server: moves bytes between sockets and a handler, with limits and timeouts everywhere.
// The handler is a function from Request to Response that never sees a socket (src/api).
//
// Limits (each answered, then the connection is closed):
//   body over body_limit            -> 413 problem+json
//   header block over header_limit  -> 431 problem+json (this also bounds the header count)
//   malformed request               -> 400 problem+json
//   request not complete within read_timeout (slow or stalled clients, e.g. a header sent byte by byte)
//                                   -> connection closed
// The handler runs on one of `threads` I/O threads and may block (it talks to PostgreSQL); the thread
// count is therefore also the bound on concurrent handler calls.
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
  size_t body_limit = 16 * 1024;
  size_t header_limit = 8 * 1024;
  std::chrono::milliseconds read_timeout{10000};
};

using Handler = std::function<HttpResponse(const HttpRequest&)>;

class Server {
 public:
  // Binds and starts serving on background threads. kUnavailable if the address cannot be bound.
  static Result<std::unique_ptr<Server>> Start(const ServerOptions& options, Handler handler);
  virtual ~Server() = default;  // stops accepting, closes connections, joins threads
  virtual uint16_t port() const = 0;
};

}  // namespace paypath::http
