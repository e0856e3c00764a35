// Capture specs as JSON: the agent API body and whole Capture objects.
// Every input either parses or gives an error; a parsed spec writes JSON
// that parses back to the same JSON, and its filter shortcuts either build
// or give an error.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "retina/capture.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view json(reinterpret_cast<const char*>(data), size);
  auto spec = retina::capture::parse_request_json(json);
  if (!spec) return 0;
  const std::string out = retina::capture::spec_to_json(*spec);
  auto again = retina::capture::parse_spec_json(out, spec->name);
  if (!again || retina::capture::spec_to_json(*again) != out) __builtin_trap();
  (void)retina::capture::build_filter(*spec);
  for (const auto& r : spec->pod_selector.requirements) {
    if (r.key.empty()) __builtin_trap();
  }
  return 0;
}
