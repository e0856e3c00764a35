// Feeds arbitrary bytes to the config loader: it must answer with a Config
// or an Error, never crash, hang or throw.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "core/log.hpp"
#include "retina/config.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const bool quiet = [] {
    retina::log::set_level(retina::LogLevel::kError);  // ignored-key warnings would flood the output
    return true;
  }();
  (void)quiet;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto cfg = retina::load_config_yaml(text);
  if (cfg) {
    // A loaded config is valid by construction.
    if (!cfg->validate()) __builtin_trap();
  }
  (void)retina::parse_duration(text);
  return 0;
}
