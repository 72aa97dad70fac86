#include "outbox/command.h"

#include <CLI/CLI.hpp>

#include "common/cli.h"
#include "common/clock.h"
#include "common/config.h"
#include "common/failpoints.h"
#include "common/log.h"
#include "common/random.h"
#include "http/metrics_server.h"
#include "outbox/relay.h"
#include "common/worker.h"

namespace paypath::outbox {

Result<std::unique_ptr<http::MetricsServer>> StartMetricsServer(const std::string& listen) {
  if (listen.empty()) return std::unique_ptr<http::MetricsServer>();
  auto hp = ParseHostPort(listen);
  if (!hp.ok()) return hp.error();
  auto server = http::MetricsServer::Start(hp->host, hp->port);
  if (!server.ok()) return server.error();
  log::Info("metrics_listening", {{"host", hp->host}, {"port", static_cast<int>(server.value()->port())}});
  return std::move(server.value());
}

namespace {

struct RelayFlags {
  std::string pg_url;
  std::string amqp_url;
  std::string metrics_listen;
  std::string queue = amqp::kDefaultQueue;
  int delivery_limit = amqp::kDefaultDeliveryLimit;
  int batch = 100;
  double rate = 2000;
  double burst = 2000;
  double retention_s = 86400;
  int purge_batch = 1000;
  int idle_poll_ms = 5;
};

int RunRelay(const RelayFlags& f) {
  log::SetComponent("relay");
  Status fp = failpoints::ConfigureFromEnv();
  if (!fp.ok()) {
    log::Error("bad_failpoints", {{"error", fp.error().ToString()}});
    return 2;
  }
  if (f.pg_url.empty() || f.amqp_url.empty()) {
    log::Error("missing_settings",
               {{"error", "--pg-url and --amqp-url (or PAYPATH_PG_URL, PAYPATH_RELAY_AMQP_URL)"}});
    return 2;
  }
  if (f.batch < 1 || f.rate <= 0 || f.burst < 1 || f.retention_s < 0 || f.purge_batch < 1) {
    log::Error("bad_flags", {{"error", "--batch >= 1, --rate > 0, --burst >= 1, --retention >= 0, --purge-batch >= 1"}});
    return 2;
  }
  auto metrics = StartMetricsServer(f.metrics_listen);
  if (!metrics.ok()) {
    log::Error("metrics_listen_failed", {{"error", metrics.error().ToString()}});
    return 2;
  }
  RelayOptions o;
  o.pg_url = f.pg_url;
  o.amqp.url = f.amqp_url;
  o.topology.queue = f.queue;
  o.topology.delivery_limit = f.delivery_limit;
  o.batch = f.batch;
  o.rate = f.rate;
  o.burst = f.burst;
  o.retention = std::chrono::seconds(static_cast<int64_t>(f.retention_s));
  o.purge_batch = f.purge_batch;
  o.idle_poll = std::chrono::milliseconds(f.idle_poll_ms);
  std::atomic<bool>& stop = worker::InstallStopHandlers();
  Relay relay(std::move(o), SystemClock::Instance(), SystemRandom::Instance());
  Status s = relay.Run(stop);
  return s.ok() ? 0 : 1;
}

}  // namespace

void AddCommands(CLI::App& app) {
  auto flags = std::make_shared<RelayFlags>();
  CLI::App* relay = app.add_subcommand(
      "relay", "Publish committed outbox rows to RabbitMQ (publisher confirms), rate limited; purge old rows");
  relay->add_option("--pg-url", flags->pg_url, "PostgreSQL URL")->envname("PAYPATH_PG_URL");
  relay->add_option("--amqp-url", flags->amqp_url,
                    "RabbitMQ URL of the relay's user (publish to paypath.events only) amqp://user:pass@host:port/vhost")
      ->envname("PAYPATH_RELAY_AMQP_URL");
  relay->add_option("--metrics-listen", flags->metrics_listen,
                    "host:port for GET /metrics and /healthz (port 0 picks one; empty = no server)")
      ->envname("PAYPATH_METRICS_LISTEN");
  relay->add_option("--queue", flags->queue, "Ledger queue name (dead letters go to <queue>.dlq)")
      ->capture_default_str();
  relay->add_option("--delivery-limit", flags->delivery_limit,
                    "Optional quorum-queue delivery limit (0 = none), as the consumer declares it")
      ->capture_default_str();
  relay->add_option("--batch", flags->batch, "Rows per claim/publish/mark transaction")->capture_default_str();
  relay->add_option("--rate", flags->rate, "Token bucket: events per second")->capture_default_str();
  relay->add_option("--burst", flags->burst, "Token bucket: burst size (events)")->capture_default_str();
  relay->add_option("--retention", flags->retention_s, "Seconds to keep published rows before purging")
      ->capture_default_str();
  relay->add_option("--purge-batch", flags->purge_batch, "Rows deleted per purge statement")->capture_default_str();
  relay->add_option("--idle-poll-ms", flags->idle_poll_ms, "How often an idle relay looks for new rows")
      ->capture_default_str()->check(CLI::Range(1, 60000));
  relay->callback([flags] { cli::SetExitCode(RunRelay(*flags)); });
}

}  // namespace paypath::outbox
