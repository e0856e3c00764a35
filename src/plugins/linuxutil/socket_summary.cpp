#include "plugins/linuxutil/socket_summary.hpp"

#include <algorithm>

namespace retina::linuxutil {

bool is_loopback(const IpAddr& a) {
  if (a.is_v4()) return a.bytes[12] == 127;
  static constexpr std::array<uint8_t, 16> kLoop6 = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
  return a.bytes == kLoop6;
}

void TcpTally::add(std::span<const SocketEntry> sockets) {
  for (const SocketEntry& s : sockets) {
    const uint8_t st = s.state == kTcpNewSynRecv ? uint8_t{kTcpSynRecv} : s.state;
    if (st == 0 || st > kTcpMaxState) continue;  // parsers never produce these
    ++summary_.by_state[st];
    if (st == kTcpEstablished && !is_loopback(s.remote)) ++remotes_[s.remote];
  }
}

TcpSummary TcpTally::finish(size_t top_n) && {
  auto& v = summary_.remotes;
  v.assign(remotes_.begin(), remotes_.end());
  const auto by_count = [](const auto& a, const auto& b) {
    return a.second != b.second ? a.second > b.second : a.first < b.first;
  };
  if (v.size() > top_n) {
    std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(top_n), v.end(), by_count);
    for (size_t i = top_n; i < v.size(); ++i) summary_.other_remotes += v[i].second;
    v.resize(top_n);
  }
  std::sort(v.begin(), v.end(), by_count);
  return std::move(summary_);
}

}  // namespace retina::linuxutil
