// Hubble's metric list in Cilium's syntax (hubbleMetrics), parsed once for
// config validation and for the metrics themselves:
//
//   flow:sourceContext=pod;destinationContext=pod
//   dns:query;ignoreAAAA
//   drop:sourceContext=namespace|ip
//   tcp
//   port-distribution:labelsContext=source_namespace,destination_port
//
// A context option lists alternatives separated by '|': the first one with
// a value labels the series ("source" / "destination"). sourceEgressContext
// and destinationIngressContext do the same for egress (ingress) flows only
// and leave the label empty otherwise. labelsContext adds one label per
// name instead.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "retina/error.hpp"

namespace retina::hubble_spec {

// Metric handlers, by Cilium's names.
inline constexpr std::string_view kHandlers[] = {"flow", "dns", "drop", "tcp", "port-distribution"};
// Context values retina can fill.
inline constexpr std::string_view kContexts[] = {"namespace", "pod", "pod-name", "ip", "workload", "workload-name",
                                                 "app"};
// labelsContext names.
inline constexpr std::string_view kLabelNames[] = {
    "source_ip",        "source_namespace",      "source_pod",  "source_workload", "source_workload_kind",
    "source_app",       "destination_ip",        "destination_namespace", "destination_pod",
    "destination_workload", "destination_workload_kind", "destination_app", "traffic_direction"};

struct MetricSpec {
  std::string handler;                           // one of kHandlers
  std::vector<std::string> source_context;       // alternatives, in order
  std::vector<std::string> destination_context;
  bool source_egress_only = false;               // given as sourceEgressContext
  bool destination_ingress_only = false;         // given as destinationIngressContext
  std::vector<std::string> labels_context;       // kLabelNames
  bool dns_query = false;                        // dns:query adds a "query" label
  bool ignore_aaaa = false;                      // dns:ignoreAAAA
};

// Parses one entry; errors name the entry and the option.
Result<MetricSpec> parse_metric(std::string_view text);
// Parses a list; a handler listed twice is an error.
Result<std::vector<MetricSpec>> parse_metrics(const std::vector<std::string>& list);

}  // namespace retina::hubble_spec
