// --health-probe-bind-address / --metrics-bind-address values.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "retina/api_server.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto a = retina::parse_bind_address(text);
  if (a) {
    if (a->host.empty()) std::abort();
  } else if (a.error().message.empty()) {
    std::abort();
  }
  return 0;
}
