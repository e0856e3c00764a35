// The advanced metrics: one table says each metric's exposed name, short
// name (the `metric` label of the expiry and overflow counters), help text,
// flow group, and the MetricsConfiguration names that select it. The
// aggregator, the plan and configuration validation read it.
#pragma once

#include <array>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "metrics/adv_plan.hpp"
#include "retina/config.hpp"
#include "retina/error.hpp"
#include "retina/metrics/advanced.hpp"

namespace retina::metrics::adv {

struct MetricInfo {
  AdvMetric metric;
  std::string_view name;        // networkobservability_adv_...
  std::string_view short_name;  // adv_forward_count, ... (Retina's values)
  std::string_view help;
  Group group;
  // The metricName that selects the whole group ("forward": count and
  // bytes), or empty; a name in `aliases` selects this metric alone and wins.
  std::string_view group_alias;
  std::array<std::string_view, 2> aliases;
};

// Every advanced metric, indexed by AdvMetric.
std::span<const MetricInfo> metric_table();
const MetricInfo& info(AdvMetric m);
// Every metricName a MetricsConfiguration may use, each once, in table order.
std::vector<std::string_view> configuration_names();

// The problems of a metrics configuration (context options and namespaces),
// each with its path below the configuration ("contextOptions[0].metricName").
// The agent config, the MetricsConfiguration CRD and AdvancedOptions share it.
std::vector<Problem> configuration_problems(const std::vector<MetricsContextOption>& options,
                                            const MetricsNamespaces& namespaces);

}  // namespace retina::metrics::adv
