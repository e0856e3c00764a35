// linuxutil: node TCP/IP/UDP counters from /proc/net, TCP socket states,
// and per-interface error/drop counters from ethtool and sysfs. A polling
// plugin: reconcile() reads every source into a snapshot, scrapes write it.
// See docs/plugins/linuxutil.md.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include "retina/plugin.hpp"

namespace retina {

struct LinuxUtilOptions {
  enum class Sockets : uint8_t {
    // sock_diag when proc_root is the real "/proc" (falling back to the
    // /proc/net files when the kernel lacks the diag module), otherwise
    // the files under proc_root.
    kAuto,
    kSockDiag,   // netlink only; errors are errors
    kProcFiles,  // <proc_root>/net/{tcp,tcp6,udp,udp6} only
  };
  Sockets sockets = Sockets::kAuto;
  // ethtool -S counters. The ioctl sees the live kernel, so it runs only
  // when sys_root is the real "/sys" (a fixture tree would not match it).
  bool ethtool = true;
  // tcp_connection_remote: Retina's one series address="AllIPs" (every
  // established connection), or with per_address the N remote addresses
  // with the most established connections, the rest summed into
  // address="other". The agent's tcpConnectionRemotePerAddress sets it.
  bool per_address = false;
  size_t remote_top_n = 100;
  // interface_stats: Retina's interface_name="all_interfaces" (each
  // statistic summed over the interfaces), or with per_interface one series
  // per interface. The agent's interfaceStatsPerInterface sets it.
  bool per_interface = false;
};

std::unique_ptr<Plugin> make_linuxutil_plugin();
std::unique_ptr<Plugin> make_linuxutil_plugin(LinuxUtilOptions options);

}  // namespace retina
