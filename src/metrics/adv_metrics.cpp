#include "metrics/adv_metrics.hpp"

#include <algorithm>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "metrics/apiserver_latency.hpp"
#include "retina/metrics/names.hpp"

namespace retina::metrics::adv {
namespace {

constexpr MetricInfo kMetrics[] = {
    {AdvMetric::kForwardCount, names::kAdvForwardCount, "adv_forward_count", "Total forwarded packets, with pod context",
     Group::kForward, "forward", {"forward_count", {}}},
    {AdvMetric::kForwardBytes, names::kAdvForwardBytes, "adv_forward_bytes", "Total forwarded bytes, with pod context",
     Group::kForward, "forward", {"forward_bytes", {}}},
    {AdvMetric::kDropCount, names::kAdvDropCount, "adv_drop_count", "Total dropped packets, with pod context",
     Group::kDrop, "drop", {"drop_count", {}}},
    {AdvMetric::kDropBytes, names::kAdvDropBytes, "adv_drop_bytes", "Total dropped bytes, with pod context", Group::kDrop,
     "drop", {"drop_bytes", {}}},
    {AdvMetric::kTcpFlags, names::kAdvTcpFlagsCount, "adv_tcpflags_count", "Total TCP packets by flag, with pod context",
     Group::kTcpFlags, {}, {"tcpflags", "tcp_flag_gauges"}},
    {AdvMetric::kTcpRetrans, names::kAdvTcpRetransCount, "tcpretrans_count",
     "Total TCP retransmitted segments, with pod context", Group::kTcpRetrans, {}, {"tcpretrans", "tcp_retransmission_count"}},
    {AdvMetric::kDnsRequest, names::kAdvDnsRequestCount, "adv_dns_request_count", "Total DNS requests, with pod context",
     Group::kDnsRequest, "dns", {"dns_request_count", {}}},
    {AdvMetric::kDnsResponse, names::kAdvDnsResponseCount, "adv_dns_response_count", "Total DNS responses, with pod context",
     Group::kDnsResponse, "dns", {"dns_response_count", {}}},
};

// Metrics a MetricsConfiguration may name that are not aggregated here:
// Retina's API-server latency module (metrics/apiserver_latency.hpp).
constexpr std::string_view kLatencyMetrics[] = {kApiServerLatencyName, kApiServerHandshakeName,
                                                kApiServerNoResponseName};

constexpr bool indexed_by_metric() {
  for (size_t i = 0; i < std::size(kMetrics); ++i)
    if (static_cast<size_t>(kMetrics[i].metric) != i) return false;
  return std::size(kMetrics) == kAdvMetricCount;
}
static_assert(indexed_by_metric(), "kMetrics lists every AdvMetric once, in enum order");

constexpr std::string_view kContextLabels[] = {"ip", "namespace", "podname", "workload", "service", "port", "zone"};
constexpr std::string_view kAdditionalLabels[] = {"is_reply"};

template <class Range>
bool contains(const Range& items, std::string_view v) {
  return std::find(std::begin(items), std::end(items), v) != std::end(items);
}

void check_labels(std::vector<Problem>& out, const std::string& path, const std::vector<std::string>& labels,
                  std::span<const std::string_view> allowed) {
  std::vector<std::string_view> seen;
  for (const auto& l : labels) {
    if (!contains(allowed, l)) {
      out.push_back({path, fmt::format("unknown label \"{}\" (expected one of {})", l, fmt::join(allowed, ", "))});
    } else if (contains(seen, l)) {
      out.push_back({path, fmt::format("label \"{}\" listed twice", l)});
    } else {
      seen.push_back(l);
    }
  }
}

}  // namespace

std::span<const MetricInfo> metric_table() { return kMetrics; }

const MetricInfo& info(AdvMetric m) { return kMetrics[static_cast<size_t>(m)]; }

std::vector<std::string_view> configuration_names() {
  std::vector<std::string_view> out;
  const auto add = [&out](std::string_view n) {
    if (!n.empty() && !contains(out, n)) out.push_back(n);
  };
  for (const MetricInfo& m : kMetrics) {
    add(m.group_alias);
    for (auto a : m.aliases) add(a);
  }
  for (auto n : kLatencyMetrics) add(n);
  return out;
}

std::vector<Problem> configuration_problems(const std::vector<MetricsContextOption>& options,
                                            const MetricsNamespaces& namespaces) {
  std::vector<Problem> p;
  const auto known = configuration_names();
  std::vector<std::string_view> metrics_seen;
  for (size_t i = 0; i < options.size(); ++i) {
    const auto& o = options[i];
    const std::string path = fmt::format("contextOptions[{}]", i);
    if (o.metric_name.empty()) {
      p.push_back({path + ".metricName", "required"});
    } else if (!contains(known, o.metric_name)) {
      p.push_back({path + ".metricName", fmt::format("unknown metric \"{}\" (expected one of {})", o.metric_name,
                                                     fmt::join(known, ", "))});
    } else if (contains(metrics_seen, o.metric_name)) {
      p.push_back({path + ".metricName", fmt::format("\"{}\" configured twice", o.metric_name)});
    } else {
      metrics_seen.push_back(o.metric_name);
    }
    check_labels(p, path + ".sourceLabels", o.source_labels, kContextLabels);
    check_labels(p, path + ".destinationLabels", o.destination_labels, kContextLabels);
    check_labels(p, path + ".additionalLabels", o.additional_labels, kAdditionalLabels);
    if (o.ttl.count() < 0) p.push_back({path + ".ttl", "must not be negative"});
  }
  if (!namespaces.include.empty() && !namespaces.exclude.empty())
    p.push_back({"namespaces", "include and exclude are mutually exclusive"});
  for (const auto* list : {&namespaces.include, &namespaces.exclude}) {
    for (const auto& ns : *list) {
      if (ns.empty()) p.push_back({"namespaces", "empty namespace name"});
    }
  }
  return p;
}

}  // namespace retina::metrics::adv
