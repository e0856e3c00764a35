// Retina's API-server latency metrics, from packetparser flows on the node's
// interface (aggregation low) to and from the API server's addresses:
//
//   networkobservability_adv_node_apiserver_latency                histogram, ms
//     a packet to the API server until the first packet back on the same
//     connection
//   networkobservability_adv_node_apiserver_tcp_handshake_latency  histogram, ms
//     a SYN to the API server until its SYN-ACK
//   networkobservability_adv_node_apiserver_no_response            counter {no_response}
//     packets to the API server that nothing answered within 500 ms
//
// Buckets are Retina's: 0 to 4.5 ms in steps of 0.5 ms, then +Inf; values
// are rounded to whole milliseconds, as Retina rounds them. Each metric is
// produced only while a MetricsConfiguration names it (node_apiserver_latency,
// node_apiserver_tcp_handshake_latency, node_apiserver_no_response). Times are
// the flows' own timestamps, so the figures do not depend on how late user
// space sees the events.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include <absl/container/flat_hash_map.h>

#include "retina/config.hpp"
#include "retina/ip.hpp"
#include "retina/pipeline.hpp"

namespace retina::metrics {

class Registry;

// Retina's MetricsConfiguration names of the three metrics.
inline constexpr std::string_view kApiServerLatencyName = "node_apiserver_latency";
inline constexpr std::string_view kApiServerHandshakeName = "node_apiserver_tcp_handshake_latency";
inline constexpr std::string_view kApiServerNoResponseName = "node_apiserver_no_response";

// The addresses of an API server URL ("https://10.0.0.1:443",
// "https://[fd00::1]:6443", "https://api.example:443", resolved).
Result<std::vector<IpAddr>> api_server_addresses(std::string_view server_url);

class ApiServerLatency final : public FlowSink {
 public:
  static constexpr size_t kBuckets = 10;           // 0, 0.5, ... 4.5 ms, then +Inf
  static constexpr int64_t kTtlNs = 500'000'000;   // Retina's 500 ms
  static constexpr size_t kMaxPending = 100'000;   // Retina's limit

  // Registers a collector on `registry`, which must outlive this.
  explicit ApiServerLatency(Registry& registry);
  ~ApiServerLatency() override;

  // Any thread. Which metrics the context options name; none: nothing is
  // produced.
  void configure(const std::vector<MetricsContextOption>& options);
  // Any thread. The API server's addresses.
  void set_servers(std::vector<IpAddr> servers);

  // Pipeline thread.
  void on_flow(const Flow& flow) noexcept override;

  struct Histogram {
    std::array<uint64_t, kBuckets + 1> counts{};  // per bucket, not cumulative; last is +Inf
    double sum = 0;
    uint64_t count = 0;
  };
  struct Snapshot {
    Histogram latency, handshake;
    uint64_t no_response = 0;
    size_t pending = 0;
  };
  Snapshot snapshot() const;

  struct Impl;

 private:
  std::shared_ptr<Impl> impl_;
  Registry& registry_;
  uint64_t collector_id_ = 0;
};

}  // namespace retina::metrics
