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
  // tcp_connection_remote keeps the N remote addresses with the most
  // established connections; the rest are summed into address="other".
  size_t remote_top_n = 100;
};

std::unique_ptr<Plugin> make_linuxutil_plugin();
std::unique_ptr<Plugin> make_linuxutil_plugin(LinuxUtilOptions options);

}  // namespace retina
