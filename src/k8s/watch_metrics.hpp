// Health and staleness of the watch streams, kept in atomics by the stream
// threads and written at scrape time by a registry Collector:
//   controlplane_networkobservability_k8s_watch_up{resource}
//   controlplane_networkobservability_k8s_last_sync_timestamp_seconds{resource}
//   controlplane_networkobservability_k8s_relists_total{resource}
//   controlplane_networkobservability_k8s_watch_errors_total{resource,reason}
//   controlplane_networkobservability_k8s_events_total{resource,type}
//   controlplane_networkobservability_k8s_objects{resource}
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>

#include "k8s/objects.hpp"
#include "retina/k8s/watcher.hpp"
#include "retina/metrics/registry.hpp"

namespace retina::k8s {

enum class ErrorReason : uint8_t {
  kConnect,          // no response: refused, DNS, TLS handshake
  kTimeout,          // a request ran past its deadline
  kStream,           // the connection broke mid-body
  kUnauthorized,     // 401
  kForbidden,        // 403
  kNotFound,         // 404 (other than the optional CRD)
  kGone,             // 410, or an ERROR event with code 410: resourceVersion too old
  kTooManyRequests,  // 429
  kServerError,      // 5xx
  kHttp,             // any other unexpected status
  kStatusEvent,      // an ERROR watch event other than 410
  kDecode,           // malformed JSON (list page or event line)
  kInvalidObject,    // well-formed but unusable: bad IP address, invalid MetricsConfiguration
  kInternal,         // an exception escaped a callback
  kCount
};
inline constexpr size_t kErrorReasonCount = static_cast<size_t>(ErrorReason::kCount);
const char* to_string(ErrorReason r);
ErrorReason reason_for_status(long http_status);

struct ResourceMetrics {
  std::atomic<bool> enabled{false};
  std::atomic<bool> watch_up{false};
  std::atomic<double> last_sync_unix{0};  // seconds since the epoch; 0: never
  std::atomic<uint64_t> relists{0};
  std::atomic<uint64_t> objects{0};
  std::array<std::atomic<uint64_t>, kEventTypeCount> events{};
  std::array<std::atomic<uint64_t>, kErrorReasonCount> errors{};

  void error(ErrorReason r, uint64_t n = 1) { errors[static_cast<size_t>(r)].fetch_add(n, std::memory_order_relaxed); }
  void event(EventType t) { events[static_cast<size_t>(t)].fetch_add(1, std::memory_order_relaxed); }
  void mark_synced_now();
};

struct WatchMetrics {
  std::array<ResourceMetrics, kResourceCount> resources;
  ResourceMetrics& operator[](Resource r) { return resources[static_cast<size_t>(r)]; }
  const ResourceMetrics& operator[](Resource r) const { return resources[static_cast<size_t>(r)]; }
};

// Writes the six families for every enabled resource. Error series appear
// once they are non-zero; the others are always present.
class WatchCollector : public metrics::Collector {
 public:
  explicit WatchCollector(std::shared_ptr<const WatchMetrics> m) : m_(std::move(m)) {}
  void collect(metrics::TextWriter& w) override;

 private:
  std::shared_ptr<const WatchMetrics> m_;
};

}  // namespace retina::k8s
