// dropreason's kernel counters as Prometheus series, mirrored at every
// scrape (refresh):
//   networkobservability_drop_count / _drop_bytes{reason, direction}
//     Retina's values: reason one of Retina's (UNKNOWN_DROP where none
//     corresponds), direction the one Retina gives that reason ("unknown"
//     for most), kernel counts that share those labels summed.
//   With kernelDropReasons: {reason, direction, kernel_reason}
//     reason: Retina's reason where one corresponds, else the kernel's name
//     direction: where the drop happened; kernel_reason: the kernel's name
//   lost_events_counter{type="kernel", reason="dropreason"}: ring buffer full
//   bpf_events_total{plugin="dropreason", stat}: rate_limited, reports, ...,
//     and "missed" (tracepoint hits the kernel did not run the program for)
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include <absl/container/flat_hash_map.h>

#include "loader/fd.hpp"
#include "plugins/dropreason/btf_reasons.hpp"
#include "retina/abi/events.h"
#include "retina/error.hpp"
#include "retina/metrics/registry.hpp"

namespace retina::dropreason {

inline constexpr std::string_view kKernelReasonLabel = "kernel_reason";

struct DropCount {
  uint32_t reason = 0;
  uint8_t direction = 0;
  uint64_t packets = 0;
  uint64_t bytes = 0;
};

// Every (reason, direction) with a count, summed over CPUs: the core
// reasons' per-CPU array (index reason * 2 + direction - 1) and the
// per-CPU hash of the others.
Result<std::vector<DropCount>> read_drop_counts(int core_map_fd, int counts_map_fd);
// bpf_prog_info.recursion_misses of a program.
Result<uint64_t> read_recursion_misses(int prog_fd);

// "ingress" / "egress" / "unknown" for RETINA_DROP_DIR_*.
std::string_view direction_name(uint8_t direction);

class DropMetrics final : public metrics::Collector {
 public:
  // The fds are duplicated: the collector may outlive the plugin inside
  // the registry.
  static Result<std::shared_ptr<DropMetrics>> create(metrics::Registry& registry, int core_map_fd, int counts_map_fd,
                                                     int stats_map_fd, int prog_fd,
                                                     std::shared_ptr<const DropReasonTable> reasons,
                                                     bool kernel_reasons = false);
  // New names apply from the next scrape (series of the old names stay).
  void set_reasons(std::shared_ptr<const DropReasonTable> reasons);
  void refresh() override;

 private:
  DropMetrics() = default;
  struct Series {
    metrics::Counter* packets = nullptr;
    metrics::Counter* bytes = nullptr;
  };
  Series& series(uint32_t reason, uint8_t direction);

  // Mirrors one series from a sum of kernel counts.
  struct Sum {
    Series* series = nullptr;
    uint64_t packets = 0, bytes = 0;
  };

  std::mutex mu_;  // scrapes may run concurrently
  bool kernel_reasons_ = false;
  loader::UniqueFd core_fd_, counts_fd_, stats_fd_, prog_fd_;
  std::shared_ptr<const DropReasonTable> reasons_;
  metrics::Family<metrics::Counter>* count_family_ = nullptr;
  metrics::Family<metrics::Counter>* bytes_family_ = nullptr;
  absl::flat_hash_map<uint64_t, Series> series_;
  metrics::Counter* lost_ = nullptr;
  std::array<metrics::Counter*, RETINA_STAT_MAX> stats_{};
  metrics::Counter* missed_ = nullptr;
};

}  // namespace retina::dropreason
