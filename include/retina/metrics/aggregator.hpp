// The basic (node-level) metric aggregator: a FlowSink that turns flows into
// Retina's basic metrics. Counts accumulate in plain per-batch locals on the
// pipeline thread and are published to the registry's atomics once per
// batch, so the per-event cost is a few adds and no lock or allocation.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "retina/pipeline.hpp"

namespace retina::metrics {

class Registry;
class Counter;

class BasicAggregator final : public FlowSink {
 public:
  explicit BasicAggregator(Registry& registry);
  ~BasicAggregator() override;

  void on_flow(const Flow& flow) noexcept override;
  void on_batch_end() noexcept override;

  // Totals published so far (tests, Python).
  struct Totals {
    uint64_t forward_packets[3] = {};  // by TrafficDirection
    uint64_t forward_bytes[3] = {};
    uint64_t drop_packets = 0;
    uint64_t drop_bytes = 0;
    uint64_t dns_requests = 0;
    uint64_t dns_responses = 0;
    uint64_t tcp_retransmissions = 0;
  };
  Totals totals() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace retina::metrics
