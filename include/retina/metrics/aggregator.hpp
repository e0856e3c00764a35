// The basic (node-level) metric aggregator: a FlowSink that turns flows into
// Retina's basic metrics: forward_count/forward_bytes{direction} from
// packetparser flows (when counting pod traffic: Retina's forward_* are the
// node NIC totals of packetforward), dns_request_count/dns_response_count from DNS flows,
// and tcpretrans_count{direction} from retransmission flows. Counts accumulate in plain per-batch locals on the
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
  // count_forward: forward_* from packetparser flows (the offline pipeline,
  // or podForwardMetrics); otherwise those families are packetforward's.
  explicit BasicAggregator(Registry& registry, bool count_forward = true);
  ~BasicAggregator() override;

  void on_flow(const Flow& flow) noexcept override;
  void on_batch_end() noexcept override;

  // Totals published so far (tests, Python). Drops are not here: drop_count
  // and drop_bytes come from the dropreason plugin's in-kernel counters,
  // which stay exact when per-flow drop events are rate limited.
  struct Totals {
    uint64_t forward_packets[3] = {};  // by TrafficDirection
    uint64_t forward_bytes[3] = {};
    uint64_t dns_requests = 0;
    uint64_t dns_responses = 0;
    uint64_t tcp_retransmissions[3] = {};  // by TrafficDirection
  };
  Totals totals() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace retina::metrics
