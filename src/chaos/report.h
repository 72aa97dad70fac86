// The proof run's report: a verdict table for the terminal and a self-contained report.html (inline
// SVG, no outside assets).
#pragma once

#include <map>
#include <string>
#include <vector>

namespace paypath::chaos {

struct VerdictRow {
  std::string name;
  std::string value;
  std::string expected;  // "" for informational rows
  bool ok = true;
  std::string source;    // where the number comes from: "api /metrics", "PostgreSQL", "audit", ...
};

struct StepResult {
  std::string name;
  bool ok = false;
  std::string detail;
};

struct TimePoint {
  double t = 0;             // seconds since the run started
  double outbox_backlog = 0;
  double outbox_oldest_age_s = 0;
  double effects_total = 0;  // ledger effects applied so far (from the data)
};

// An injected fault, drawn on every time line: a band from t0 to t1 (seconds since the run started), or a
// line at t0 when t1 <= t0 (an instant fault such as a cut COMMIT answer).
struct FaultMarker {
  double t0 = 0;
  double t1 = 0;
  std::string label;
};

// A chart axis from 0 to `max` with a tick every `step`: step is 1, 2 or 5 times a power of ten (at least 1
// for an integer axis, such as a count), chosen so that [0, max] holds at most `max_ticks` steps; max is the
// first multiple of step at or above the data's largest value (and at least one step).
struct Axis {
  double max = 1;
  double step = 1;
};
Axis NiceAxis(double data_max, bool integer, int max_ticks = 5);

struct ReportData {
  std::string title;
  bool pass = false;
  std::vector<VerdictRow> verdict;
  std::vector<StepResult> steps;
  std::vector<double> retry_delays_ms;        // every chosen wait before a retry
  std::map<int, int> attempts_per_operation;  // attempts -> operations
  std::vector<double> jitter_delays_ms;       // the synchronized-failure step's first-retry waits
  double jitter_window_ms = 0;
  std::vector<TimePoint> timeline;
  std::vector<FaultMarker> faults;  // drawn on the time lines
  std::vector<std::string> notes;
  // Scenario-specific charts: (heading, inline SVG).
  std::vector<std::pair<std::string, std::string>> figures;
};

std::string RenderVerdictTable(const ReportData& d);
std::string RenderHtml(const ReportData& d);

// SVG primitives, exposed for tests.
std::string SvgHistogram(const std::vector<double>& values, int bins, double max_value, const std::string& title,
                         const std::string& xlabel);
std::string SvgBars(const std::map<int, int>& counts, const std::string& title, const std::string& xlabel);
// A time line; `faults` are drawn as bands or lines over it, labelled. `integer_y` for counts.
std::string SvgLines(const std::vector<std::pair<std::string, std::vector<std::pair<double, double>>>>& series,
                     const std::string& title, const std::string& xlabel,
                     const std::vector<FaultMarker>& faults = {}, bool integer_y = false);

}  // namespace paypath::chaos
