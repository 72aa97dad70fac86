#include "chaos/report.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace paypath::chaos {
namespace {

std::string Esc(const std::string& s) {
  std::string o;
  for (char c : s) {
    switch (c) {
      case '<': o += "&lt;"; break;
      case '>': o += "&gt;"; break;
      case '&': o += "&amp;"; break;
      case '"': o += "&quot;"; break;
      default: o += c;
    }
  }
  return o;
}

std::string Num(double v) {
  char b[32];
  if (std::fabs(v - std::round(v)) < 1e-9) std::snprintf(b, sizeof b, "%.0f", v);
  else std::snprintf(b, sizeof b, "%.2f", v);
  std::string out = b;
  if (out.find('.') != std::string::npos) {
    while (out.back() == '0') out.pop_back();
    if (out.back() == '.') out.pop_back();
  }
  return out;
}

constexpr int kW = 640, kH = 260, kL = 56, kR = 16, kT = 30, kB = 40;
const char* kColors[] = {"#2b6cb0", "#c05621", "#2f855a", "#6b46c1"};

double Px(double x, const Axis& a) { return kL + x / a.max * (kW - kL - kR); }
double Py(double y, const Axis& a) { return kH - kB - y / a.max * (kH - kT - kB); }

// The frame, the title, the axis labels and the y ticks; the x ticks unless `x_ticks` is false (bars label
// their own categories).
std::string Frame(const std::string& title, const std::string& xlabel, const Axis& x, const Axis& y,
                  bool x_ticks = true) {
  std::string s = "<svg xmlns='http://www.w3.org/2000/svg' width='" + std::to_string(kW) + "' height='" +
                  std::to_string(kH) + "' font-family='sans-serif' font-size='11'>";
  s += "<text x='" + std::to_string(kW / 2) + "' y='16' text-anchor='middle' font-size='13'>" + Esc(title) + "</text>";
  int x0 = kL, y0 = kH - kB, x1 = kW - kR, y1 = kT;
  s += "<line x1='" + std::to_string(x0) + "' y1='" + std::to_string(y0) + "' x2='" + std::to_string(x1) + "' y2='" +
       std::to_string(y0) + "' stroke='#333'/>";
  s += "<line x1='" + std::to_string(x0) + "' y1='" + std::to_string(y0) + "' x2='" + std::to_string(x0) + "' y2='" +
       std::to_string(y1) + "' stroke='#333'/>";
  char b[200];
  // Ticks at whole multiples of the step (counted, not accumulated, so 0.1 steps do not drift).
  for (int i = 0; i * y.step <= y.max + 1e-9; ++i) {
    double v = i * y.step;
    std::snprintf(b, sizeof b, "<text x='%d' y='%.1f' text-anchor='end'>%s</text>", x0 - 4, Py(v, y) + 4, Num(v).c_str());
    s += b;
    if (i > 0) {
      std::snprintf(b, sizeof b, "<line x1='%d' y1='%.1f' x2='%d' y2='%.1f' stroke='#eee'/>", x0 + 1, Py(v, y), x1, Py(v, y));
      s += b;
    }
  }
  if (x_ticks) {
    for (int i = 0; i * x.step <= x.max + 1e-9; ++i) {
      double v = i * x.step;
      std::snprintf(b, sizeof b, "<text x='%.1f' y='%d' text-anchor='middle'>%s</text>", Px(v, x), y0 + 14, Num(v).c_str());
      s += b;
    }
  }
  s += "<text x='" + std::to_string((x0 + x1) / 2) + "' y='" + std::to_string(kH - 6) + "' text-anchor='middle'>" +
       Esc(xlabel) + "</text>";
  return s;
}

}  // namespace

Axis NiceAxis(double data_max, bool integer, int max_ticks) {
  if (!(data_max > 0)) data_max = integer ? 1 : 1;
  max_ticks = std::max(1, max_ticks);
  double raw = data_max / max_ticks;
  double p = std::pow(10.0, std::floor(std::log10(raw)));
  double step = p * 10;
  for (double m : {1.0, 2.0, 5.0, 10.0}) {
    if (m * p >= raw * (1 - 1e-9)) {
      step = m * p;
      break;
    }
  }
  if (integer) step = std::max(1.0, std::round(step));
  Axis a;
  a.step = step;
  a.max = std::max(step, std::ceil(data_max / step - 1e-9) * step);
  return a;
}

std::string SvgHistogram(const std::vector<double>& values, int bins, double max_value, const std::string& title,
                         const std::string& xlabel) {
  if (max_value <= 0) max_value = 1;
  for (double v : values) max_value = std::max(max_value, v);
  // The bins span the whole (rounded) axis, so bin edges fall on round values too.
  Axis x = NiceAxis(max_value, false);
  std::vector<int> counts(bins, 0);
  for (double v : values) {
    int b = std::min(bins - 1, static_cast<int>(v / x.max * bins));
    counts[std::max(0, b)]++;
  }
  Axis y = NiceAxis(*std::max_element(counts.begin(), counts.end()), true);
  std::string s = Frame(title + " (n=" + std::to_string(values.size()) + ")", xlabel, x, y);
  double bw = static_cast<double>(kW - kL - kR) / bins;
  for (int i = 0; i < bins; ++i) {
    double h = static_cast<double>(counts[i]) / y.max * (kH - kT - kB);
    char rect[200];
    std::snprintf(rect, sizeof rect, "<rect x='%.1f' y='%.1f' width='%.1f' height='%.1f' fill='%s'/>", kL + i * bw + 1,
                  kH - kB - h, std::max(1.0, bw - 2), h, kColors[0]);
    s += rect;
  }
  return s + "</svg>";
}

std::string SvgBars(const std::map<int, int>& counts, const std::string& title, const std::string& xlabel) {
  int maxk = 1, ymax = 1;
  for (auto [k, v] : counts) {
    maxk = std::max(maxk, k);
    ymax = std::max(ymax, v);
  }
  Axis y = NiceAxis(ymax, true);
  std::string s = Frame(title, xlabel, Axis{static_cast<double>(maxk + 1), 1}, y, /*x_ticks=*/false);
  double bw = static_cast<double>(kW - kL - kR) / (maxk + 1);
  // One integer label per category (attempts 1..max), under its bar's centre.
  for (int k = 1; k <= maxk; ++k) {
    char t[120];
    std::snprintf(t, sizeof t, "<text x='%.1f' y='%d' text-anchor='middle'>%d</text>", kL + (k + 0.5) * bw, kH - kB + 14, k);
    s += t;
  }
  for (auto [k, v] : counts) {
    double h = static_cast<double>(v) / y.max * (kH - kT - kB);
    char rect[240];
    std::snprintf(rect, sizeof rect,
                  "<rect x='%.1f' y='%.1f' width='%.1f' height='%.1f' fill='%s'><title>%d attempts: %d</title></rect>",
                  kL + k * bw + 1, kH - kB - h, std::max(1.0, bw - 2), h, kColors[2], k, v);
    s += rect;
  }
  return s + "</svg>";
}

std::string SvgLines(const std::vector<std::pair<std::string, std::vector<std::pair<double, double>>>>& series,
                     const std::string& title, const std::string& xlabel, const std::vector<FaultMarker>& faults,
                     bool integer_y) {
  double xmax = 1, ymax = 0;
  for (const auto& [name, pts] : series)
    for (auto [x, y] : pts) {
      xmax = std::max(xmax, x);
      ymax = std::max(ymax, y);
    }
  for (const auto& f : faults) xmax = std::max({xmax, f.t0, f.t1});
  Axis xa = NiceAxis(xmax, false, 8), ya = NiceAxis(ymax, integer_y);
  std::string s = Frame(title, xlabel, xa, ya);
  // Faults under the data: a shaded band for a window, a dashed line for an instant, each labelled at the top.
  // Instants of one kind within 40 px of each other share one label ("COMMIT answer cut x3").
  std::vector<std::pair<double, std::string>> labels;  // x, text
  std::vector<int> repeats;
  for (const auto& f : faults) {
    char b[400];
    double x0 = Px(f.t0, xa), x1 = Px(std::max(f.t0, f.t1), xa);
    bool band = x1 - x0 >= 2;
    if (band) {
      std::snprintf(b, sizeof b,
                    "<rect class='fault' x='%.1f' y='%d' width='%.1f' height='%d' fill='#e53e3e' fill-opacity='0.15'>"
                    "<title>%s</title></rect>",
                    x0, kT, x1 - x0, kH - kT - kB, Esc(f.label).c_str());
    } else {
      std::snprintf(b, sizeof b,
                    "<line class='fault' x1='%.1f' y1='%d' x2='%.1f' y2='%d' stroke='#e53e3e' stroke-dasharray='3,2'>"
                    "<title>%s</title></line>",
                    x0, kT, x0, kH - kB, Esc(f.label).c_str());
    }
    s += b;
    bool merged = false;
    for (size_t k = 0; !band && k < labels.size(); ++k) {
      if (labels[k].second == f.label && std::fabs(labels[k].first - x0) < 40) {
        repeats[k]++;
        merged = true;
        break;
      }
    }
    if (!merged) {
      labels.emplace_back(x0, f.label);
      repeats.push_back(1);
    }
  }
  for (size_t k = 0; k < labels.size(); ++k) {
    char b[300];
    std::string text = labels[k].second + (repeats[k] > 1 ? " x" + std::to_string(repeats[k]) : "");
    std::snprintf(b, sizeof b, "<text x='%.1f' y='%d' fill='#c53030' font-size='9'>%s</text>", labels[k].first + 2,
                  kT + 9 + 10 * static_cast<int>(k % 4), Esc(text).c_str());
    s += b;
  }
  int i = 0;
  for (const auto& [name, pts] : series) {
    // A gap of over 2 s between samples (the sampler could not reach the database: a restart, a failover)
    // is drawn as a gap, not as a straight line across it.
    const char* color = kColors[i % 4];
    std::string path;
    double last_x = -1e9;
    auto flush = [&] {
      if (!path.empty())
        s += "<polyline fill='none' stroke='" + std::string(color) + "' stroke-width='1.5' points='" + path + "'/>";
      path.clear();
    };
    for (auto [x, y] : pts) {
      if (x - last_x > 2) flush();
      last_x = x;
      char p[64];
      std::snprintf(p, sizeof p, "%s%.1f,%.1f", path.empty() ? "" : " ", Px(x, xa), Py(y, ya));
      path += p;
    }
    flush();
    s += "<text x='" + std::to_string(kW - kR - 8) + "' y='" + std::to_string(kT + 12 + 13 * i) + "' fill='" + color +
         "' text-anchor='end'>" + Esc(name) + "</text>";
    i++;
  }
  return s + "</svg>";
}

std::string RenderVerdictTable(const ReportData& d) {
  size_t w0 = 10, w1 = 5, w2 = 8;
  for (const auto& r : d.verdict) {
    w0 = std::max(w0, r.name.size());
    w1 = std::max(w1, r.value.size());
    w2 = std::max(w2, r.expected.size());
  }
  auto pad = [](std::string s, size_t w) {
    s.resize(std::max(w, s.size()), ' ');
    return s;
  };
  std::string out = pad("check", w0) + "  " + pad("value", w1) + "  " + pad("expected", w2) + "  result  source\n";
  for (const auto& r : d.verdict) {
    out += pad(r.name, w0) + "  " + pad(r.value, w1) + "  " + pad(r.expected, w2) + "  " +
           pad(r.expected.empty() ? "info" : (r.ok ? "ok" : "DIFFERS"), 6) + "  " + r.source + "\n";
  }
  if (!d.steps.empty()) out += "\nscenario steps:\n";
  for (const auto& s : d.steps) out += "  [" + std::string(s.ok ? "ok" : "FAIL") + "] " + s.name + ": " + s.detail + "\n";
  out += std::string("\nVERDICT: ") + (d.pass ? "PASS — every logical operation moved money exactly once" : "FAIL") + "\n";
  return out;
}

std::string RenderHtml(const ReportData& d) {
  std::string h = "<!doctype html><html><head><meta charset='utf-8'><title>" + Esc(d.title) +
                  "</title><style>body{font-family:sans-serif;max-width:980px;margin:24px auto;color:#222}"
                  "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}"
                  ".ok{color:#2f855a;font-weight:bold}.bad{color:#c53030;font-weight:bold}.info{color:#666}"
                  "figure{margin:16px 0}</style></head><body>";
  h += "<h1>" + Esc(d.title) + "</h1>";
  h += std::string("<p class='") + (d.pass ? "ok" : "bad") + "'>VERDICT: " +
       (d.pass ? "PASS — every logical operation moved money exactly once" : "FAIL — see the rows marked DIFFERS") +
       "</p>";
  h += "<h2>Verdict</h2><table><tr><th>check</th><th>value</th><th>expected</th><th>result</th><th>source</th></tr>";
  for (const auto& r : d.verdict) {
    std::string cls = r.expected.empty() ? "info" : (r.ok ? "ok" : "bad");
    std::string res = r.expected.empty() ? "info" : (r.ok ? "ok" : "DIFFERS");
    h += "<tr><td>" + Esc(r.name) + "</td><td>" + Esc(r.value) + "</td><td>" + Esc(r.expected) + "</td><td class='" +
         cls + "'>" + res + "</td><td>" + Esc(r.source) + "</td></tr>";
  }
  h += "</table>";
  if (!d.steps.empty()) {
    h += "<h2>Scenario steps</h2><table><tr><th>step</th><th>result</th><th>evidence</th></tr>";
    for (const auto& s : d.steps)
      h += "<tr><td>" + Esc(s.name) + "</td><td class='" + (s.ok ? "ok'>ok" : "bad'>FAIL") + "</td><td>" +
           Esc(s.detail) + "</td></tr>";
    h += "</table>";
  }
  h += "<h2>Retries</h2><figure>" + SvgHistogram(d.retry_delays_ms, 30, 0, "Chosen wait before each retry", "ms") +
       "</figure>";
  h += "<figure>" + SvgBars(d.attempts_per_operation, "Attempts per client call", "attempts") + "</figure>";
  if (!d.jitter_delays_ms.empty())
    h += "<figure>" +
         SvgHistogram(d.jitter_delays_ms, 10, d.jitter_window_ms,
                      "Synchronized failures: first-retry waits (full jitter over [0, " + Num(d.jitter_window_ms) + " ms))",
                      "ms") +
         "</figure>";
  std::vector<std::pair<double, double>> backlog, age, rate;
  for (size_t i = 0; i < d.timeline.size(); ++i) {
    const auto& p = d.timeline[i];
    backlog.emplace_back(p.t, p.outbox_backlog);
    age.emplace_back(p.t, p.outbox_oldest_age_s);
    if (i > 0) {
      double dt = p.t - d.timeline[i - 1].t;
      if (dt > 0) rate.emplace_back(p.t, (p.effects_total - d.timeline[i - 1].effects_total) / dt);
    }
  }
  h += "<h2>Outbox and ledger over time</h2>";
  if (!d.faults.empty()) {
    h += "<p>Injected faults (shaded or dashed in red on every time line):</p><table><tr><th>from (s)</th><th>to "
         "(s)</th><th>fault</th></tr>";
    for (const auto& f : d.faults)
      h += "<tr><td>" + Num(std::round(f.t0 * 100) / 100) + "</td><td>" +
           (f.t1 > f.t0 ? Num(std::round(f.t1 * 100) / 100) : std::string("instant")) + "</td><td>" + Esc(f.label) +
           "</td></tr>";
    h += "</table>";
  }
  h += "<figure>" +
       SvgLines({{"outbox backlog (rows)", backlog}}, "Outbox backlog", "seconds since start", d.faults, true) +
       "</figure>";
  h += "<figure>" + SvgLines({{"oldest unpublished row (s)", age}}, "Outbox lag", "seconds since start", d.faults) +
       "</figure>";
  h += "<figure>" + SvgLines({{"ledger effects per second", rate}}, "Effects applied per second", "seconds since start",
                d.faults) +
       "</figure>";
  for (const auto& [heading, svg] : d.figures) h += "<h2>" + Esc(heading) + "</h2><figure>" + svg + "</figure>";
  if (!d.notes.empty()) {
    h += "<h2>Notes</h2><ul>";
    for (const auto& n : d.notes) h += "<li>" + Esc(n) + "</li>";
    h += "</ul>";
  }
  h += "<p>Files: transcript.jsonl (one line per client attempt), metrics/*.prom (final /metrics of each "
       "process), logs/*.log, verdict.json.</p></body></html>";
  return h;
}

}  // namespace paypath::chaos
