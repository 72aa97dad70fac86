// A minimal HTTP server for worker processes (relay, consumer, proxy): GET /metrics (the default
// registry in Prometheus text format), GET /healthz. Runs on its own thread; stops on destruction.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "common/result.h"

namespace paypath::http {

class MetricsServer {
 public:
  // Binds host:port (port 0 picks a free one; see port()). kUnavailable if the address cannot be bound.
  static Result<std::unique_ptr<MetricsServer>> Start(const std::string& host, uint16_t port);
  virtual ~MetricsServer() = default;
  virtual uint16_t port() const = 0;
};

}  // namespace paypath::http
