// /proc/<pid>/stat and /proc/stat's btime line (process_* metrics).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "engine/process_metrics.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto s = retina::metrics::parse_proc_stat(text);
  if (!s && s.error().message.empty()) std::abort();
  auto b = retina::metrics::parse_boot_time(text);
  if (!b && b.error().message.empty()) std::abort();
  return 0;
}
