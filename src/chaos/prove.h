// The proof run (`paypath prove`): drives logical charge operations through the whole path while
// duplicates, concurrency, lost responses and crashes are injected, waits for quiescence, and judges
// from the services' data and metrics (not the client's own counts) that every logical operation moved
// money exactly once. Writes a report folder: report.html, transcript.jsonl, metrics/*.prom, logs/.
#pragma once

#include <cstdint>
#include <string>

namespace paypath::chaos {

struct ProveOptions {
  std::string pg_url;      // admin URL; the run uses its own database (prove_db) on that server
  std::string redis_url;
  std::string amqp_url;
  std::string api_keys;    // the first key's tenant is used for the run
  std::string prove_db = "paypath_prove";
  std::string report_dir = "report";
  int operations = 1000;
  int concurrency = 32;
  double duplicate_share = 0.10;             // operations sent again after they finished
  double concurrent_duplicate_share = 0.05;  // operations sent twice at the same moment
  double eat_response = 0.10;                // proxy: share of responses eaten after the charge ran
  bool crash_relay = true;                   // relay.after_publish=crash once
  bool crash_consumer = true;                // consumer.after_commit=crash once
  uint64_t seed = 42;
  int quiesce_timeout_s = 180;
  // host:port serving the in-process client's metrics (paypath_client_*) during the run; empty: none.
  std::string metrics_listen;
};

// Runs the proof. Returns the process exit code: 0 when the verdict holds, 1 when any count differs or
// the audit fails (the output names what differed), 2 when the run could not be set up.
int RunProve(const ProveOptions& options);

}  // namespace paypath::chaos

namespace CLI {
class App;
}

namespace paypath::chaos {

// Registers `paypath prove`.
void AddProveCommand(CLI::App& app);

}  // namespace paypath::chaos
