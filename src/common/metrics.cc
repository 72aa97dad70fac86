#include "common/metrics.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <sstream>

#include "common/log.h"

namespace paypath::metrics {
namespace {

std::string RenderLabels(const Labels& labels, const std::string& extra_key = "", const std::string& extra = "") {
  if (labels.empty() && extra_key.empty()) return "";
  std::string out = "{";
  bool first = true;
  auto add = [&](const std::string& k, const std::string& v) {
    if (!first) out += ",";
    first = false;
    out += k;
    out += "=\"";
    for (char c : v) {
      if (c == '\\' || c == '"') out += '\\';
      if (c == '\n') {
        out += "\\n";
        continue;
      }
      out += c;
    }
    out += "\"";
  };
  for (const auto& [k, v] : labels) add(k, v);
  if (!extra_key.empty()) add(extra_key, extra);
  out += "}";
  return out;
}

std::string FormatValue(double v) {
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  if (std::isnan(v)) return "NaN";
  if (v == std::floor(v) && std::fabs(v) < 1e15) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.0f", v);
    return buf;
  }
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.9g", v);
  return buf;
}

}  // namespace

void Counter::Inc(double n) {
  double cur = value_.load(std::memory_order_relaxed);
  while (!value_.compare_exchange_weak(cur, cur + n, std::memory_order_relaxed)) {
  }
}

void Gauge::Add(double v) {
  double cur = value_.load(std::memory_order_relaxed);
  while (!value_.compare_exchange_weak(cur, cur + v, std::memory_order_relaxed)) {
  }
}

Histogram::Histogram(std::vector<double> bounds) : bounds_(std::move(bounds)), counts_(bounds_.size() + 1, 0) {}

void Histogram::Observe(double v) {
  size_t i = std::lower_bound(bounds_.begin(), bounds_.end(), v) - bounds_.begin();
  std::lock_guard lock(mu_);
  counts_[i]++;
  sum_ += v;
  count_++;
}

Histogram::Snapshot Histogram::Read() const {
  std::lock_guard lock(mu_);
  Snapshot s;
  s.bounds = bounds_;
  uint64_t acc = 0;
  for (uint64_t c : counts_) {
    acc += c;
    s.cumulative.push_back(acc);
  }
  s.sum = sum_;
  s.count = count_;
  return s;
}

std::vector<double> LatencyBuckets() {
  return {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
}

Registry::Series& Registry::GetSeries(const std::string& name, const std::string& help, Type type,
                                      const Labels& labels) {
  std::lock_guard lock(mu_);
  auto [fit, inserted] = families_.try_emplace(name);
  Family& fam = fit->second;
  if (inserted) {
    fam.type = type;
    fam.help = help;
  }
  std::string key = RenderLabels(labels);
  auto [sit, sinserted] = fam.series.try_emplace(key);
  if (sinserted) sit->second.labels = labels;
  return sit->second;
}

Counter& Registry::GetCounter(const std::string& name, const std::string& help, const Labels& labels) {
  Series& s = GetSeries(name, help, Type::kCounter, labels);
  std::lock_guard lock(mu_);
  if (!s.counter) s.counter = std::make_unique<Counter>();
  return *s.counter;
}

Gauge& Registry::GetGauge(const std::string& name, const std::string& help, const Labels& labels) {
  Series& s = GetSeries(name, help, Type::kGauge, labels);
  std::lock_guard lock(mu_);
  if (!s.gauge) s.gauge = std::make_unique<Gauge>();
  return *s.gauge;
}

Histogram& Registry::GetHistogram(const std::string& name, const std::string& help,
                                  const std::vector<double>& bounds, const Labels& labels) {
  Series& s = GetSeries(name, help, Type::kHistogram, labels);
  std::lock_guard lock(mu_);
  if (!s.histogram) s.histogram = std::make_unique<Histogram>(bounds);
  return *s.histogram;
}

std::string Registry::Render() const {
  std::lock_guard lock(mu_);
  std::string out;
  for (const auto& [name, fam] : families_) {
    out += "# HELP " + name + " " + fam.help + "\n";
    out += "# TYPE " + name + " " +
           (fam.type == Type::kCounter ? "counter" : fam.type == Type::kGauge ? "gauge" : "histogram") + "\n";
    for (const auto& [key, s] : fam.series) {
      if (s.counter) out += name + key + " " + FormatValue(s.counter->Value()) + "\n";
      if (s.gauge) out += name + key + " " + FormatValue(s.gauge->Value()) + "\n";
      if (s.histogram) {
        Histogram::Snapshot snap = s.histogram->Read();
        for (size_t i = 0; i <= snap.bounds.size(); ++i) {
          std::string le = i < snap.bounds.size() ? FormatValue(snap.bounds[i]) : "+Inf";
          out += name + "_bucket" + RenderLabels(s.labels, "le", le) + " " +
                 std::to_string(snap.cumulative[i]) + "\n";
        }
        out += name + "_sum" + key + " " + FormatValue(snap.sum) + "\n";
        out += name + "_count" + key + " " + std::to_string(snap.count) + "\n";
      }
    }
  }
  return out;
}

Registry& Registry::Default() {
  static Registry* registry = new Registry();  // never destroyed: worker threads may outlive main's statics
  return *registry;
}

std::map<std::string, double> ParseText(const std::string& text) {
  std::map<std::string, double> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    size_t sp = line.rfind(' ');
    if (sp == std::string::npos) continue;
    std::string value = line.substr(sp + 1);
    double v = 0;
    if (value == "+Inf") v = INFINITY;
    else if (value == "-Inf") v = -INFINITY;
    else v = std::strtod(value.c_str(), nullptr);
    out[line.substr(0, sp)] = v;
  }
  return out;
}

}  // namespace paypath::metrics
