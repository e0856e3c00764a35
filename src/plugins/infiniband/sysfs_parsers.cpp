#include "plugins/infiniband/sysfs_parsers.hpp"

#include <array>
#include <charconv>
#include <string>

#include "plugins/linuxutil/value_parsers.hpp"

namespace retina::infiniband {

using linuxutil::quote;
using linuxutil::trim;

Result<std::optional<uint64_t>> parse_ib_counter(std::string_view text) {
  const std::string_view t = trim(text);
  if (t.starts_with("N/A")) return std::optional<uint64_t>{};
  auto v = linuxutil::parse_sysfs_u64(t);
  if (!v) return unexpected(v.error());
  return std::optional<uint64_t>{*v};
}

Result<uint64_t> parse_ipoib_mode(std::string_view text) {
  const std::string_view t = trim(text);
  if (t == "datagram") return 0;
  if (t == "connected") return 1;
  return unexpected(Error::parse("IPoIB mode " + quote(t) + " is neither 'datagram' nor 'connected'"));
}

Result<uint64_t> parse_operstate(std::string_view text) {
  static constexpr std::array<std::string_view, 7> kStates = {"unknown", "notpresent", "down",   "lowerlayerdown",
                                                              "testing", "dormant",    "up"};
  const std::string_view t = trim(text);
  for (size_t i = 0; i < kStates.size(); ++i)
    if (t == kStates[i]) return i;
  return unexpected(Error::parse("unknown operstate " + quote(t)));
}

Result<uint64_t> parse_sysfs_hex(std::string_view text) {
  const std::string_view t = trim(text);
  if (t.size() < 3 || t[0] != '0' || (t[1] != 'x' && t[1] != 'X'))
    return unexpected(Error::parse(quote(t) + " is not a 0x-prefixed hex number"));
  const std::string_view digits = t.substr(2);
  uint64_t v = 0;
  auto [p, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), v, 16);
  if (ec == std::errc::result_out_of_range) return unexpected(Error::parse(quote(t) + " exceeds 2^64-1"));
  if (ec != std::errc() || p != digits.data() + digits.size())
    return unexpected(Error::parse(quote(t) + " is not a 0x-prefixed hex number"));
  return v;
}

}  // namespace retina::infiniband
