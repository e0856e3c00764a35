// packetparser's kernel counters as Prometheus series: ring-buffer reserve
// failures as lost_events_counter{type="kernel",reason="packetparser"},
// the other RETINA_STAT_* as bpf_events_total{plugin,stat}, and the
// conntrack_* gauges summed by the sweeper. Values are mirrored into
// registry series at every scrape (refresh), so several plugins can share
// the bpf_events_total family.
#pragma once

#include <array>
#include <cstdint>
#include <memory>

#include "loader/fd.hpp"
#include "retina/abi/events.h"
#include "retina/error.hpp"
#include "retina/metrics/registry.hpp"

namespace retina {

inline constexpr std::string_view kBpfEventsTotal = "controlplane_networkobservability_bpf_events_total";

// The label value of a RETINA_STAT_* index in bpf_events_total.
const char* retina_stat_name(uint32_t stat);

// RETINA_STAT_* summed over CPUs, from a "retina_stats" per-CPU array.
Result<std::array<uint64_t, RETINA_STAT_MAX>> read_retina_stats(int stats_map_fd);
Result<retina_ct_gauges> read_ct_gauges(int gauges_map_fd);

class PacketParserMetrics final : public metrics::Collector {
 public:
  // The map fds are duplicated: the collector may outlive the plugin
  // inside the registry. gauges_map_fd < 0: no conntrack gauges.
  static Result<std::shared_ptr<PacketParserMetrics>> create(metrics::Registry& registry, int stats_map_fd,
                                                             int gauges_map_fd);
  void refresh() override;

 private:
  PacketParserMetrics() = default;
  loader::UniqueFd stats_fd_;
  loader::UniqueFd gauges_fd_;
  metrics::Counter* lost_ = nullptr;
  std::array<metrics::Counter*, RETINA_STAT_MAX> stats_{};
  metrics::Gauge* packets_tx_ = nullptr;
  metrics::Gauge* packets_rx_ = nullptr;
  metrics::Gauge* bytes_tx_ = nullptr;
  metrics::Gauge* bytes_rx_ = nullptr;
  metrics::Gauge* connections_ = nullptr;
};

}  // namespace retina
