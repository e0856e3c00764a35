// /proc/net/netstat and /proc/net/snmp: "Prefix: names" / "Prefix: values" pairs.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "plugins/linuxutil/proc_parsers.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto tables = retina::linuxutil::parse_proc_tables(text);
  if (tables) {
    // Accepted input always has at least one table and no empty names.
    if (tables->empty()) std::abort();
    for (const auto& t : *tables) {
      if (t.prefix.empty()) std::abort();
      for (const auto& s : t.stats)
        if (s.name.empty()) std::abort();
    }
  } else if (tables.error().message.empty()) {
    std::abort();
  }
  return 0;
}
