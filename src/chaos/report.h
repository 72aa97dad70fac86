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
std::string SvgLines(const std::vector<std::pair<std::string, std::vector<std::pair<double, double>>>>& series,
                     const std::string& title, const std::string& xlabel);

}  // namespace paypath::chaos
