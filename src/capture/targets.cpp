// Capture targets: pods by label selector through the IP cache, mapped to
// their host-side veths by asking each network namespace which of its
// interfaces holds the pod's address and what its veth peer is.
#include "capture/targets.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <linux/if_addr.h>
#include <linux/netlink.h>
#include <linux/net_namespace.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <map>
#include <set>
#include <thread>

#include <fmt/format.h>

#include "loader/fd.hpp"
#include "loader/netlink.hpp"
#include "retina/ip_cache.hpp"

namespace retina::capture {
namespace {

struct Link {
  int ifindex = 0;
  int peer_ifindex = 0;  // IFLA_LINK
  bool veth_other_ns = false;
  int link_netnsid = -1;  // IFLA_LINK_NETNSID: the peer's namespace, as this one numbers it
  bool up = false;
  bool loopback = false;
  std::string name;
};

Result<std::vector<Link>> dump_links(loader::NetlinkSocket& nl) {
  ifinfomsg req{};
  req.ifi_family = AF_UNSPEC;
  std::vector<Link> out;
  auto st = nl.dump(RTM_GETLINK, req, "RTM_GETLINK", [&](const nlmsghdr& h) -> retina::Status {
    auto m = loader::parse_link_message(h);
    if (!m || m->family != AF_UNSPEC) return ok();
    const auto* ifi = static_cast<const ifinfomsg*>(NLMSG_DATA(&h));
    const rtattr* tb[IFLA_MAX + 1];
    loader::parse_rtattrs(IFLA_RTA(ifi), h.nlmsg_len - NLMSG_LENGTH(sizeof(ifinfomsg)), tb);
    Link l;
    l.ifindex = m->ifindex;
    l.name = m->name;
    l.up = m->up;
    l.loopback = (ifi->ifi_flags & IFF_LOOPBACK) != 0;
    l.peer_ifindex = tb[IFLA_LINK] ? static_cast<int>(loader::rtattr_u32(tb[IFLA_LINK])) : 0;
    l.veth_other_ns = m->kind == "veth" && m->peer_in_other_netns;
    if (tb[IFLA_LINK_NETNSID]) l.link_netnsid = static_cast<int>(loader::rtattr_u32(tb[IFLA_LINK_NETNSID]));
    out.push_back(std::move(l));
    return ok();
  });
  if (!st) return unexpected(st.error());
  return out;
}

// The (ifindex, address) an RTM_NEWADDR carries, appended to `out`.
void add_address(const nlmsghdr& h, std::vector<std::pair<int, IpAddr>>& out) {
  if (h.nlmsg_type != RTM_NEWADDR || h.nlmsg_len < NLMSG_LENGTH(sizeof(ifaddrmsg))) return;
  const auto* ifa = static_cast<const ifaddrmsg*>(NLMSG_DATA(&h));
  const rtattr* tb[IFA_MAX + 1];
  loader::parse_rtattrs(IFA_RTA(ifa), h.nlmsg_len - NLMSG_LENGTH(sizeof(ifaddrmsg)), tb);
  const rtattr* a = tb[IFA_LOCAL] ? tb[IFA_LOCAL] : tb[IFA_ADDRESS];
  if (!a) return;
  const auto* data = static_cast<const uint8_t*>(RTA_DATA(a));
  if (ifa->ifa_family == AF_INET && RTA_PAYLOAD(a) >= 4) {
    out.emplace_back(static_cast<int>(ifa->ifa_index), IpAddr::from_v4_bytes(data));
  } else if (ifa->ifa_family == AF_INET6 && RTA_PAYLOAD(a) >= 16) {
    out.emplace_back(static_cast<int>(ifa->ifa_index), IpAddr::from_v6_bytes(data));
  }
}

// (ifindex, address) of every address in the socket's namespace.
Result<std::vector<std::pair<int, IpAddr>>> dump_addresses(loader::NetlinkSocket& nl) {
  ifaddrmsg req{};
  req.ifa_family = AF_UNSPEC;
  std::vector<std::pair<int, IpAddr>> out;
  auto st = nl.dump(RTM_GETADDR, req, "RTM_GETADDR", [&](const nlmsghdr& h) -> retina::Status {
    add_address(h, out);
    return ok();
  });
  if (!st) return unexpected(st.error());
  return out;
}

// The same for the namespace this one numbers `nsid`, without entering it
// (IFA_TARGET_NETNSID, which the kernel reads only from a strictly checked
// dump): CAP_NET_ADMIN, where setns would need CAP_SYS_ADMIN.
Result<std::vector<std::pair<int, IpAddr>>> dump_addresses_in(int nsid) {
  auto nl = loader::NetlinkSocket::open();
  if (!nl) return unexpected(nl.error());
  const int one = 1;
  if (::setsockopt(nl->fd(), SOL_NETLINK, NETLINK_GET_STRICT_CHK, &one, sizeof one) != 0)
    return unexpected(Error::system("setsockopt(NETLINK_GET_STRICT_CHK)", errno));
  struct {
    nlmsghdr h;
    ifaddrmsg a;
    char attrs[16];
  } req{};
  req.h.nlmsg_len = NLMSG_LENGTH(sizeof(ifaddrmsg));
  req.h.nlmsg_type = RTM_GETADDR;
  req.h.nlmsg_flags = NLM_F_DUMP;
  req.a.ifa_family = AF_UNSPEC;
  const int32_t id = nsid;
  loader::append_rtattr(&req.h, sizeof req, IFA_TARGET_NETNSID, &id, sizeof id);
  std::vector<std::pair<int, IpAddr>> out;
  auto st = nl->request(&req.h, fmt::format("RTM_GETADDR(target nsid {})", nsid), [&](const nlmsghdr& h) -> retina::Status {
    add_address(h, out);
    return ok();
  });
  if (!st) return unexpected(st.error());
  return out;
}

// The id this namespace gives the namespace open at `ns_fd` (RTM_GETNSID);
// -1 when it has none, i.e. no veth of ours has its peer there.
int nsid_of(loader::NetlinkSocket& nl, int ns_fd) {
  struct {
    nlmsghdr h;
    rtgenmsg g;
    char attrs[32];
  } req{};
  req.h.nlmsg_len = NLMSG_LENGTH(sizeof(rtgenmsg));
  req.h.nlmsg_type = RTM_GETNSID;
  req.g.rtgen_family = AF_UNSPEC;
  const uint32_t fd = static_cast<uint32_t>(ns_fd);
  if (!loader::append_rtattr(&req.h, sizeof req, NETNSA_FD, &fd, sizeof fd)) return -1;
  int nsid = -1;
  auto st = nl.request(&req.h, "RTM_GETNSID", [&](const nlmsghdr& h) -> retina::Status {
    if (h.nlmsg_type != RTM_NEWNSID || h.nlmsg_len < NLMSG_LENGTH(sizeof(rtgenmsg))) return ok();
    const rtattr* tb[NETNSA_MAX + 1];
    const auto* attrs = reinterpret_cast<const rtattr*>(static_cast<const char*>(NLMSG_DATA(&h)) + NLMSG_ALIGN(sizeof(rtgenmsg)));
    loader::parse_rtattrs(attrs, h.nlmsg_len - NLMSG_LENGTH(NLMSG_ALIGN(sizeof(rtgenmsg))), tb);
    if (tb[NETNSA_NSID]) nsid = static_cast<int>(loader::rtattr_u32(tb[NETNSA_NSID]));
    return ok();
  });
  return st ? nsid : -1;
}

// Network namespace files to look into, one per namespace (by inode),
// excluding our own.
std::vector<std::string> namespace_files() {
  std::vector<std::string> out;
  std::set<ino_t> seen;
  struct stat self{};
  if (::stat("/proc/thread-self/ns/net", &self) == 0) seen.insert(self.st_ino);
  auto consider = [&](const std::string& path) {
    struct stat st{};
    if (::stat(path.c_str(), &st) != 0) return;
    if (seen.insert(st.st_ino).second) out.push_back(path);
  };
  if (DIR* d = ::opendir("/run/netns")) {
    while (dirent* e = ::readdir(d)) {
      if (e->d_name[0] != '.') consider(std::string("/run/netns/") + e->d_name);
    }
    ::closedir(d);
  }
  if (DIR* d = ::opendir("/proc")) {
    while (dirent* e = ::readdir(d)) {
      if (e->d_name[0] >= '1' && e->d_name[0] <= '9') consider(fmt::format("/proc/{}/ns/net", e->d_name));
    }
    ::closedir(d);
  }
  return out;
}

struct NsAddress {
  int ifindex = 0;
  int peer_ifindex = 0;
  IpAddr ip;
};

// Addresses among `wanted` in the namespace at `path`, with the veth peer
// index of the interface holding them. Runs on its own thread: setns only
// moves the calling thread.
// `denied` is set when entering it was refused (EPERM: setns needs
// CAP_SYS_ADMIN, which the agent does not keep).
std::vector<NsAddress> addresses_in(const std::string& path, const std::set<IpAddr>& wanted, bool* denied) {
  std::vector<NsAddress> out;
  std::thread t([&] {
    loader::UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (fd.get() < 0) return;
    if (::setns(fd.get(), CLONE_NEWNET) != 0) {
      if (errno == EPERM) *denied = true;
      return;
    }
    auto nl = loader::NetlinkSocket::open();
    if (!nl) return;
    auto addrs = dump_addresses(*nl);
    if (!addrs) return;
    std::map<int, int> peers;
    bool have_links = false;
    for (const auto& [ifindex, ip] : *addrs) {
      if (!wanted.contains(ip)) continue;
      if (!have_links) {
        auto links = dump_links(*nl);
        if (!links) return;
        for (const auto& l : *links) peers[l.ifindex] = l.peer_ifindex;
        have_links = true;
      }
      out.push_back({ifindex, peers[ifindex], ip});
    }
  });
  t.join();
  return out;
}

}  // namespace

std::vector<SelectedPod> select_pods(const Spec& spec, const IpCache& cache, const std::string& node_name) {
  std::vector<SelectedPod> out;
  cache.for_each([&](const EndpointPtr& ep) {
    if (ep->kind != EndpointKind::kPod) return;
    if (!node_name.empty() && !ep->node_name.empty() && std::string_view(ep->node_name) != node_name) return;
    const std::string_view ns = ep->namespace_, name = ep->name;
    const bool named = std::any_of(spec.pod_names.begin(), spec.pod_names.end(), [&](const std::string& n) {
      const size_t slash = n.find('/');
      if (slash != std::string::npos) return std::string_view(n).substr(0, slash) == ns && std::string_view(n).substr(slash + 1) == name;
      return n == name && (spec.namespace_.empty() || spec.namespace_ == ns);
    });
    bool selected = spec.pod_selector.present || spec.namespace_selector.present;
    if (spec.pod_selector.present) {
      const std::vector<std::string>& labels = ep->labels;
      selected = selected && spec.pod_selector.matches(labels);
    }
    if (spec.namespace_selector.present) {
      // The label Kubernetes puts on every namespace; the cache keeps no
      // namespace labels.
      const std::vector<std::string> ns_labels = {"kubernetes.io/metadata.name=" + std::string(ns)};
      selected = selected && spec.namespace_selector.matches(ns_labels);
    }
    if (!selected && !named) return;
    out.push_back({std::string(ep->namespace_), ep->name, ep->ips});
  });
  std::sort(out.begin(), out.end(), [](const SelectedPod& a, const SelectedPod& b) {
    return std::tie(a.namespace_, a.name) < std::tie(b.namespace_, b.name);
  });
  return out;
}

std::vector<std::pair<IpAddr, std::string>> find_pod_veths(const std::vector<IpAddr>& ips, size_t* denied) {
  std::vector<std::pair<IpAddr, std::string>> out;
  if (denied) *denied = 0;
  auto nl = loader::NetlinkSocket::open();
  if (!nl) return out;
  auto links = dump_links(*nl);
  if (!links) return out;
  std::map<int, const Link*> veths;
  for (const auto& l : *links) {
    if (l.veth_other_ns) veths[l.ifindex] = &l;
  }
  if (veths.empty()) return out;
  std::set<IpAddr> wanted(ips.begin(), ips.end());
  // The peers' namespaces by the ids the veths carry: their addresses are
  // read from here, and the veth whose peer holds one is the pod's.
  std::set<int> nsids;
  for (const auto& [ifindex, l] : veths)
    if (l->link_netnsid >= 0) nsids.insert(l->link_netnsid);
  for (int nsid : nsids) {
    if (wanted.empty()) break;
    auto addrs = dump_addresses_in(nsid);
    if (!addrs) continue;  // no CAP_NET_ADMIN: entering the namespace is tried below
    for (const auto& [peer_ifindex, ip] : *addrs) {
      if (!wanted.contains(ip)) continue;
      for (const auto& [ifindex, l] : veths) {
        if (l->link_netnsid != nsid || l->peer_ifindex != peer_ifindex) continue;
        out.emplace_back(ip, l->name);
        wanted.erase(ip);
        break;
      }
    }
  }
  for (const auto& path : namespace_files()) {
    if (wanted.empty()) break;
    // Only a namespace holding the peer of one of our veths; other nodes'
    // pods (another test, another netns node) may have the same addresses
    // and the same interface indexes.
    loader::UniqueFd ns_fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (ns_fd.get() < 0) continue;
    const int nsid = nsid_of(*nl, ns_fd.get());
    if (nsid < 0) continue;
    bool refused = false;
    const auto addresses = addresses_in(path, wanted, &refused);
    if (refused && denied) ++*denied;
    for (const NsAddress& a : addresses) {
      // Both ends must point at each other, in this very namespace.
      auto it = veths.find(a.peer_ifindex);
      if (it == veths.end() || it->second->peer_ifindex != a.ifindex || it->second->link_netnsid != nsid) continue;
      out.emplace_back(a.ip, it->second->name);
      wanted.erase(a.ip);
    }
  }
  return out;
}

std::vector<std::string> host_interfaces() {
  std::vector<std::string> out;
  auto nl = loader::NetlinkSocket::open();
  if (!nl) return out;
  auto links = dump_links(*nl);
  if (!links) return out;
  for (const auto& l : *links) {
    if (l.up && !l.loopback) out.push_back(l.name);
  }
  return out;
}

Result<Targets> resolve_targets(const Spec& spec, const IpCache* cache, const std::string& node_name) {
  Targets t;
  if (!spec.selects_pods()) {
    std::vector<std::string> names = spec.interfaces;
    if (names.empty()) names = host_interfaces();
    for (const auto& n : names) {
      if (n != "any" && ::if_nametoindex(n.c_str()) == 0) {
        return unexpected(Error::invalid(fmt::format("capture '{}': no interface named '{}' on node {}", spec.name, n, node_name)));
      }
      t.interfaces.push_back({n, {}});
    }
    if (t.interfaces.empty()) return unexpected(Error::invalid(fmt::format("capture '{}': node {} has no interface that is up", spec.name, node_name)));
    return t;
  }
  if (!cache) return unexpected(Error::invalid("pod selectors need an endpoint source (endpointsFile or Kubernetes)"));
  t.pods = select_pods(spec, *cache, node_name);
  if (t.pods.empty()) {
    return unexpected(Error::invalid(fmt::format("capture '{}': the selectors match no pod on node {}", spec.name, node_name)));
  }
  std::vector<IpAddr> ips;
  for (const auto& p : t.pods) ips.insert(ips.end(), p.ips.begin(), p.ips.end());
  size_t denied = 0;
  const auto veths = find_pod_veths(ips, &denied);
  std::set<std::string> names;
  std::set<IpAddr> found;
  for (const auto& [ip, name] : veths) {
    found.insert(ip);
    if (names.insert(name).second) t.interfaces.push_back({name, {}});
  }
  // A pod whose veth is not visible (another CNI layout, or no access to
  // its namespace): capture on every interface, narrowed to its addresses.
  std::string missing;
  for (const auto& p : t.pods) {
    bool any = false;
    for (const auto& ip : p.ips) any = any || found.contains(ip);
    if (any) continue;
    for (const auto& ip : p.ips) {
      if (!missing.empty()) missing += " or ";
      missing += "host " + ip.to_string();
    }
    t.notes.push_back(fmt::format("pod {}/{}: host veth not found; captured on 'any' by address", p.namespace_, p.name));
  }
  if (!missing.empty()) t.interfaces.push_back({"any", missing});
  if (!missing.empty() && denied)
    t.notes.push_back(fmt::format(
        "{} pod network namespace(s) could not be read to find their veths: reading one from here needs "
        "CAP_NET_ADMIN and entering it (setns) CAP_SYS_ADMIN, which the agent does not have",
        denied));
  return t;
}

}  // namespace retina::capture
