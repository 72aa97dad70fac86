// HttpTransport: a small blocking HTTP/1.1 client over POSIX sockets (plain http only).
// Each RoundTrip opens a fresh connection and closes it afterwards. That costs a TCP handshake per
// attempt (tens of microseconds on loopback) and buys simplicity: no pool, no stale-connection retries,
// and an attempt's failure can never be confused with a previous attempt's half-dead connection.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "client/transport.h"
#include "common/clock.h"
#include "common/result.h"

namespace paypath::client {

struct HttpUrl {
  std::string host;
  uint16_t port = 80;
  std::string base_path;  // "" or "/prefix" (no trailing slash); prepended to request targets
};

// Parses "http://host[:port][/prefix]". https and userinfo are rejected (kInvalidArgument).
Result<HttpUrl> ParseHttpUrl(const std::string& url);

class HttpTransport : public Transport {
 public:
  // `clock` measures the attempt timeout; it must outlive the transport.
  HttpTransport(HttpUrl url, Clock& clock) : url_(std::move(url)), clock_(clock) {}

  // Sends `request` (Host and Content-Length added; Connection: close) and reads the response framed by
  // Content-Length, chunked encoding or connection close. Responses over 1 MiB count as kNoResponse.
  Exchange RoundTrip(const HttpRequest& request, std::chrono::milliseconds timeout) override;

 private:
  HttpUrl url_;
  Clock& clock_;
};

}  // namespace paypath::client
