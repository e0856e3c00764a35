// Per-CPU statistic arrays of a BPF plugin as Prometheus series, mirrored
// at every scrape: ring-buffer reserve failures become
// lost_events_counter{type="kernel",reason=<plugin>}, the other counters
// bpf_events_total{plugin,stat} (the family packetparser also writes).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "loader/fd.hpp"
#include "retina/error.hpp"
#include "retina/metrics/registry.hpp"

namespace retina {

class KernelStatsCollector final : public metrics::Collector {
 public:
  struct Stat {
    uint32_t index;
    std::string_view name;  // bpf_events_total's stat label
  };
  struct Map {
    int fd = -1;            // BPF_MAP_TYPE_PERCPU_ARRAY of __u64; duplicated
    uint32_t entries = 0;
    std::vector<Stat> stats;
    int64_t lost_index = -1;  // the entry counting ring-buffer reserve failures, if any
  };

  static Result<std::shared_ptr<KernelStatsCollector>> create(metrics::Registry& registry, std::string_view plugin,
                                                              const std::vector<Map>& maps);
  void refresh() override;

 private:
  KernelStatsCollector() = default;
  struct Source {
    loader::UniqueFd fd;
    uint32_t entries = 0;
    std::vector<std::pair<uint32_t, metrics::Counter*>> series;
  };
  std::string plugin_;
  std::vector<Source> sources_;
};

}  // namespace retina
