#include "chaos/command.h"
#include "chaos/prove.h"

#include <signal.h>

#include <CLI/CLI.hpp>
#include <iostream>
#include <memory>

#include "chaos/fault_proxy.h"
#include "common/cli.h"
#include "common/clock.h"
#include "common/config.h"
#include "common/log.h"
#include "common/random.h"
#include "http/metrics_server.h"

namespace paypath::chaos {
namespace {

struct ProxyFlags {
  std::string listen = "127.0.0.1:8090";
  std::string upstream = "127.0.0.1:8080";
  std::string metrics_listen;
  double eat = 0, reset_before = 0, delay_probability = 0;
  int64_t delay_ms = 0;
  uint64_t seed = 1;
  std::string eat_mode = "reset";
};

int RunProxy(const ProxyFlags& f) {
  log::SetComponent("proxy");
  auto listen = ParseHostPort(f.listen);
  auto upstream = ParseHostPort(f.upstream);
  if (!listen.ok() || !upstream.ok()) {
    std::cerr << "paypath proxy: " << (!listen.ok() ? listen.error().message : upstream.error().message) << "\n";
    return 1;
  }
  ProxyOptions o;
  o.listen_host = listen->host;
  o.listen_port = listen->port;
  o.upstream_host = upstream->host;
  o.upstream_port = upstream->port;
  o.faults.eat_response = f.eat;
  o.faults.reset_before = f.reset_before;
  o.faults.delay_probability = f.delay_probability;
  o.faults.delay = std::chrono::milliseconds(f.delay_ms);
  o.faults.eat_with_reset = f.eat_mode == "reset";

  // Block the stop signals before any thread starts, so only sigwait below receives them.
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGINT);
  sigaddset(&stop, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);

  std::unique_ptr<http::MetricsServer> metrics_server;
  if (!f.metrics_listen.empty()) {
    auto hp = ParseHostPort(f.metrics_listen);
    if (!hp.ok()) {
      std::cerr << "paypath proxy: --metrics-listen: " << hp.error().message << "\n";
      return 1;
    }
    auto ms = http::MetricsServer::Start(hp->host, hp->port);
    if (!ms.ok()) {
      std::cerr << "paypath proxy: metrics server: " << ms.error().message << "\n";
      return 1;
    }
    metrics_server = std::move(ms.value());
  }

  // The seed makes the decision sequence repeatable (for requests arriving in the same order).
  SystemRandom random(f.seed);
  auto proxy = FaultProxy::Start(o, SystemClock::Instance(), random);
  if (!proxy.ok()) {
    std::cerr << "paypath proxy: " << proxy.error().message << "\n";
    return 1;
  }
  log::Info("proxy_started", {{"port", static_cast<int>(proxy.value()->port())}, {"upstream", f.upstream},
                              {"eat_response", f.eat}, {"reset_before", f.reset_before},
                              {"delay_probability", f.delay_probability}, {"delay_ms", static_cast<long>(f.delay_ms)},
                              {"seed", static_cast<long>(f.seed)},
                              {"metrics_port", metrics_server ? static_cast<int>(metrics_server->port()) : 0}});
  int sig = 0;
  sigwait(&stop, &sig);
  proxy.value()->Stop();
  auto c = proxy.value()->counts();
  log::Info("proxy_stopped", {{"requests", c.requests}, {"eaten", c.eaten}, {"resets_before", c.resets_before},
                              {"delayed", c.delayed}, {"upstream_errors", c.upstream_errors}});
  return 0;
}

}  // namespace

void AddCommands(CLI::App& app) {
  AddProveCommand(app);
  auto f = std::make_shared<ProxyFlags>();
  CLI::App* cmd = app.add_subcommand(
      "proxy", "HTTP-aware fault proxy: eats responses, resets connections and adds latency, seeded, per request");
  cmd->add_option("--listen", f->listen, "host:port to accept clients on")->capture_default_str();
  cmd->add_option("--upstream", f->upstream, "host:port of the API")->capture_default_str();
  cmd->add_option("--eat-response", f->eat, "Probability: forward, then drop the complete response")
      ->check(CLI::Range(0.0, 1.0))->capture_default_str();
  cmd->add_option("--eat-mode", f->eat_mode, "How to drop it: reset (RST) or close (FIN)")
      ->check(CLI::IsMember({"reset", "close"}))->capture_default_str();
  cmd->add_option("--reset-before", f->reset_before, "Probability: reset the client before forwarding")
      ->check(CLI::Range(0.0, 1.0))->capture_default_str();
  cmd->add_option("--delay-ms", f->delay_ms, "Latency added to delayed requests")->capture_default_str();
  cmd->add_option("--delay-probability", f->delay_probability, "Probability that a request is delayed")
      ->check(CLI::Range(0.0, 1.0))->capture_default_str();
  cmd->add_option("--seed", f->seed, "Seed of the fault decisions")->capture_default_str();
  cmd->add_option("--metrics-listen", f->metrics_listen, "host:port for GET /metrics (empty: none)");
  cmd->callback([f] { cli::SetExitCode(RunProxy(*f)); });
}

}  // namespace paypath::chaos
