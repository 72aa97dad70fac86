// Supervisor: runs paypath's processes (api, proxy, relay, consumer) as children for the proof run,
// restarts any that die, and keeps their metrics across restarts.
//
// A child that exits while not being stopped is counted as a crash and restarted with its
// `restart_env` (the proof run uses this to crash a process once through a failpoint and restart it
// without the failpoint). Metrics: Scrape() reads each child's /metrics; when a child dies, the last
// scrape of that incarnation is banked, so Totals() sums over incarnations. Counts incremented after
// the last scrape and before a SIGKILL are lost with the process; the proof run therefore judges
// exactness from the database and treats per-process counters of crashed processes as lower bounds.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/clock.h"

namespace paypath::chaos {

struct ChildSpec {
  std::string name;                         // "api", "relay", ...
  std::vector<std::string> args;            // after the binary: {"relay", "--queue", ...}; never secrets
  // The child's PAYPATH_* settings, exactly: every inherited PAYPATH_* variable is dropped, so a child
  // never falls back to the prover's own settings. Secrets go here, not into args (ps shows args).
  std::map<std::string, std::string> env;
  std::map<std::string, std::string> restart_env;  // replaces `env` after the first crash
  std::string metrics_hostport;             // "127.0.0.1:port" serving /metrics; empty: none
  std::string ready_path = "/healthz";      // polled on metrics_hostport until 200 after each start
  // Where the child writes its final /metrics on a graceful stop (api --final-metrics); read by Stop().
  std::string final_metrics_path;
};

class Supervisor {
 public:
  // `binary` is the paypath executable; logs go to `log_dir`/<name>.log (appended across restarts).
  Supervisor(std::string binary, std::string log_dir, Clock& clock);
  ~Supervisor();  // stops every child

  // Starts the child and waits (up to `ready_timeout`) until its ready_path answers 200. Starting a name
  // that was stopped before continues its metric totals and crash count.
  bool Start(const ChildSpec& spec, std::chrono::milliseconds ready_timeout = std::chrono::seconds(30));
  // SIGTERM, then SIGKILL after `grace`; not counted as a crash and not restarted.
  void Stop(const std::string& name, std::chrono::milliseconds grace = std::chrono::seconds(5));
  void StopAll();
  // SIGKILLs the running child (a crash on purpose, as a power loss would): the monitor counts it as a crash
  // and restarts it. False when it is not running.
  bool Kill(const std::string& name);

  // Checks every child once: reaps the dead, banks their metrics, restarts them. Called by the monitor
  // thread every 50 ms; public so tests can step it.
  void RunOnce();
  // Scrapes every live child's /metrics once.
  void Scrape();

  int Crashes(const std::string& name);
  // When each crash of `name` was noticed (within the monitor's 50 ms), oldest first.
  std::vector<std::chrono::steady_clock::time_point> CrashTimes(const std::string& name);
  // Counter totals over all incarnations of `name` ("series{labels}" -> value). Gauges are summed too and
  // are meaningful only from LastScrapeText.
  std::map<std::string, double> Totals(const std::string& name);
  // The last raw /metrics text of the current incarnation.
  std::string LastScrapeText(const std::string& name);

 private:
  struct Child {
    ChildSpec spec;
    int pid = -1;
    bool stopping = false;
    int crashes = 0;
    std::vector<std::chrono::steady_clock::time_point> crash_times;
    std::map<std::string, double> banked;
    std::map<std::string, double> last;
    std::string last_text;
  };
  int Spawn(const ChildSpec& spec, bool restarted);
  bool WaitReady(const ChildSpec& spec, std::chrono::milliseconds timeout);

  const std::string binary_;
  const std::string log_dir_;
  Clock& clock_;
  std::mutex mu_;
  std::map<std::string, std::unique_ptr<Child>> children_;  // protected by mu_
  bool done_ = false;                                        // protected by mu_
  std::thread monitor_;
};

// GET http://hostport/path with a short timeout: the status (0 when nothing answered) and the body.
int HttpGet(Clock& clock, const std::string& hostport, const std::string& path, std::string* body);

// A free loopback TCP port (bound and released; good enough for a local run).
int FreePort();

}  // namespace paypath::chaos
