// Advanced (pod-level) metrics: Retina's networkobservability_adv_* set, a
// FlowSink on the pipeline thread.
//
//   adv_forward_count, adv_forward_bytes   direction [, is_reply]
//   adv_drop_count, adv_drop_bytes         reason, direction
//   adv_tcpflags_count                     flag (SYNACK for a SYN-ACK, as Retina)
//   adv_tcpretrans_count                   direction
//   adv_dns_request_count                  query_type, query
//   adv_dns_response_count                 return_code, query_type, query, response, num_response
//
// followed by the context labels of Retina's MetricsConfiguration (ip,
// namespace, podname, workload_kind, workload_name, service, port, zone):
// prefixed source_/destination_ in remote context, unprefixed in local
// context, where each flow counts once for each local pod side it has (the
// source side as egress, the destination side as ingress). docs/metrics.md
// has the full rules.
//
// Threads. on_flow(), on_batch_end() and maintain() run on the thread that
// feeds the pipeline (the engine's reader thread). A flow that hits an
// existing series costs a key built into a reusable buffer, one hash lookup
// and a relaxed atomic store: no lock, no allocation. New series allocate
// once and become visible to scrapes at the next maintain(); series idle
// longer than their ttl are removed there too, and so is a configuration
// queued by configure(). Scrapes (the registry's collector) read under a
// shared lock that the feeding thread only takes exclusively for those
// structural changes, and then with try_lock first.
#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "retina/config.hpp"
#include "retina/error.hpp"
#include "retina/pipeline.hpp"

namespace retina::metrics {

class Registry;

enum class AdvMetric : uint8_t {
  kForwardCount,
  kForwardBytes,
  kDropCount,
  kDropBytes,
  kTcpFlags,
  kTcpRetrans,
  kDnsRequest,
  kDnsResponse,
  kCount
};
inline constexpr size_t kAdvMetricCount = static_cast<size_t>(AdvMetric::kCount);

// "networkobservability_adv_forward_count", ...
std::string_view adv_metric_name(AdvMetric m);
// "adv_forward_count", ...: the `metric` label of the expiry and overflow counters.
std::string_view adv_metric_short_name(AdvMetric m);

struct AdvancedOptions {
  bool remote_context = false;
  // Only pods (or pods of namespaces) annotated retina.sh: observe count.
  bool enable_annotations = false;
  // Pods on this node are local; so are pods whose node is not known.
  std::string node_name;
  // Retina's MetricsConfiguration. No context options: every metric with
  // the default labels ip, namespace, podname, workload.
  std::vector<MetricsContextOption> context_options;
  MetricsNamespaces namespaces;
  uint32_t max_series_per_metric = 10000;
  // Retina's values unless set (the agent's switches of the same names):
  // adv_drop reason the kernel's name, not Retina's reason;
  bool kernel_drop_reasons = false;
  // a SYN-ACK counted under SYN and ACK, not as SYNACK;
  bool tcp_flags_separate_syn_ack = false;
  // every metric with the default labels while no context option exists
  // (Retina produces none until a MetricsConfiguration exists).
  bool default_context = false;
  // Time source for ttl expiry; steady_clock::now when empty (tests inject one).
  std::function<std::chrono::steady_clock::time_point()> clock;

  // The pod-level keys of the agent config.
  static AdvancedOptions from(const Config& config);
};

// Validates options the way Config::validate() does for the same keys.
Status validate(const AdvancedOptions& options);

struct AdvancedStats {
  uint64_t generation = 0;  // configurations applied, the initial one included
  bool config_pending = false;
  std::array<uint64_t, kAdvMetricCount> series{};      // live series, overflow series included
  std::array<uint64_t, kAdvMetricCount> overflowed{};  // updates folded into the overflow series
  std::array<uint64_t, kAdvMetricCount> expired{};     // series removed after their ttl
  std::array<bool, kAdvMetricCount> enabled{};
};

class AdvancedAggregator final : public FlowSink {
 public:
  // Registers the expiry and overflow counters and a collector that writes
  // the adv_* families at every scrape. `registry` must outlive the aggregator.
  static Result<std::shared_ptr<AdvancedAggregator>> create(Registry& registry, AdvancedOptions options);
  ~AdvancedAggregator() override;
  AdvancedAggregator(const AdvancedAggregator&) = delete;
  AdvancedAggregator& operator=(const AdvancedAggregator&) = delete;

  void on_flow(const Flow& flow) noexcept override;
  // Publishes the batch's counts and runs maintain() when something is due.
  void on_batch_end() noexcept override;

  // Any thread: validates `options` and queues them; the feeding thread
  // applies them at its next maintain(). Metrics whose labels did not change
  // keep their series; the others start empty. The clock is not replaced.
  Status configure(AdvancedOptions options);

  // Feeding thread only (or any thread while no flow is fed): applies a
  // queued configuration, makes new series visible to scrapes and expires
  // idle series. The engine calls it at least every 100 ms.
  void maintain() noexcept;
  void maintain(std::chrono::steady_clock::time_point now) noexcept;

  AdvancedStats stats() const;

  struct Impl;

 private:
  explicit AdvancedAggregator(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace retina::metrics
