// Arbitrary query strings for GET /flows: a FlowQuery or an Error, never a
// crash; parsed values stay within their documented bounds.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "engine/http_query.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view query(reinterpret_cast<const char*>(data), size);
  if (auto params = retina::http::parse_query(query)) {
    if (params->size() > retina::http::kMaxQueryParams) __builtin_trap();
    for (const auto& [k, v] : *params) {
      if (k.empty() || v.size() > retina::http::kMaxQueryValueBytes) __builtin_trap();
    }
  }
  if (auto q = retina::http::parse_flow_query(query)) {
    if (q->max > retina::http::kMaxFlowMax) __builtin_trap();
    if (!q->follow && q->max == 0) __builtin_trap();
  }
  return 0;
}
