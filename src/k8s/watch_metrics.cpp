#include "k8s/watch_metrics.hpp"

#include <chrono>
#include <string_view>

namespace retina::k8s {
namespace {

constexpr std::string_view kWatchUp = "controlplane_networkobservability_k8s_watch_up";
constexpr std::string_view kLastSync = "controlplane_networkobservability_k8s_last_sync_timestamp_seconds";
constexpr std::string_view kRelists = "controlplane_networkobservability_k8s_relists_total";
constexpr std::string_view kErrors = "controlplane_networkobservability_k8s_watch_errors_total";
constexpr std::string_view kEvents = "controlplane_networkobservability_k8s_events_total";
constexpr std::string_view kObjects = "controlplane_networkobservability_k8s_objects";

}  // namespace

const char* to_string(Resource r) {
  switch (r) {
    case Resource::kPods: return "pods";
    case Resource::kServices: return "services";
    case Resource::kNodes: return "nodes";
    case Resource::kNamespaces: return "namespaces";
    case Resource::kReplicaSets: return "replicasets";
    case Resource::kMetricsConfigurations: return "metricsconfigurations";
    case Resource::kCaptures: return "captures";
    case Resource::kCount: break;
  }
  return "unknown";
}

const char* to_string(ErrorReason r) {
  switch (r) {
    case ErrorReason::kConnect: return "connect";
    case ErrorReason::kTimeout: return "timeout";
    case ErrorReason::kStream: return "stream";
    case ErrorReason::kUnauthorized: return "unauthorized";
    case ErrorReason::kForbidden: return "forbidden";
    case ErrorReason::kNotFound: return "not_found";
    case ErrorReason::kGone: return "gone";
    case ErrorReason::kTooManyRequests: return "too_many_requests";
    case ErrorReason::kServerError: return "server_error";
    case ErrorReason::kHttp: return "http";
    case ErrorReason::kStatusEvent: return "status_event";
    case ErrorReason::kDecode: return "decode";
    case ErrorReason::kInvalidObject: return "invalid_object";
    case ErrorReason::kInternal: return "internal";
    case ErrorReason::kCount: break;
  }
  return "unknown";
}

ErrorReason reason_for_status(long s) {
  switch (s) {
    case 401: return ErrorReason::kUnauthorized;
    case 403: return ErrorReason::kForbidden;
    case 404: return ErrorReason::kNotFound;
    case 410: return ErrorReason::kGone;
    case 429: return ErrorReason::kTooManyRequests;
    case 504: return ErrorReason::kTimeout;
    default: break;
  }
  return s >= 500 && s < 600 ? ErrorReason::kServerError : ErrorReason::kHttp;
}

void ResourceMetrics::mark_synced_now() {
  const auto now = std::chrono::system_clock::now().time_since_epoch();
  last_sync_unix.store(std::chrono::duration<double>(now).count(), std::memory_order_relaxed);
}

void WatchCollector::collect(metrics::TextWriter& w) {
  using metrics::MetricType;
  auto each = [&](auto&& fn) {
    for (size_t i = 0; i < kResourceCount; ++i) {
      const ResourceMetrics& r = m_->resources[i];
      if (r.enabled.load(std::memory_order_relaxed)) fn(to_string(static_cast<Resource>(i)), r);
    }
  };
  w.family(kWatchUp, "1 while the watch stream of the resource is established", MetricType::kGauge);
  each([&](std::string_view res, const ResourceMetrics& r) {
    w.sample(kWatchUp, {{"resource", res}}, r.watch_up.load(std::memory_order_relaxed) ? 1.0 : 0.0);
  });
  w.family(kLastSync, "Unix time the resource was last known current (list, event or bookmark)",
           MetricType::kGauge);
  each([&](std::string_view res, const ResourceMetrics& r) {
    w.sample(kLastSync, {{"resource", res}}, r.last_sync_unix.load(std::memory_order_relaxed));
  });
  w.family(kRelists, "Full relists after the first list (410 Gone, lost events)", MetricType::kCounter);
  each([&](std::string_view res, const ResourceMetrics& r) {
    w.sample(kRelists, {{"resource", res}}, r.relists.load(std::memory_order_relaxed));
  });
  w.family(kErrors, "Failed list or watch requests and unusable data, by reason", MetricType::kCounter);
  each([&](std::string_view res, const ResourceMetrics& r) {
    for (size_t e = 0; e < kErrorReasonCount; ++e) {
      const uint64_t v = r.errors[e].load(std::memory_order_relaxed);
      if (v) w.sample(kErrors, {{"resource", res}, {"reason", to_string(static_cast<ErrorReason>(e))}}, v);
    }
  });
  w.family(kEvents, "Watch events received, by type", MetricType::kCounter);
  each([&](std::string_view res, const ResourceMetrics& r) {
    for (size_t t = 0; t < kEventTypeCount; ++t) {
      w.sample(kEvents, {{"resource", res}, {"type", to_string(static_cast<EventType>(t))}},
               r.events[t].load(std::memory_order_relaxed));
    }
  });
  w.family(kObjects, "Objects of the resource the watcher holds", MetricType::kGauge);
  each([&](std::string_view res, const ResourceMetrics& r) {
    w.sample(kObjects, {{"resource", res}}, static_cast<double>(r.objects.load(std::memory_order_relaxed)));
  });
}

}  // namespace retina::k8s
