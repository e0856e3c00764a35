// Socket tables through NETLINK_SOCK_DIAG (what `ss` uses): one dump per
// address family, binary records, no text formatting in the kernel. Much
// cheaper than /proc/net/tcp on nodes with many connections. Runs in the
// network namespace of the calling thread.
#pragma once

#include <vector>

#include "plugins/linuxutil/proc_parsers.hpp"
#include "retina/error.hpp"

namespace retina::linuxutil {

// Every socket of `protocol` (IPPROTO_TCP or IPPROTO_UDP), IPv4 then IPv6,
// in every state. An Error of kind kUnsupported means the kernel lacks the
// diag module for that protocol (ENOENT/EOPNOTSUPP/EPROTONOSUPPORT).
Result<std::vector<SocketEntry>> sock_diag_dump(int protocol);

}  // namespace retina::linuxutil
