// The proof run (`paypath prove`): drives logical charge operations through the whole path while
// duplicates, concurrency, lost responses and crashes are injected, waits for quiescence, and judges
// from the services' data and metrics (not the client's own counts) that every logical operation moved
// money exactly once. Writes a report folder: report.html, transcript.jsonl, metrics/*.prom, logs/.
#pragma once

#include <cstdint>
#include <string>

#include "common/result.h"

namespace paypath::chaos {

// Every secret below reaches the child processes through their environment, never their command lines.
struct ProveOptions {
  // A URL of a role that may create databases. Only the server is taken from it: the run drops and
  // creates its own database(s) named by prove_db, never the one this URL names.
  std::string pg_admin_url;
  std::string redis_url;
  // One URL per broker role: the relay publishes, the consumer consumes, the audit reads the DLQ as the
  // operator, and the admin declares (and, after a passing run, deletes) the run's own queue.
  std::string relay_amqp_url;
  std::string consumer_amqp_url;
  std::string operator_amqp_url;
  std::string admin_amqp_url;
  std::string api_keys;    // the first key's tenant is used for the run
  // Dropped (WITH FORCE) and re-created at start: only names CheckProveDatabaseName accepts.
  std::string prove_db = "paypath_prove";
  std::string report_dir = "report";
  int operations = 1000;
  int concurrency = 32;
  double duplicate_share = 0.10;             // operations sent again after they finished
  double concurrent_duplicate_share = 0.05;  // operations sent twice at the same moment
  double eat_response = 0.10;                // proxy: share of responses eaten after the charge ran
  bool crash_relay = true;                   // relay.after_publish=crash once
  bool crash_consumer = true;                // consumer.after_commit=crash once
  // The default run's database faults (prove_internal.h, DbFaults): this many COMMIT answers cut after
  // reaching PostgreSQL, one PostgreSQL restart (needs PAYPATH_STACK, the stack script), the ledger database
  // read-only for read_only_s while a backlog waits.
  bool db_faults = true;
  int commit_cuts = 3;
  double read_only_s = 3;
  uint64_t seed = 42;
  int quiesce_timeout_s = 180;
  // host:port serving the in-process client's metrics (paypath_client_*) during the run; empty: none.
  std::string metrics_listen;

  // "default": the run above. "outage": the api is stopped for a while under an offered load, once with the
  // retry budget and once without, to show retries staying bounded vs amplifying. "backlog": the broker is
  // stopped while `backlog_charges` charges are accepted, then started; the drain is shown with the relay's
  // rate limit and again without it.
  std::string scenario = "default";
  double outage_rate = 250;      // outage: offered charges per second in each phase
  double outage_seconds = 2;     // outage: how long the api is down in each phase
  int backlog_charges = 18000;   // backlog: charges accepted while the broker is down, per phase
  double relay_rate = 1000;      // backlog: the relay's token-bucket rate in the rate-limited phase
  // "ha": the run on the clustered stack (scripts/stack-ha; PAYPATH_STACK names it): two api processes
  // behind the run's round-robin, two relays and two consumers, an open-loop load of `ha_rate` charges/s
  // while `ha_faults` are injected one after the other (each waited out: the new leader named, the member
  // back), then `ha_tail_s` more seconds of load. Faults: queue-leader, rabbit-follower, pg-primary, etcd,
  // api, relay, consumer, pg-partition.
  double ha_rate = 100;
  std::string ha_faults = "queue-leader,rabbit-follower,pg-primary,etcd,api,relay,consumer,pg-partition";
  double ha_tail_s = 5;
};

// Runs the proof. Returns the process exit code: 0 when the verdict holds, 1 when any count differs or
// the audit fails (the output names what differed), 2 when the run could not be set up (or a flag was
// refused).
int RunProve(const ProveOptions& options);

// The run drops the database it is given, so it takes only its own kind of name: "paypath_prove" followed
// by up to kMaxProveSuffix lower-case letters, digits or '_'. The cap keeps room for a suffix such as
// "_ledger" within PostgreSQL's 63-byte identifiers. kInvalidArgument naming --database otherwise.
inline constexpr size_t kMaxProveSuffix = 40;
Status CheckProveDatabaseName(const std::string& name);

}  // namespace paypath::chaos

namespace CLI {
class App;
}

namespace paypath::chaos {

// Registers `paypath prove`.
void AddProveCommand(CLI::App& app);

}  // namespace paypath::chaos
