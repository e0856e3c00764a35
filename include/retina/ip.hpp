// IP addresses as 16 bytes; IPv4 is stored IPv4-mapped (::ffff:a.b.c.d),
// the same layout the kernel ABI uses, so a decoded address is a memcpy.
#pragma once

#include <array>
#include <compare>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>

namespace retina {

struct IpAddr {
  std::array<uint8_t, 16> bytes{};

  static IpAddr from_v4(uint32_t host_order);
  static IpAddr from_v4_bytes(const uint8_t b[4]);
  static IpAddr from_v6_bytes(const uint8_t b[16]);
  // Parses "10.0.0.1" or "fd00::1"; nullopt on anything else.
  static std::optional<IpAddr> parse(std::string_view text);

  bool is_v4() const {
    static constexpr uint8_t kPrefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    return std::memcmp(bytes.data(), kPrefix, 12) == 0;
  }
  bool is_unspecified() const;
  uint32_t v4_host_order() const;
  std::string to_string() const;
  // Appends the text form to `out` without allocating when capacity allows.
  void append_to(std::string& out) const;
  // Writes the text form to `out`, which has room for kMaxText characters;
  // returns how many it wrote.
  static constexpr size_t kMaxText = 46;
  size_t format(char* out) const;

  friend bool operator==(const IpAddr&, const IpAddr&) = default;
  friend auto operator<=>(const IpAddr&, const IpAddr&) = default;
};

// xxHash3 over the 16 bytes; used by every IP-keyed hash map.
struct IpAddrHash {
  size_t operator()(const IpAddr& ip) const noexcept;
};

}  // namespace retina
