// Registers this component's paypath subcommands (`relay`), plus flag helpers the ledger's commands share.
#pragma once

#include <memory>
#include <string>

#include "common/result.h"

namespace CLI {
class App;
}

namespace paypath::http {
class MetricsServer;
}

namespace paypath::outbox {

void AddCommands(CLI::App& app);

// Starts the /metrics + /healthz server for --metrics-listen. "" means no server (the default: a worker
// started by hand or by a test needs none); "host:0" binds a free port, logged as metrics_listening.
// Errors: kInvalidArgument (not host:port), kUnavailable (cannot bind).
Result<std::unique_ptr<http::MetricsServer>> StartMetricsServer(const std::string& listen);

}  // namespace paypath::outbox
