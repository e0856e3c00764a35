// Turns socket tables (from /proc/net/tcp* or sock_diag) into what
// tcp_state and tcp_connection_remote export.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <utility>
#include <vector>

#include <absl/container/flat_hash_map.h>

#include "plugins/linuxutil/proc_parsers.hpp"
#include "retina/ip.hpp"

namespace retina::linuxutil {

struct TcpSummary {
  // Sockets per state, indexed by TcpState; request sockets (NEW_SYN_RECV)
  // count as SYN_RECV, as /proc/net/tcp shows them.
  std::array<uint64_t, kTcpMaxState + 1> by_state{};
  // ESTABLISHED connections per remote address (loopback excluded): the
  // top N by count (ties by address), the rest summed in `other_remotes`.
  std::vector<std::pair<IpAddr, uint64_t>> remotes;
  uint64_t other_remotes = 0;
};

class TcpTally {
 public:
  void add(std::span<const SocketEntry> sockets);
  TcpSummary finish(size_t top_n) &&;

 private:
  TcpSummary summary_;
  absl::flat_hash_map<IpAddr, uint64_t, IpAddrHash> remotes_;
};

// 127.0.0.0/8 (also v4-mapped) and ::1.
bool is_loopback(const IpAddr& a);

}  // namespace retina::linuxutil
