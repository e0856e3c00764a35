// Validation of a MetricsConfiguration spec, shared by the watcher and the
// public parser.
#pragma once

#include <string_view>

#include "retina/error.hpp"
#include "retina/k8s/watcher.hpp"

namespace retina::k8s {

// The agent config's rules for contextOptions and namespaces (Config::validate),
// plus Retina's: at least one context option. `path` prefixes each problem
// ("spec" for an object, empty for a bare spec).
Status validate_metrics_configuration(const MetricsConfigurationSpec& spec, std::string_view path);

}  // namespace retina::k8s
