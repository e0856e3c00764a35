#include "plugins/linuxutil/ethtool.hpp"

#include <linux/ethtool.h>
#include <linux/sockios.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>

#include <fmt/format.h>

namespace retina::linuxutil {
namespace {

// ethtool_sset_info is followed by one u32 per bit set in sset_mask; one
// bit is asked for, so one u32 of room. u64 storage keeps it aligned.
union SsetInfo {
  uint64_t storage[(sizeof(ethtool_sset_info) + sizeof(uint32_t) + 7) / 8];
  ethtool_sset_info hdr;
};

Status ethtool_ioctl(int fd, const std::string& ifname, void* cmd, const char* what) {
  ifreq ifr{};
  if (ifname.empty() || ifname.size() >= IFNAMSIZ)
    return unexpected(Error::invalid(fmt::format("ethtool: bad interface name '{}'", ifname)));
  std::memcpy(ifr.ifr_name, ifname.data(), ifname.size());
  ifr.ifr_data = static_cast<char*>(cmd);
  if (::ioctl(fd, SIOCETHTOOL, &ifr) < 0)
    return unexpected(Error::system(fmt::format("ioctl(SIOCETHTOOL {}, {})", what, ifname), errno));
  return ok();
}

}  // namespace

Result<std::vector<std::string>> decode_gstrings(std::span<const uint8_t> data, size_t count) {
  if (count > data.size() / ETH_GSTRING_LEN)
    return unexpected(Error::parse(
        fmt::format("ethtool strings: {} names need {} bytes, got {}", count, count * ETH_GSTRING_LEN, data.size())));
  std::vector<std::string> names;
  names.reserve(count);
  for (size_t i = 0; i < count; ++i) {
    const auto* p = reinterpret_cast<const char*>(data.data() + i * ETH_GSTRING_LEN);
    names.emplace_back(p, ::strnlen(p, ETH_GSTRING_LEN));
  }
  return names;
}

bool is_error_or_drop_key(std::string_view key) {
  static constexpr std::string_view kWords[] = {"err", "drop", "discard", "miss", "fifo", "timeout", "fail"};
  std::string lower(key);
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; });
  return std::any_of(std::begin(kWords), std::end(kWords),
                     [&](std::string_view w) { return lower.find(w) != std::string::npos; });
}

Result<EthtoolReader> EthtoolReader::open() {
  UniqueFd fd(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!fd) return unexpected(Error::system("socket(AF_INET, SOCK_DGRAM) for ethtool", errno));
  return EthtoolReader(std::move(fd));
}

Result<std::vector<EthtoolStat>> EthtoolReader::stats(const std::string& ifname) const {
  SsetInfo info{};
  info.hdr.cmd = ETHTOOL_GSSET_INFO;
  info.hdr.sset_mask = 1ull << ETH_SS_STATS;
  if (auto st = ethtool_ioctl(fd_.get(), ifname, &info, "ETHTOOL_GSSET_INFO"); !st) return unexpected(st.error());
  // The kernel clears the bit when the driver has no such string set.
  if (!(info.hdr.sset_mask & (1ull << ETH_SS_STATS)))
    return unexpected(Error::unsupported(fmt::format("ethtool: {} has no statistics", ifname)));
  const uint32_t n = info.hdr.data[0];
  if (n == 0) return std::vector<EthtoolStat>{};
  // Drivers report at most a few thousand; a larger count is a bogus answer.
  constexpr uint32_t kMaxStats = 1u << 16;
  if (n > kMaxStats) return unexpected(Error::parse(fmt::format("ethtool: {} reports {} statistics", ifname, n)));

  // The kernel writes as many entries as the driver has *now*, whatever
  // length we pass, so a count that grew since GSSET_INFO (queues added)
  // would overrun an exact buffer. Leave generous headroom; the counts are
  // checked afterwards and a changed set fails this read.
  const size_t cap = size_t{n} * 2 + 64;
  auto strings_buf = std::make_unique<uint64_t[]>((sizeof(ethtool_gstrings) + cap * ETH_GSTRING_LEN + 7) / 8);
  auto* strings = reinterpret_cast<ethtool_gstrings*>(strings_buf.get());
  strings->cmd = ETHTOOL_GSTRINGS;
  strings->string_set = ETH_SS_STATS;
  strings->len = n;
  if (auto st = ethtool_ioctl(fd_.get(), ifname, strings, "ETHTOOL_GSTRINGS"); !st) return unexpected(st.error());

  auto stats_buf = std::make_unique<uint64_t[]>((sizeof(ethtool_stats) + cap * sizeof(uint64_t) + 7) / 8);
  auto* stats = reinterpret_cast<ethtool_stats*>(stats_buf.get());
  stats->cmd = ETHTOOL_GSTATS;
  stats->n_stats = n;
  if (auto st = ethtool_ioctl(fd_.get(), ifname, stats, "ETHTOOL_GSTATS"); !st) return unexpected(st.error());

  if (strings->len != n || stats->n_stats != n)
    return unexpected(Error::internal(fmt::format("ethtool: {} changed its statistics count during the read "
                                                  "({} -> {} names, {} values)",
                                                  ifname, n, strings->len, stats->n_stats)));
  auto names = decode_gstrings({reinterpret_cast<const uint8_t*>(strings->data), size_t{n} * ETH_GSTRING_LEN}, n);
  if (!names) return unexpected(names.error());
  std::vector<EthtoolStat> out;
  out.reserve(n);
  for (size_t i = 0; i < n; ++i) out.push_back({std::move((*names)[i]), stats->data[i]});
  return out;
}

}  // namespace retina::linuxutil
