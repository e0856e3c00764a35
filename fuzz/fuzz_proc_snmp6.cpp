// /proc/net/snmp6: "Name value" lines.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "plugins/linuxutil/proc_parsers.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto stats = retina::linuxutil::parse_proc_snmp6(text);
  if (stats) {
    if (stats->empty()) std::abort();
    for (const auto& s : *stats)
      if (s.name.empty()) std::abort();
  } else if (stats.error().message.empty()) {
    std::abort();
  }
  return 0;
}
