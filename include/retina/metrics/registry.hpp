// Prometheus metrics: counters and gauges with stable addresses, scrape-time
// collectors, and text exposition (format 0.0.4) with HELP and TYPE lines.
//
// Hot paths resolve a series once (Family::with) and then touch only the
// returned Counter/Gauge: a relaxed atomic, no lock, no allocation.
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <initializer_list>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <absl/container/flat_hash_map.h>

namespace retina::metrics {

enum class MetricType : uint8_t { kCounter, kGauge, kHistogram, kUntyped };

const char* to_string(MetricType t);

struct Label {
  std::string_view name;
  std::string_view value;
};

// Writes Prometheus text. Each family is announced once with HELP and TYPE;
// its samples must follow before the next family starts.
class TextWriter {
 public:
  explicit TextWriter(std::string& out) : out_(out) {}
  void family(std::string_view name, std::string_view help, MetricType type);
  void sample(std::string_view name, std::span<const Label> labels, uint64_t value);
  void sample(std::string_view name, std::span<const Label> labels, double value);
  void sample(std::string_view name, std::initializer_list<Label> labels, uint64_t value) {
    sample(name, std::span<const Label>(labels.begin(), labels.size()), value);
  }
  void sample(std::string_view name, std::initializer_list<Label> labels, double value) {
    sample(name, std::span<const Label>(labels.begin(), labels.size()), value);
  }
  std::string& buffer() { return out_; }

  // Escapes a label value (backslash, quote, newline) onto `out`.
  static void append_escaped(std::string& out, std::string_view value);

 private:
  void labels(std::span<const Label> labels);
  std::string& out_;
};

class Counter {
 public:
  void add(uint64_t n = 1) noexcept { v_.fetch_add(n, std::memory_order_relaxed); }
  uint64_t value() const noexcept { return v_.load(std::memory_order_relaxed); }
  // For counters mirrored from a monotonic source (kernel maps).
  void set(uint64_t n) noexcept { v_.store(n, std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> v_{0};
};

class Gauge {
 public:
  void set(double v) noexcept { v_.store(v, std::memory_order_relaxed); }
  void add(double d) noexcept;
  double value() const noexcept { return v_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> v_{0};
};

// Anything that produces samples at scrape time (kernel maps, /proc files).
// A scrape first calls refresh() on every collector (to mirror kernel
// counters into registry-owned series, e.g. lost_events_counter), then
// writes the registry's families, then calls collect() on every collector
// for families it writes itself. A family is written by one producer only.
class Collector {
 public:
  virtual ~Collector() = default;
  virtual void refresh() {}
  virtual void collect(TextWriter& w) { (void)w; }
};

// A metric family with a fixed list of label names. Series are created on
// first use and live as long as the registry; their addresses never change.
template <class M>
class Family {
 public:
  Family(std::string name, std::string help, std::vector<std::string> label_names)
      : name_(std::move(name)), help_(std::move(help)), label_names_(std::move(label_names)) {}

  // Returns the series for these label values (one per label name).
  M& with(std::initializer_list<std::string_view> values) {
    return with(std::span<const std::string_view>(values.begin(), values.size()));
  }
  M& with(std::span<const std::string_view> values);

  const std::string& name() const { return name_; }
  const std::string& help() const { return help_; }
  const std::vector<std::string>& label_names() const { return label_names_; }
  void write(TextWriter& w, MetricType type) const;

 private:
  struct Series {
    std::vector<std::string> values;
    M metric;
  };
  std::string name_, help_;
  std::vector<std::string> label_names_;
  mutable std::mutex mu_;
  std::deque<Series> series_;  // deque: stable addresses
  absl::flat_hash_map<std::string, Series*> index_;
};

class Registry;

// Removes its collector from the registry when it goes (move-only). The
// registry must outlive it.
class CollectorHandle {
 public:
  CollectorHandle() = default;
  CollectorHandle(Registry* registry, uint64_t id) : registry_(registry), id_(id) {}
  CollectorHandle(CollectorHandle&& o) noexcept : registry_(std::exchange(o.registry_, nullptr)), id_(o.id_) {}
  CollectorHandle& operator=(CollectorHandle&& o) noexcept {
    if (this != &o) {
      reset();
      registry_ = std::exchange(o.registry_, nullptr);
      id_ = o.id_;
    }
    return *this;
  }
  CollectorHandle(const CollectorHandle&) = delete;
  CollectorHandle& operator=(const CollectorHandle&) = delete;
  ~CollectorHandle() { reset(); }

  void reset() noexcept;
  explicit operator bool() const { return registry_ != nullptr; }

 private:
  Registry* registry_ = nullptr;
  uint64_t id_ = 0;
};

class Registry {
 public:
  Registry();
  ~Registry();
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  // Returns the existing family when the name is already registered.
  Family<Counter>& counter(std::string_view name, std::string_view help,
                           std::vector<std::string> label_names = {});
  Family<Gauge>& gauge(std::string_view name, std::string_view help,
                       std::vector<std::string> label_names = {});

  // Collectors run at every scrape, after the families, in insertion order.
  // The returned id removes it again.
  uint64_t add_collector(std::shared_ptr<Collector> c);
  void remove_collector(uint64_t id);

  // Adds a collector and returns the handle that removes it again.
  CollectorHandle add(std::shared_ptr<Collector> c);

  // Appends the whole exposition to `out`.
  void expose(std::string& out) const;
  std::string expose() const {
    std::string s;
    expose(s);
    return s;
  }

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace retina::metrics
