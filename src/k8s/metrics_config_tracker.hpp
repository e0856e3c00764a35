// Which MetricsConfiguration is in force. Retina uses one: here the oldest
// object (creationTimestamp, then name) is the active one; the others are
// reported as ignored. An invalid active object is reported and the
// previously delivered configuration stays in force.
#pragma once

#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "k8s/objects.hpp"
#include "k8s/watch_metrics.hpp"
#include "retina/k8s/watcher.hpp"

namespace retina::k8s {

class MetricsConfigTracker {
 public:
  MetricsConfigTracker(std::function<void(const MetricsConfigurationSpec&)> on_spec,
                       std::function<void(const std::string&, const Error&)> on_error, ResourceMetrics& metrics)
      : on_spec_(std::move(on_spec)), on_error_(std::move(on_error)), metrics_(metrics) {}

  void replace(std::vector<MetricsConfigurationInfo> items);
  void apply(EventType type, MetricsConfigurationInfo obj);
  size_t count() const;

 private:
  void reconcile();
  void report(const MetricsConfigurationInfo& obj, const Error& err, bool invalid);

  std::function<void(const MetricsConfigurationSpec&)> on_spec_;
  std::function<void(const std::string&, const Error&)> on_error_;
  ResourceMetrics& metrics_;

  mutable std::mutex mu_;
  std::map<std::string, MetricsConfigurationInfo> objects_;  // by name
  std::optional<MetricsConfigurationSpec> delivered_;
  std::map<std::string, std::string> reported_;  // name -> resourceVersion already reported
};

}  // namespace retina::k8s
