// `paypath prove`: flags and settings for the proof run (prove.h).
#include <CLI/CLI.hpp>
#include <memory>

#include "chaos/prove.h"
#include "common/cli.h"

namespace paypath::chaos {

void AddProveCommand(CLI::App& app) {
  auto o = std::make_shared<ProveOptions>();
  CLI::App* cmd = app.add_subcommand(
      "prove", "Run logical charges through api, proxy, relay and consumer with faults injected, then judge "
               "from the data and metrics that each moved money exactly once");
  // Settings with secrets come from the environment (a flag's value is visible to every local user in ps);
  // the flags exist for completeness.
  cmd->add_option("--pg-admin-url", o->pg_admin_url,
                  "PostgreSQL URL of a role that may create databases; only its server is used (the run drops and "
                  "creates its own --database there)")
      ->envname("PAYPATH_PG_ADMIN_URL")->required();
  cmd->add_option("--redis-url", o->redis_url, "Redis URL of the api's user")->envname("PAYPATH_REDIS_URL");
  cmd->add_option("--relay-amqp-url", o->relay_amqp_url, "RabbitMQ URL of the relay's user")
      ->envname("PAYPATH_RELAY_AMQP_URL")->required();
  cmd->add_option("--consumer-amqp-url", o->consumer_amqp_url, "RabbitMQ URL of the consumer's user")
      ->envname("PAYPATH_CONSUMER_AMQP_URL")->required();
  cmd->add_option("--operator-amqp-url", o->operator_amqp_url, "RabbitMQ URL of the operator's user (the audit)")
      ->envname("PAYPATH_OPERATOR_AMQP_URL")->required();
  cmd->add_option("--admin-amqp-url", o->admin_amqp_url,
                  "RabbitMQ URL of the admin's user (declares the run's queue, deletes it after a pass)")
      ->envname("PAYPATH_ADMIN_AMQP_URL")->required();
  cmd->add_option("--api-keys", o->api_keys, "key:tenant pairs; the first is used")->envname("PAYPATH_API_KEYS")
      ->required();
  cmd->add_option("--database", o->prove_db,
                  "Database dropped and re-created for the run: paypath_prove followed by [a-z0-9_]")
      ->capture_default_str();
  cmd->add_option("--report", o->report_dir, "Report folder")->capture_default_str();
  cmd->add_option("--operations", o->operations, "Logical charge operations")->capture_default_str()
      ->check(CLI::Range(1, 1000000));
  cmd->add_option("--concurrency", o->concurrency, "Concurrent client workers")->capture_default_str()
      ->check(CLI::Range(1, 512));
  cmd->add_option("--duplicates", o->duplicate_share, "Share of operations sent again after finishing")
      ->capture_default_str()->check(CLI::Range(0.0, 1.0));
  cmd->add_option("--concurrent-duplicates", o->concurrent_duplicate_share,
                  "Share of operations sent twice at the same moment")->capture_default_str()->check(CLI::Range(0.0, 1.0));
  cmd->add_option("--eat-response", o->eat_response, "Share of responses the proxy eats")->capture_default_str()
      ->check(CLI::Range(0.0, 1.0));
  cmd->add_flag("!--no-relay-crash", o->crash_relay, "Do not crash the relay");
  cmd->add_flag("!--no-consumer-crash", o->crash_consumer, "Do not crash the consumer");
  cmd->add_flag("!--no-db-faults", o->db_faults,
                "Do not cut COMMIT answers, restart PostgreSQL or make the ledger database read-only");
  cmd->add_option("--commit-cuts", o->commit_cuts, "COMMIT answers cut after reaching PostgreSQL")
      ->capture_default_str()->check(CLI::Range(0, 1000));
  cmd->add_option("--read-only-seconds", o->read_only_s, "Seconds the ledger database is read-only")
      ->capture_default_str()->check(CLI::Range(0.5, 600.0));
  cmd->add_option("--seed", o->seed, "Seed for keys, amounts, duplicates and the proxy")->capture_default_str();
  cmd->add_option("--quiesce-timeout", o->quiesce_timeout_s, "Seconds to wait for the ledger to catch up")
      ->capture_default_str();
  cmd->add_option("--metrics-listen", o->metrics_listen, "host:port serving the client's /metrics during the run");
  cmd->add_option("--scenario", o->scenario, "default | outage | backlog | ha (on scripts/stack-ha)")
      ->capture_default_str()->check(CLI::IsMember({"default", "outage", "backlog", "ha"}));
  cmd->add_option("--ha-rate", o->ha_rate, "ha: offered charges per second")->capture_default_str()
      ->check(CLI::Range(1.0, 10000.0));
  cmd->add_option("--ha-faults", o->ha_faults,
                  "ha: comma-separated faults in order (queue-leader, rabbit-follower, pg-primary, etcd, api, relay, "
                  "consumer, pg-partition)")->capture_default_str();
  cmd->add_option("--ha-tail", o->ha_tail_s, "ha: seconds of load after the last fault")->capture_default_str()
      ->check(CLI::Range(0.0, 600.0));
  cmd->add_option("--outage-rate", o->outage_rate, "outage: offered charges per second")->capture_default_str()
      ->check(CLI::Range(1.0, 100000.0));
  cmd->add_option("--outage-seconds", o->outage_seconds, "outage: seconds the api is down")->capture_default_str()
      ->check(CLI::Range(0.1, 600.0));
  cmd->add_option("--backlog-charges", o->backlog_charges, "backlog: charges accepted while the broker is down")
      ->capture_default_str()->check(CLI::Range(1, 1000000));
  cmd->add_option("--relay-rate", o->relay_rate, "backlog: relay rate limit, events per second")
      ->capture_default_str()->check(CLI::Range(1.0, 1000000.0));
  cmd->callback([o] { cli::SetExitCode(RunProve(*o)); });
}

}  // namespace paypath::chaos
