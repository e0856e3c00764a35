// hubble_* metrics, as Cilium's Hubble names and labels them, for the
// handlers the metric list (core/hubble_metric_spec.hpp) enables:
//
//   flow               hubble_flows_processed_total{protocol,type,subtype,verdict}
//   drop               hubble_drop_total{reason,protocol}
//   tcp                hubble_tcp_flags_total{flag,family}
//   dns                hubble_dns_queries_total{rcode,qtypes,ips_returned}
//                      hubble_dns_responses_total{rcode,qtypes,ips_returned}
//   port-distribution  hubble_port_distribution_total{protocol,port}
//   (always)           hubble_lost_events_total{source}
//
// plus "source"/"destination" (contexts) or labelsContext labels. They are
// computed off the pipeline thread by the flow store's own follower, as
// Hubble computes them from its events queue; flows that follower loses
// (it fell a whole ring behind) are counted as
// hubble_lost_events_total{source="observer_events_queue"}.
// One thread calls observe().
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <absl/container/flat_hash_map.h>

#include "core/hubble_metric_spec.hpp"
#include "retina/error.hpp"
#include "retina/flow.hpp"
#include "retina/metrics/registry.hpp"

namespace retina::hubble {

class HubbleMetrics {
 public:
  static Result<std::unique_ptr<HubbleMetrics>> create(const std::vector<std::string>& list,
                                                       metrics::Registry& registry);
  void observe(const Flow& f);

  // hubble_lost_events_total{source="hubble_ring_buffer"}: flows followers lost.
  metrics::Counter& ring_buffer_lost() { return *ring_lost_; }
  // hubble_lost_events_total{source="observer_events_queue"}: flows the metrics follower lost.
  metrics::Counter& queue_lost() { return *queue_lost_; }

 private:
  struct Handler {
    hubble_spec::MetricSpec spec;
    std::vector<metrics::Family<metrics::Counter>*> families;  // by the handler's own order
    absl::flat_hash_map<std::string, metrics::Counter*> cache;
  };
  HubbleMetrics() = default;
  void count(Handler& h, size_t family, const Flow& f, std::initializer_list<std::string_view> own);
  std::string_view context(const hubble_spec::MetricSpec& spec, bool source, const Flow& f, std::string& scratch);
  std::string_view label(std::string_view name, const Flow& f, std::string& scratch);

  std::vector<Handler> handlers_;
  metrics::Counter* ring_lost_ = nullptr;
  metrics::Counter* queue_lost_ = nullptr;
  // Scratch reused per flow.
  std::string key_;
  std::vector<std::string> scratch_;
  std::vector<std::string_view> values_;
};

}  // namespace retina::hubble
