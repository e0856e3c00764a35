#include "loader/netlink.hpp"

#include <linux/pkt_cls.h>
#include <arpa/inet.h>
#include <linux/if.h>
#include <linux/if_link.h>
#include <linux/pkt_sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

namespace retina::loader {

namespace {
constexpr size_t kRecvBuf = 1 << 16;
}

const char* to_string(TcDirection d) { return d == TcDirection::kIngress ? "ingress" : "egress"; }

Result<NetlinkSocket> NetlinkSocket::open(uint32_t groups) {
  int fd = ::socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
  if (fd < 0) return unexpected(Error::system("socket(AF_NETLINK, NETLINK_ROUTE)", errno));
  NetlinkSocket s;
  s.fd_.reset(fd);
  sockaddr_nl sa{};
  sa.nl_family = AF_NETLINK;
  sa.nl_groups = groups;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) < 0)
    return unexpected(Error::system(fmt::format("bind(netlink, groups {:#x})", groups), errno));
  int one = 1;
  // Extended acks carry a message; strict checking filters dumps in the kernel.
  (void)::setsockopt(fd, SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof one);
  (void)::setsockopt(fd, SOL_NETLINK, NETLINK_GET_STRICT_CHK, &one, sizeof one);
  if (groups) {
    int rcvbuf = 4 << 20;
    (void)::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
  }
  s.buf_.resize(kRecvBuf);
  return s;
}

Status NetlinkSocket::request(nlmsghdr* req, std::string_view what, const MessageFn& fn) {
  const bool dump = (req->nlmsg_flags & NLM_F_DUMP) == NLM_F_DUMP;
  req->nlmsg_flags |= NLM_F_REQUEST;
  if (!dump) req->nlmsg_flags |= NLM_F_ACK;
  req->nlmsg_seq = ++seq_;
  req->nlmsg_pid = 0;

  sockaddr_nl kernel{};
  kernel.nl_family = AF_NETLINK;
  ssize_t n;
  do {
    n = ::sendto(fd_.get(), req, req->nlmsg_len, 0, reinterpret_cast<sockaddr*>(&kernel), sizeof kernel);
  } while (n < 0 && errno == EINTR);
  if (n < 0) return unexpected(Error::system(fmt::format("{}: sendto(netlink)", what), errno));

  for (;;) {
    do {
      n = ::recv(fd_.get(), buf_.data(), buf_.size(), 0);
    } while (n < 0 && errno == EINTR);
    if (n < 0) return unexpected(Error::system(fmt::format("{}: recv(netlink)", what), errno));
    if (n == 0) return unexpected(Error::internal(fmt::format("{}: netlink socket closed", what)));
    int len = static_cast<int>(n);  // signed, see parse_rtattrs
    for (auto* h = reinterpret_cast<nlmsghdr*>(buf_.data()); NLMSG_OK(h, len); h = NLMSG_NEXT(h, len)) {
      if (h->nlmsg_seq != req->nlmsg_seq) continue;  // a notification or a stale reply
      if (h->nlmsg_type == NLMSG_DONE) return ok();
      if (h->nlmsg_type == NLMSG_ERROR) {
        const auto* e = static_cast<const nlmsgerr*>(NLMSG_DATA(h));
        if (h->nlmsg_len < NLMSG_LENGTH(sizeof(nlmsgerr)))
          return unexpected(Error::internal(fmt::format("{}: truncated netlink error", what)));
        if (e->error == 0) {
          if (!dump) return ok();
          continue;
        }
        return unexpected(Error::system(what, -e->error));
      }
      // A reply; for a plain request its ACK follows.
      if (fn) {
        if (auto st = fn(*h); !st) return st;
      }
    }
  }
}

Result<bool> NetlinkSocket::receive(const MessageFn& fn) {
  ssize_t n;
  do {
    n = ::recv(fd_.get(), buf_.data(), buf_.size(), MSG_DONTWAIT);
  } while (n < 0 && errno == EINTR);
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) return false;
    return unexpected(Error::system("recv(netlink notifications)", errno));
  }
  int len = static_cast<int>(n);
  for (auto* h = reinterpret_cast<nlmsghdr*>(buf_.data()); NLMSG_OK(h, len); h = NLMSG_NEXT(h, len)) {
    if (h->nlmsg_type == NLMSG_DONE || h->nlmsg_type == NLMSG_ERROR || h->nlmsg_type == NLMSG_NOOP) continue;
    if (fn) {
      if (auto st = fn(*h); !st) return unexpected(st.error());
    }
  }
  return true;
}

void parse_rtattrs(const rtattr* rta, size_t len, std::span<const rtattr*> tb) {
  for (auto& p : tb) p = nullptr;
  // Signed: RTA_NEXT subtracts the aligned length, which may exceed what
  // is left after a malformed last attribute; RTA_OK then sees a negative.
  if (len > (1u << 30)) return;
  int l = static_cast<int>(len);
  for (; RTA_OK(rta, l); rta = RTA_NEXT(rta, l)) {
    unsigned type = rta->rta_type & NLA_TYPE_MASK;
    if (type < tb.size()) tb[type] = rta;
  }
}

std::string_view rtattr_string(const rtattr* rta) {
  if (!rta) return {};
  const char* s = static_cast<const char*>(RTA_DATA(rta));
  size_t n = RTA_PAYLOAD(rta);
  while (n > 0 && s[n - 1] == '\0') --n;
  return {s, n};
}

uint32_t rtattr_u32(const rtattr* rta) {
  if (!rta || RTA_PAYLOAD(rta) < sizeof(uint32_t)) return 0;
  uint32_t v;
  std::memcpy(&v, RTA_DATA(rta), sizeof v);
  return v;
}

bool append_rtattr(nlmsghdr* msg, size_t capacity, uint16_t type, const void* data, size_t len) {
  size_t need = NLMSG_ALIGN(msg->nlmsg_len) + RTA_SPACE(len);
  if (need > capacity) return false;
  auto* rta = reinterpret_cast<rtattr*>(reinterpret_cast<char*>(msg) + NLMSG_ALIGN(msg->nlmsg_len));
  rta->rta_type = type;
  rta->rta_len = static_cast<unsigned short>(RTA_LENGTH(len));
  if (len) std::memcpy(RTA_DATA(rta), data, len);
  msg->nlmsg_len = static_cast<uint32_t>(need);
  return true;
}

std::optional<LinkMessage> parse_link_message(const nlmsghdr& h) {
  if (h.nlmsg_type != RTM_NEWLINK && h.nlmsg_type != RTM_DELLINK) return std::nullopt;
  if (h.nlmsg_len < NLMSG_LENGTH(sizeof(ifinfomsg))) return std::nullopt;
  const auto* ifi = static_cast<const ifinfomsg*>(NLMSG_DATA(&h));
  LinkMessage m;
  m.deleted = h.nlmsg_type == RTM_DELLINK;
  m.family = ifi->ifi_family;
  m.ifindex = ifi->ifi_index;
  m.up = (ifi->ifi_flags & IFF_UP) != 0;
  const rtattr* tb[IFLA_MAX + 1];
  parse_rtattrs(IFLA_RTA(ifi), h.nlmsg_len - NLMSG_LENGTH(sizeof(ifinfomsg)), tb);
  m.name = std::string(rtattr_string(tb[IFLA_IFNAME]));
  m.peer_in_other_netns = tb[IFLA_LINK_NETNSID] != nullptr;
  if (tb[IFLA_LINKINFO]) {
    const rtattr* li[IFLA_INFO_MAX + 1];
    parse_rtattrs(static_cast<const rtattr*>(RTA_DATA(tb[IFLA_LINKINFO])), RTA_PAYLOAD(tb[IFLA_LINKINFO]), li);
    m.kind = std::string(rtattr_string(li[IFLA_INFO_KIND]));
  }
  return m;
}

std::optional<RouteMessage> parse_route_message(const nlmsghdr& h) {
  if (h.nlmsg_type != RTM_NEWROUTE && h.nlmsg_type != RTM_DELROUTE) return std::nullopt;
  if (h.nlmsg_len < NLMSG_LENGTH(sizeof(rtmsg))) return std::nullopt;
  const auto* rt = static_cast<const rtmsg*>(NLMSG_DATA(&h));
  RouteMessage m;
  m.deleted = h.nlmsg_type == RTM_DELROUTE;
  m.family = rt->rtm_family;
  m.type = rt->rtm_type;
  m.dst_len = rt->rtm_dst_len;
  const rtattr* tb[RTA_MAX + 1];
  parse_rtattrs(RTM_RTA(rt), h.nlmsg_len - NLMSG_LENGTH(sizeof(rtmsg)), tb);
  m.table = tb[RTA_TABLE] ? rtattr_u32(tb[RTA_TABLE]) : rt->rtm_table;
  m.metric = rtattr_u32(tb[RTA_PRIORITY]);
  if (tb[RTA_OIF]) m.oifs.push_back(static_cast<int>(rtattr_u32(tb[RTA_OIF])));
  if (tb[RTA_MULTIPATH]) {
    int left = static_cast<int>(RTA_PAYLOAD(tb[RTA_MULTIPATH]));
    for (const auto* nh = static_cast<const rtnexthop*>(RTA_DATA(tb[RTA_MULTIPATH]));
         left >= static_cast<int>(sizeof(rtnexthop)) && RTNH_OK(nh, left);
         left -= static_cast<int>(RTNH_ALIGN(nh->rtnh_len)), nh = RTNH_NEXT(nh))
      m.oifs.push_back(nh->rtnh_ifindex);
  }
  return m;
}

std::optional<TcFilterInfo> parse_tc_filter_message(const nlmsghdr& h, int* ifindex) {
  if (h.nlmsg_type != RTM_NEWTFILTER || h.nlmsg_len < NLMSG_LENGTH(sizeof(tcmsg))) return std::nullopt;
  const auto* t = static_cast<const tcmsg*>(NLMSG_DATA(&h));
  if (ifindex) *ifindex = t->tcm_ifindex;
  const rtattr* tb[TCA_MAX + 1];
  parse_rtattrs(reinterpret_cast<const rtattr*>(reinterpret_cast<const char*>(t) + NLMSG_ALIGN(sizeof(tcmsg))),
                h.nlmsg_len - NLMSG_LENGTH(sizeof(tcmsg)), tb);
  TcFilterInfo f;
  f.handle = t->tcm_handle;
  f.priority = static_cast<uint16_t>(TC_H_MAJ(t->tcm_info) >> 16);
  f.protocol = ntohs(static_cast<uint16_t>(TC_H_MIN(t->tcm_info)));
  f.kind = std::string(rtattr_string(tb[TCA_KIND]));
  if (tb[TCA_OPTIONS] && f.kind == "bpf") {
    const rtattr* ob[TCA_BPF_MAX + 1];
    parse_rtattrs(static_cast<const rtattr*>(RTA_DATA(tb[TCA_OPTIONS])), RTA_PAYLOAD(tb[TCA_OPTIONS]), ob);
    f.bpf_name = std::string(rtattr_string(ob[TCA_BPF_NAME]));
    f.bpf_prog_id = rtattr_u32(ob[TCA_BPF_ID]);
  }
  return f;
}

Result<std::vector<TcFilterInfo>> list_tc_filters(int ifindex, TcDirection dir) {
  auto sock = NetlinkSocket::open();
  if (!sock) return unexpected(sock.error());

  tcmsg req{};
  req.tcm_family = AF_UNSPEC;
  req.tcm_ifindex = ifindex;
  req.tcm_parent = TC_H_MAKE(TC_H_CLSACT, dir == TcDirection::kIngress ? TC_H_MIN_INGRESS : TC_H_MIN_EGRESS);

  std::vector<TcFilterInfo> out;
  auto st = sock->dump(RTM_GETTFILTER, req, fmt::format("RTM_GETTFILTER(ifindex {}, {})", ifindex, to_string(dir)),
                          [&](const nlmsghdr& h) -> Status {
                            int idx = 0;
                            auto f = parse_tc_filter_message(h, &idx);
                            if (f && idx == ifindex) out.push_back(std::move(*f));
                            return ok();
                          });
  if (!st) {
    // No clsact (or the device vanished): nothing attached.
    if (st.error().code == EINVAL || st.error().code == ENOENT || st.error().code == ENODEV) return out;
    return unexpected(st.error());
  }
  return out;
}

}  // namespace retina::loader
