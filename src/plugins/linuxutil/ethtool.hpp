// Interface statistics through the SIOCETHTOOL ioctl (what `ethtool -S`
// prints): ETHTOOL_GSSET_INFO for the count, ETHTOOL_GSTRINGS for the
// names, ETHTOOL_GSTATS for the values.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "plugins/linuxutil/file_io.hpp"
#include "retina/error.hpp"

namespace retina::linuxutil {

struct EthtoolStat {
  std::string name;
  uint64_t value = 0;

  friend bool operator==(const EthtoolStat&, const EthtoolStat&) = default;
};

// Decodes ETHTOOL_GSTRINGS data: `count` names of ETH_GSTRING_LEN (32)
// bytes each, NUL padded (a name that fills all 32 bytes has no NUL).
Result<std::vector<std::string>> decode_gstrings(std::span<const uint8_t> data, size_t count);

// The keys linuxutil exports: names containing err, drop, discard, miss,
// fifo, timeout or fail (any case).
bool is_error_or_drop_key(std::string_view key);

class EthtoolReader {
 public:
  // Opens the socket the ioctls go through; its network namespace is the
  // calling thread's.
  static Result<EthtoolReader> open();

  // All ETH_SS_STATS counters of `ifname`, in driver order. An interface
  // without statistics gives an Error of kind kUnsupported; one that
  // vanished gives kSystem with code ENODEV.
  Result<std::vector<EthtoolStat>> stats(const std::string& ifname) const;

 private:
  explicit EthtoolReader(UniqueFd fd) : fd_(std::move(fd)) {}
  UniqueFd fd_;
};

}  // namespace retina::linuxutil
