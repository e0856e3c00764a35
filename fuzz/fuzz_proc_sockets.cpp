// /proc/net/tcp, tcp6, udp, udp6 socket tables, then the state/remote tally
// linuxutil builds from them.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "plugins/linuxutil/proc_parsers.hpp"
#include "plugins/linuxutil/socket_summary.hpp"

using namespace retina::linuxutil;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto socks = parse_proc_sockets(text);
  if (!socks) {
    if (socks.error().message.empty()) std::abort();
    return 0;
  }
  uint64_t established = 0;
  for (const SocketEntry& s : *socks) {
    if (!tcp_state_name(s.state)) std::abort();  // the parser only admits known states
    if (s.state == kTcpEstablished && !is_loopback(s.remote)) ++established;
  }
  TcpTally tally;
  tally.add(*socks);
  const TcpSummary sum = std::move(tally).finish(size % 8);
  uint64_t total = sum.other_remotes, states = 0;
  for (const auto& r : sum.remotes) total += r.second;
  for (uint64_t n : sum.by_state) states += n;
  if (total != established || states != socks->size() || sum.remotes.size() > size % 8) std::abort();
  return 0;
}
