// rtnetlink interface watcher: a thread joined to the link and route
// multicast groups. After each batch of messages the interface roles are
// recomputed and compared with what subscribers last saw, so every change
// (appeared, vanished, became or stopped being a pod veth or the
// default-route interface, renamed, up/down) is delivered once.
#include "core/log.hpp"
#include "loader/interface_watcher.hpp"

#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <map>
#include <mutex>
#include <set>
#include <thread>
#include <tuple>

#include <fmt/format.h>

#include "loader/fd.hpp"
#include "loader/netlink.hpp"

namespace retina {

namespace {

using loader::NetlinkSocket;
using loader::UniqueFd;

struct RawLink {
  std::string name;
  std::string kind;
  bool up = false;
  bool peer_in_other_netns = false;  // IFLA_LINK_NETNSID present
};

// A default route in the main table: (family, metric, output interface).
using RouteKey = std::tuple<int, uint32_t, int>;

bool same(const InterfaceInfo& a, const InterfaceInfo& b) {
  return a.ifindex == b.ifindex && a.name == b.name && a.kind == b.kind && a.is_pod_veth == b.is_pod_veth &&
         a.is_default_route == b.is_default_route && a.up == b.up;
}

class RtnlInterfaceWatcher final : public InterfaceWatcher {
 public:
  explicit RtnlInterfaceWatcher(const Config& config) : prefixes_(config.pod_interface_prefixes) {}
  ~RtnlInterfaceWatcher() override { stop(); }

  uint64_t subscribe(Callback cb) override {
    std::lock_guard dispatch(dispatch_mu_);
    uint64_t id = ++next_id_;
    for (const auto& [ifindex, info] : published_) {
      try {
        cb(info, true);
      } catch (const std::exception& e) {
        log::error("interface-watcher", "subscriber failed", {{"error", e.what()}});
      }
    }
    subscribers_.emplace(id, std::move(cb));
    return id;
  }

  void unsubscribe(uint64_t id) override {
    std::lock_guard dispatch(dispatch_mu_);
    subscribers_.erase(id);
  }

  Status start() override {
    if (thread_.joinable()) return ok();
    auto events = NetlinkSocket::open(RTMGRP_LINK | RTMGRP_IPV4_ROUTE | RTMGRP_IPV6_ROUTE);
    if (!events) return unexpected(events.error().wrap("interface watcher"));
    events_ = std::make_unique<NetlinkSocket>(std::move(*events));
    int efd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (efd < 0) return unexpected(Error::system("eventfd(interface watcher)", errno));
    stop_fd_.reset(efd);

    // The socket is joined before the dump, so no change falls between.
    if (auto st = resync(); !st) return unexpected(st.error().wrap("interface watcher initial dump"));
    thread_ = std::thread([this] { run(); });
    return ok();
  }

  void stop() noexcept override {
    if (!thread_.joinable()) return;
    uint64_t one = 1;
    (void)!::write(stop_fd_.get(), &one, sizeof one);
    thread_.join();
    events_.reset();
    stop_fd_.reset();
  }

  std::vector<InterfaceInfo> snapshot() const override {
    std::lock_guard lock(state_mu_);
    std::vector<InterfaceInfo> out;
    out.reserve(current_.size());
    for (const auto& [ifindex, info] : current_) out.push_back(info);
    return out;
  }

  std::optional<InterfaceInfo> default_route_interface() const override {
    std::lock_guard lock(state_mu_);
    // Lowest metric wins; IPv4 before IPv6.
    for (int family : {AF_INET, AF_INET6}) {
      for (const auto& [fam, metric, oif] : routes_) {
        if (fam != family) continue;
        auto it = current_.find(oif);
        if (it != current_.end()) return it->second;
      }
    }
    return std::nullopt;
  }

 private:
  bool is_pod_veth(const RawLink& l) const {
    if (!prefixes_.empty()) {
      for (const auto& p : prefixes_)
        if (!p.empty() && l.name.rfind(p, 0) == 0) return true;
      return false;
    }
    return l.kind == "veth" && l.peer_in_other_netns;
  }

  // Recomputes every interface's role (under state_mu_).
  void recompute() {
    std::set<int> default_oifs;
    for (const auto& [fam, metric, oif] : routes_) default_oifs.insert(oif);
    current_.clear();
    for (const auto& [ifindex, l] : links_) {
      InterfaceInfo info;
      info.ifindex = ifindex;
      info.name = l.name;
      info.kind = l.kind;
      info.is_pod_veth = is_pod_veth(l);
      info.is_default_route = default_oifs.count(ifindex) > 0;
      info.up = l.up;
      current_.emplace(ifindex, std::move(info));
    }
  }

  // Delivers the difference between current_ and published_ (dispatch_mu_ held).
  void publish() {
    std::vector<std::pair<InterfaceInfo, bool>> changes;
    {
      std::lock_guard lock(state_mu_);
      for (const auto& [ifindex, info] : published_)
        if (!current_.count(ifindex)) changes.emplace_back(info, false);
      for (const auto& [ifindex, info] : current_) {
        auto it = published_.find(ifindex);
        if (it == published_.end() || !same(it->second, info)) changes.emplace_back(info, true);
      }
    }
    for (const auto& [info, added] : changes) {
      if (added) published_[info.ifindex] = info;
      else published_.erase(info.ifindex);
      // Copy: a callback may unsubscribe itself.
      auto subs = subscribers_;
      for (const auto& [id, cb] : subs) {
        if (!subscribers_.count(id)) continue;
        try {
          cb(info, added);
        } catch (const std::exception& e) {
          log::error("interface-watcher", "subscriber failed", {{"interface", info.name}, {"error", e.what()}});
        }
      }
    }
  }

  void on_link(const nlmsghdr& h) {
    auto m = loader::parse_link_message(h);
    if (!m) return;
    // Only AF_UNSPEC messages describe the link. The bridge also sends
    // RTM_NEWLINK/RTM_DELLINK (AF_BRIDGE) for a port's state, without the
    // link's kind or peer namespace: taken as the link, every port change
    // made a bridged pod veth look like something else for a moment, and
    // packetparser detached and reattached.
    if (m->family != AF_UNSPEC) return;
    if (m->deleted) {
      links_.erase(m->ifindex);
      return;
    }
    RawLink l;
    l.name = std::move(m->name);
    l.kind = std::move(m->kind);
    l.up = m->up;
    l.peer_in_other_netns = m->peer_in_other_netns;
    links_[m->ifindex] = std::move(l);
  }

  void on_route(const nlmsghdr& h) {
    auto m = loader::parse_route_message(h);
    if (!m || m->dst_len != 0 || (m->family != AF_INET && m->family != AF_INET6)) return;
    if (m->table != RT_TABLE_MAIN || m->type != RTN_UNICAST) return;
    // `ip route replace` announces only the new route (NLM_F_REPLACE): the
    // one it replaced, same family and metric, is gone.
    if (!m->deleted && (h.nlmsg_flags & NLM_F_REPLACE)) {
      for (auto it = routes_.begin(); it != routes_.end();) {
        if (std::get<0>(*it) == m->family && std::get<1>(*it) == m->metric) it = routes_.erase(it);
        else ++it;
      }
    }
    for (int oif : m->oifs) {
      RouteKey k{m->family, m->metric, oif};
      if (m->deleted) routes_.erase(k);
      else routes_.insert(k);
    }
  }

  void on_message(const nlmsghdr& h) {
    switch (h.nlmsg_type) {
      case RTM_NEWLINK:
      case RTM_DELLINK: on_link(h); break;
      case RTM_NEWROUTE:
      case RTM_DELROUTE: on_route(h); break;
      default: break;
    }
  }

  // Replaces the state with a fresh dump, then publishes the difference.
  Status resync() {
    auto sock = NetlinkSocket::open();
    if (!sock) return unexpected(sock.error());
    std::map<int, RawLink> links;
    std::set<RouteKey> routes;
    {
      std::lock_guard dispatch(dispatch_mu_);
      std::lock_guard lock(state_mu_);
      std::swap(links, links_);
      std::swap(routes, routes_);
      auto handler = [this](const nlmsghdr& h) -> Status {
        on_message(h);
        return ok();
      };
      ifinfomsg links_req{};
      links_req.ifi_family = AF_UNSPEC;
      Status st = sock->dump(RTM_GETLINK, links_req, "RTM_GETLINK dump", handler);
      for (int family : {AF_INET, AF_INET6}) {
        if (!st) break;
        rtmsg routes_req{};
        routes_req.rtm_family = static_cast<unsigned char>(family);
        st = sock->dump(RTM_GETROUTE, routes_req,
                        family == AF_INET ? "RTM_GETROUTE dump (IPv4)" : "RTM_GETROUTE dump (IPv6)", handler);
      }
      if (!st) {
        std::swap(links, links_);  // keep the previous state
        std::swap(routes, routes_);
        return st;
      }
      recompute();
    }
    std::lock_guard dispatch(dispatch_mu_);
    publish();
    return ok();
  }

  void run() {
    for (;;) {
      pollfd fds[2] = {{events_->fd(), POLLIN, 0}, {stop_fd_.get(), POLLIN, 0}};
      int n = ::poll(fds, 2, -1);
      if (n < 0) {
        if (errno == EINTR) continue;
        log::error("interface-watcher", "poll failed", {{"error", Error::system("poll", errno).message}});
        return;
      }
      if (fds[1].revents) return;
      bool resync_needed = false;
      {
        std::lock_guard dispatch(dispatch_mu_);
        {
          std::lock_guard lock(state_mu_);
          for (;;) {
            auto got = events_->receive([this](const nlmsghdr& h) -> Status {
              on_message(h);
              return ok();
            });
            if (!got) {
              if (got.error().code == ENOBUFS) resync_needed = true;
              else log::warn("interface-watcher", "read failed", {{"error", got.error().message}});
              break;
            }
            if (!*got) break;
          }
          recompute();
        }
        publish();
      }
      if (resync_needed) {
        // The kernel dropped notifications: start over from a dump.
        if (auto st = resync(); !st) log::warn("interface-watcher", "resync failed", {{"error", st.error().message}});
      }
    }
  }

  const std::vector<std::string> prefixes_;
  std::unique_ptr<NetlinkSocket> events_;
  UniqueFd stop_fd_;
  std::thread thread_;

  mutable std::mutex state_mu_;  // links_, routes_, current_
  std::map<int, RawLink> links_;
  std::set<RouteKey> routes_;
  std::map<int, InterfaceInfo> current_;

  std::recursive_mutex dispatch_mu_;  // subscribers_, published_; held while calling back
  std::map<uint64_t, Callback> subscribers_;
  std::map<int, InterfaceInfo> published_;
  uint64_t next_id_ = 0;
};

}  // namespace

Result<std::unique_ptr<InterfaceWatcher>> InterfaceWatcher::create(const Config& config) {
  return std::unique_ptr<InterfaceWatcher>(std::make_unique<RtnlInterfaceWatcher>(config));
}

}  // namespace retina
