// Pieces shared by the polling plugins (linuxutil, infiniband): their
// lifecycle, the latest poll result handed from the engine's control thread
// to scrapes, and the per-source error counter.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "plugins/linuxutil/value_parsers.hpp"
#include "retina/error.hpp"
#include "retina/metrics/registry.hpp"
#include "retina/plugin.hpp"

namespace retina::linuxutil {

// Holds the snapshot of the last poll and writes it at scrape time, so a
// scrape never touches /proc or sysfs and polling keeps its own interval.
template <class Snapshot>
class SnapshotCollector final : public metrics::Collector {
 public:
  using WriteFn = void (*)(const Snapshot&, metrics::TextWriter&);
  explicit SnapshotCollector(WriteFn write) : write_(write) {}

  void publish(std::shared_ptr<const Snapshot> s) {
    std::lock_guard lock(mu_);
    snapshot_ = std::move(s);
  }
  std::shared_ptr<const Snapshot> latest() const {
    std::lock_guard lock(mu_);
    return snapshot_;
  }
  void collect(metrics::TextWriter& w) override {
    if (auto s = latest()) write_(*s, w);
  }

 private:
  mutable std::mutex mu_;
  std::shared_ptr<const Snapshot> snapshot_;
  WriteFn write_;
};

// Lifecycle of a polling plugin: init() (the subclass's) calls attach() to
// register the collector; start() polls once so the first scrape has data;
// reconcile() polls; stop() unregisters. poll() publishes a new snapshot and
// returns an error only when it read nothing at all; a failing source is
// counted by its PolledSource and never stops the plugin.
template <class Snapshot>
class PollingPlugin : public Plugin {
 public:
  ~PollingPlugin() override { PollingPlugin::stop(); }

  Status start() override {
    if (!collector_) return unexpected(Error::internal(std::string(name()) + ": start() before init()"));
    (void)poll();  // failures are counted per source; the plugin keeps running
    return ok();
  }
  Status reconcile() override {
    if (!collector_) return unexpected(Error::internal(std::string(name()) + ": reconcile() before init()"));
    return poll();
  }
  void stop() noexcept override {
    handle_.reset();
    collector_.reset();
  }

 protected:
  virtual Status poll() = 0;

  void attach(metrics::Registry& registry, typename SnapshotCollector<Snapshot>::WriteFn write) {
    collector_ = std::make_shared<SnapshotCollector<Snapshot>>(write);
    handle_ = registry.add(collector_);
  }
  void publish(std::shared_ptr<const Snapshot> s) { collector_->publish(std::move(s)); }

 private:
  std::shared_ptr<SnapshotCollector<Snapshot>> collector_;
  metrics::CollectorHandle handle_;
};

// One polled source (a file, an ioctl family). Counts each failed poll in
// controlplane_networkobservability_plugin_source_errors_total{plugin,source}
// and logs only when the source starts failing and when it recovers, so a
// persistent problem does not flood the log.
class PolledSource {
 public:
  PolledSource(metrics::Registry& registry, std::string_view plugin, std::string_view source);

  void failed(const Error& e);
  void succeeded();
  bool failing() const { return failing_; }
  const std::string& name() const { return source_; }

 private:
  metrics::Counter* errors_;
  std::string plugin_, source_;
  bool failing_ = false;
};

// The first error of a source that reads on past a bad entry, so one bad
// file fails the source for the poll without hiding the good ones.
class FirstError {
 public:
  void note(Error e) {
    if (!error_) error_ = std::move(e);
  }
  Status status() const { return error_ ? Status(unexpected(*error_)) : ok(); }

 private:
  std::optional<Error> error_;
};

// One sample of a value that may be negative (Tcp MaxConn is -1).
inline void write_stat(metrics::TextWriter& w, std::string_view family,
                       std::initializer_list<metrics::Label> labels, StatValue v) {
  if (v.negative) w.sample(family, labels, -static_cast<double>(v.magnitude));
  else w.sample(family, labels, v.magnitude);
}

}  // namespace retina::linuxutil
