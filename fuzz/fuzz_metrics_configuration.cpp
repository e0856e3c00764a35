// MetricsConfiguration objects and bare specs: valid or a clear error.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "retina/k8s/watcher.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view json(reinterpret_cast<const char*>(data), size);
  auto r = retina::k8s::parse_metrics_configuration(json);
  if (r) {
    // Valid specs have at least one context option and never both namespace lists.
    if (r->context_options.empty()) __builtin_trap();
    if (!r->namespaces.include.empty() && !r->namespaces.exclude.empty()) __builtin_trap();
  } else if (r.error().message.empty()) {
    __builtin_trap();
  }
  return 0;
}
