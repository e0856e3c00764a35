// packetforward's kernel counts as Prometheus series, mirrored at every
// scrape: into forward_count / forward_bytes{direction} (families the
// basic aggregator owns and leaves alone without packetparser), or into
// our node_forward_count / node_forward_bytes{direction} when packetparser
// feeds forward_* itself.
#pragma once

#include <array>
#include <cstdint>
#include <memory>

#include "loader/fd.hpp"
#include "retina/abi/events.h"
#include "retina/error.hpp"
#include "retina/metrics/registry.hpp"

namespace retina::packetforward {

struct Sums {
  std::array<uint64_t, RETINA_FWD_MAX> packets{};
  std::array<uint64_t, RETINA_FWD_MAX> bytes{};
};

// The per-CPU count array, summed over CPUs.
Result<Sums> read_sums(int counts_map_fd);

class ForwardMetrics final : public metrics::Collector {
 public:
  // The fd is duplicated: the collector may outlive the plugin.
  static Result<std::shared_ptr<ForwardMetrics>> create(metrics::Registry& registry, int counts_map_fd,
                                                        bool basic_families);
  void refresh() override;

 private:
  ForwardMetrics() = default;
  loader::UniqueFd fd_;
  std::array<metrics::Counter*, RETINA_FWD_MAX> packets_{};
  std::array<metrics::Counter*, RETINA_FWD_MAX> bytes_{};
};

}  // namespace retina::packetforward
