#include "plugins/linuxutil/sock_diag.hpp"

#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "plugins/linuxutil/file_io.hpp"

namespace retina::linuxutil {
namespace {

Error diag_error(const char* call, int family, int protocol, int err) {
  Error e = Error::system(fmt::format("{}(sock_diag {} {})", call, family == AF_INET ? "inet" : "inet6",
                                      protocol == IPPROTO_TCP ? "tcp" : protocol == IPPROTO_UDP ? "udp" : "proto"),
                          err);
  // No handler for the protocol: inet_diag or tcp_diag/udp_diag is not built.
  if (err == ENOENT || err == EPROTONOSUPPORT || err == EOPNOTSUPP) e.kind = Error::Kind::kUnsupported;
  return e;
}

Status dump_family(int fd, int family, int protocol, uint32_t seq, std::vector<SocketEntry>& out) {
  struct {
    nlmsghdr nlh;
    inet_diag_req_v2 req;
  } msg{};
  msg.nlh.nlmsg_len = sizeof msg;
  msg.nlh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
  msg.nlh.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
  msg.nlh.nlmsg_seq = seq;
  msg.req.sdiag_family = static_cast<uint8_t>(family);
  msg.req.sdiag_protocol = static_cast<uint8_t>(protocol);
  msg.req.idiag_states = ~0u;  // every state, as /proc/net/tcp lists them

  sockaddr_nl kernel{};
  kernel.nl_family = AF_NETLINK;
  if (::sendto(fd, &msg, sizeof msg, 0, reinterpret_cast<const sockaddr*>(&kernel), sizeof kernel) < 0)
    return unexpected(diag_error("sendto", family, protocol, errno));

  // 32 KiB: the kernel sizes dump skbs up to the reader's buffer.
  alignas(nlmsghdr) static thread_local char buf[32768];
  for (;;) {
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      return unexpected(diag_error("recv", family, protocol, errno));
    }
    if (n == 0) return unexpected(Error::internal("sock_diag: netlink socket closed during a dump"));
    const size_t size = static_cast<size_t>(n);
    size_t next = 0;
    for (size_t off = 0; off + sizeof(nlmsghdr) <= size; off = next) {
      const auto* h = reinterpret_cast<const nlmsghdr*>(buf + off);
      if (h->nlmsg_len < sizeof(nlmsghdr) || h->nlmsg_len > size - off)
        return unexpected(Error::parse("sock_diag: netlink message length out of bounds"));
      next = off + NLMSG_ALIGN(h->nlmsg_len);
      if (h->nlmsg_seq != seq) continue;
      if (h->nlmsg_type == NLMSG_DONE) return ok();
      if (h->nlmsg_type == NLMSG_ERROR) {
        if (h->nlmsg_len < NLMSG_LENGTH(sizeof(nlmsgerr)))
          return unexpected(Error::parse("sock_diag: truncated NLMSG_ERROR"));
        const auto* e = static_cast<const nlmsgerr*>(NLMSG_DATA(h));
        return unexpected(diag_error("SOCK_DIAG_BY_FAMILY", family, protocol, -e->error));
      }
      if (h->nlmsg_type != SOCK_DIAG_BY_FAMILY) continue;
      if (h->nlmsg_len < NLMSG_LENGTH(sizeof(inet_diag_msg)))
        return unexpected(Error::parse("sock_diag: truncated inet_diag_msg"));
      const auto* d = static_cast<const inet_diag_msg*>(NLMSG_DATA(h));
      SocketEntry s;
      const auto* src = reinterpret_cast<const uint8_t*>(d->id.idiag_src);
      const auto* dst = reinterpret_cast<const uint8_t*>(d->id.idiag_dst);
      if (d->idiag_family == AF_INET) {
        s.local = IpAddr::from_v4_bytes(src);
        s.remote = IpAddr::from_v4_bytes(dst);
      } else {
        s.local = IpAddr::from_v6_bytes(src);
        s.remote = IpAddr::from_v6_bytes(dst);
      }
      s.local_port = ntohs(d->id.idiag_sport);
      s.remote_port = ntohs(d->id.idiag_dport);
      s.state = d->idiag_state;
      if (s.state == 0 || s.state > kTcpMaxState) continue;  // a state newer than this build knows
      out.push_back(s);
    }
  }
}

}  // namespace

Result<std::vector<SocketEntry>> sock_diag_dump(int protocol) {
  UniqueFd fd(::socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG));
  if (!fd) return unexpected(Error::system("socket(AF_NETLINK, NETLINK_SOCK_DIAG)", errno));
  std::vector<SocketEntry> out;
  uint32_t seq = 1;
  for (int family : {AF_INET, AF_INET6}) {
    auto st = dump_family(fd.get(), family, protocol, seq++, out);
    if (!st) return unexpected(st.error());
  }
  return out;
}

}  // namespace retina::linuxutil

