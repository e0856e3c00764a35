// Raw rtnetlink (NETLINK_ROUTE): requests with their replies, multicast
// notifications, attribute parsing, and a tc filter dump.
#pragma once

#include <linux/netlink.h>
#include <linux/rtnetlink.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "loader/fd.hpp"
#include "retina/error.hpp"

namespace retina::loader {

enum class TcDirection : uint8_t { kIngress, kEgress };
const char* to_string(TcDirection d);

class NetlinkSocket {
 public:
  using MessageFn = std::function<Status(const nlmsghdr& msg)>;

  // groups: RTMGRP_* multicast groups to join (0 for a request socket).
  static Result<NetlinkSocket> open(uint32_t groups = 0);

  int fd() const { return fd_.get(); }

  // Sends `req` (flags get NLM_F_REQUEST, and NLM_F_ACK unless a dump) and
  // hands every reply message to fn until the dump ends or the request is
  // acknowledged. A negative acknowledgement becomes Error::system(what).
  Status request(nlmsghdr* req, std::string_view what, const MessageFn& fn = {});

  // Dumps every object of `type` (RTM_GETLINK, RTM_GETADDR, ...). `body` is
  // the family header that follows nlmsghdr (ifinfomsg, ifaddrmsg, rtmsg,
  // tcmsg), already holding its selectors.
  template <class Body>
  Status dump(uint16_t type, const Body& body, std::string_view what, const MessageFn& fn) {
    struct {
      nlmsghdr h;
      Body b;
    } req{};
    static_assert(sizeof(req) == NLMSG_LENGTH(sizeof(Body)), "no padding between header and body");
    req.h.nlmsg_len = NLMSG_LENGTH(sizeof(Body));
    req.h.nlmsg_type = type;
    req.h.nlmsg_flags = NLM_F_DUMP;
    req.b = body;
    return request(&req.h, what, fn);
  }

  // Reads one datagram and hands its messages to fn. Returns false when
  // nothing was waiting (non-blocking socket). ENOBUFS (the kernel dropped
  // notifications) is returned as an error with code ENOBUFS.
  Result<bool> receive(const MessageFn& fn);

 private:
  UniqueFd fd_;
  uint32_t seq_ = 0;
  std::vector<std::byte> buf_;
};

// Attributes of one level, indexed by type (types above tb.size()-1 are
// skipped). Nested attribute types are masked with NLA_TYPE_MASK.
void parse_rtattrs(const rtattr* rta, size_t len, std::span<const rtattr*> tb);
std::string_view rtattr_string(const rtattr* rta);
uint32_t rtattr_u32(const rtattr* rta);

// Appends an attribute to a request built in a fixed buffer.
bool append_rtattr(nlmsghdr* msg, size_t capacity, uint16_t type, const void* data, size_t len);

// RTM_NEWLINK / RTM_DELLINK.
struct LinkMessage {
  bool deleted = false;
  int family = 0;  // ifi_family: AF_UNSPEC for the link itself, AF_BRIDGE for its bridge port
  int ifindex = 0;
  std::string name;
  std::string kind;                  // IFLA_INFO_KIND
  bool up = false;                   // IFF_UP
  bool peer_in_other_netns = false;  // IFLA_LINK_NETNSID present
};
// RTM_NEWROUTE / RTM_DELROUTE.
struct RouteMessage {
  bool deleted = false;
  int family = 0;
  uint32_t table = 0;  // RTA_TABLE, else rtm_table
  uint8_t type = 0;    // RTN_*
  uint8_t dst_len = 0;
  uint32_t metric = 0;  // RTA_PRIORITY
  std::vector<int> oifs;  // RTA_OIF and every RTA_MULTIPATH hop
};

// Each returns nullopt for a message of another type or one too short for
// its header. `msg` must have msg.nlmsg_len readable bytes.
std::optional<LinkMessage> parse_link_message(const nlmsghdr& msg);
std::optional<RouteMessage> parse_route_message(const nlmsghdr& msg);

// One tc filter on a clsact hook, as `tc filter show` lists it.
struct TcFilterInfo {
  uint32_t handle = 0;    // 0 for the per-priority chain head entry
  uint16_t priority = 0;
  uint16_t protocol = 0;  // host order, ETH_P_*
  std::string kind;       // "bpf", "u32", "matchall", ...
  std::string bpf_name;   // TCA_BPF_NAME: "<prog name>" or "<object>:[<section>]"
  uint32_t bpf_prog_id = 0;
};

// RTM_NEWTFILTER; ifindex receives the filter's interface.
std::optional<TcFilterInfo> parse_tc_filter_message(const nlmsghdr& msg, int* ifindex);

// Dumps the filters on the ingress or egress hook of clsact. An interface
// without clsact has none (empty list, not an error).
Result<std::vector<TcFilterInfo>> list_tc_filters(int ifindex, TcDirection dir);

}  // namespace retina::loader
