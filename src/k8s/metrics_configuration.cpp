#include "k8s/metrics_configuration.hpp"

#include <string>
#include <string_view>
#include <vector>

#include "k8s/json_parse.hpp"
#include "metrics/adv_metrics.hpp"
#include "retina/config.hpp"

namespace retina::k8s {
namespace {

bool same_option(const MetricsContextOption& a, const MetricsContextOption& b) {
  return a.metric_name == b.metric_name && a.source_labels == b.source_labels &&
         a.destination_labels == b.destination_labels && a.additional_labels == b.additional_labels &&
         a.ttl == b.ttl;
}

}  // namespace

bool operator==(const MetricsConfigurationSpec& a, const MetricsConfigurationSpec& b) {
  if (a.name != b.name || a.namespaces.include != b.namespaces.include ||
      a.namespaces.exclude != b.namespaces.exclude || a.context_options.size() != b.context_options.size()) {
    return false;
  }
  for (size_t i = 0; i < a.context_options.size(); ++i) {
    if (!same_option(a.context_options[i], b.context_options[i])) return false;
  }
  return true;
}

Status validate_metrics_configuration(const MetricsConfigurationSpec& spec, std::string_view path) {
  const std::string prefix = path.empty() ? std::string() : std::string(path) + ".";
  std::vector<Problem> problems;
  if (spec.context_options.empty())
    problems.push_back({prefix + "contextOptions", "at least one context option is required"});
  // One rule set for the config file and the CRD, with paths below the spec.
  for (auto& p : metrics::adv::configuration_problems(spec.context_options, spec.namespaces))
    problems.push_back({prefix + p.path, std::move(p.message)});
  if (problems.empty()) return ok();
  return unexpected(Error::invalid(std::move(problems)));
}

Result<MetricsConfigurationSpec> parse_metrics_configuration(std::string_view json) {
  JsonParser parser;
  return parser.parse_metrics_configuration(json);
}

}  // namespace retina::k8s
