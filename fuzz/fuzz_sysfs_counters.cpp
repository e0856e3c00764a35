// Single-value sysfs attributes (interface statistics, InfiniBand counters,
// IPoIB parameters) and the ethtool string table decoder.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>
#include <string_view>

#include "plugins/infiniband/sysfs_parsers.hpp"
#include "plugins/linuxutil/ethtool.hpp"
#include "plugins/linuxutil/value_parsers.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  namespace lu = retina::linuxutil;
  namespace ib = retina::infiniband;
  auto u = lu::parse_sysfs_u64(text);
  auto i = lu::parse_sysfs_i64(text);
  // A value both accept must agree wherever it fits in int64.
  if (u && i && *i >= 0 && static_cast<uint64_t>(*i) != *u) std::abort();
  auto c = ib::parse_ib_counter(text);
  if (u && !(c && *c && **c == *u)) std::abort();
  (void)ib::parse_ipoib_mode(text);
  (void)ib::parse_operstate(text);
  (void)ib::parse_sysfs_hex(text);
  (void)lu::is_error_or_drop_key(text);
  (void)lu::quote(text);
  if (size > 0) {
    auto names = lu::decode_gstrings(std::span<const uint8_t>(data + 1, size - 1), data[0]);
    if (names && names->size() != data[0]) std::abort();
    if (names)
      for (const auto& n : *names)
        if (n.size() > 32) std::abort();
  }
  return 0;
}
