// Prometheus metrics: counters, gauges and histograms with labels, rendered in the text exposition
// format (version 0.0.4). Get*() registers a series on first use and returns a reference that stays
// valid for the registry's lifetime; hot paths should look a series up once and keep the reference.
// All methods are thread-safe. A family's type and help are fixed by its first registration.
#pragma once

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace paypath::metrics {

using Labels = std::vector<std::pair<std::string, std::string>>;

class Counter {
 public:
  void Inc(double n = 1);
  double Value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0};
};

class Gauge {
 public:
  void Set(double v) { value_.store(v, std::memory_order_relaxed); }
  void Add(double v);
  double Value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0};
};

class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds);
  void Observe(double v);
  // Cumulative counts per bound (+Inf last), the sum and the count, read consistently.
  struct Snapshot {
    std::vector<double> bounds;
    std::vector<uint64_t> cumulative;  // size bounds.size() + 1
    double sum = 0;
    uint64_t count = 0;
  };
  Snapshot Read() const;

 private:
  mutable std::mutex mu_;
  std::vector<double> bounds_;
  std::vector<uint64_t> counts_;  // protected by mu_; per bucket, not cumulative
  double sum_ = 0;                // protected by mu_
  uint64_t count_ = 0;            // protected by mu_
};

// Latency buckets in seconds: 0.5 ms to 10 s, dense where an in-memory or single-transaction path lands.
std::vector<double> LatencyBuckets();

class Registry {
 public:
  Counter& GetCounter(const std::string& name, const std::string& help, const Labels& labels = {});
  Gauge& GetGauge(const std::string& name, const std::string& help, const Labels& labels = {});
  Histogram& GetHistogram(const std::string& name, const std::string& help, const std::vector<double>& bounds,
                          const Labels& labels = {});
  // The whole registry in Prometheus text format, families sorted by name.
  std::string Render() const;

  // The process-wide registry that /metrics serves.
  static Registry& Default();

 private:
  enum class Type { kCounter, kGauge, kHistogram };
  struct Series {
    Labels labels;
    std::unique_ptr<Counter> counter;
    std::unique_ptr<Gauge> gauge;
    std::unique_ptr<Histogram> histogram;
  };
  struct Family {
    Type type;
    std::string help;
    std::map<std::string, Series> series;  // keyed by rendered label set
  };
  Series& GetSeries(const std::string& name, const std::string& help, Type type, const Labels& labels);

  mutable std::mutex mu_;
  std::map<std::string, Family> families_;  // protected by mu_
};

// Parses Prometheus text format into "name{labels}" -> value (labels as rendered, sorted as found).
// Used by tests and the proof run to read other processes' /metrics. Comment lines are skipped.
std::map<std::string, double> ParseText(const std::string& text);

}  // namespace paypath::metrics
