#include "plugins/packetforward/packetforward.hpp"

#include <arpa/inet.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <sys/socket.h>

#include <bpf/libbpf.h>

#include <algorithm>
#include <cerrno>
#include <mutex>

#include <fmt/format.h>

#include "core/log.hpp"
#include "loader/fd.hpp"
#include "packetforward.skel.h"
#include "plugins/bpf_plugin.hpp"
#include "plugins/packetforward/pf_metrics.hpp"

namespace retina {

namespace {

// An AF_PACKET socket on `ifindex` with the counting filter attached. The
// socket is created with protocol 0, so it receives nothing until bind()
// names ETH_P_ALL, by which time the filter is in place: no packet is ever
// queued to it.
Result<loader::UniqueFd> open_counting_socket(int ifindex, int prog_fd) {
  loader::UniqueFd fd(::socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd) return unexpected(Error::system("socket(AF_PACKET, SOCK_RAW)", errno));
  if (::setsockopt(fd.get(), SOL_SOCKET, SO_ATTACH_BPF, &prog_fd, sizeof prog_fd) < 0)
    return unexpected(Error::system("setsockopt(SO_ATTACH_BPF)", errno));
  // Nothing is ever queued; keep the receive buffer at its minimum anyway.
  int rcvbuf = 0;
  (void)::setsockopt(fd.get(), SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
  sockaddr_ll sll{};
  sll.sll_family = AF_PACKET;
  sll.sll_protocol = htons(ETH_P_ALL);
  sll.sll_ifindex = ifindex;
  if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&sll), sizeof sll) < 0)
    return unexpected(Error::system(fmt::format("bind(AF_PACKET, ifindex {})", ifindex), errno));
  return fd;
}

bool packetparser_enabled(const Config& c) {
  return std::find(c.enabled_plugins.begin(), c.enabled_plugins.end(), "packetparser") != c.enabled_plugins.end();
}

}  // namespace

struct PacketForwardPlugin::Impl {
  Config cfg;
  InterfaceWatcher* watcher = nullptr;
  uint64_t subscription = 0;
  bool basic = false;

  BpfPlugin<::packetforward> obj{"packetforward"};

  mutable std::mutex mu;  // everything below
  bool started = false;
  std::optional<InterfaceInfo> bound;
  loader::UniqueFd sock;
  std::string last_error;  // why the default-route interface is not counted


  // Binds the socket to the current default-route interface (mu held).
  Status follow_default_route() {
    if (!started) return ok();
    const auto want = watcher->default_route_interface();
    if (want && bound && want->ifindex == bound->ifindex) {
      bound = want;  // name or state may have changed
      last_error.clear();
      return ok();
    }
    if (bound) {
      log::info("packetforward", "leaving interface", {{"interface", bound->name}, {"ifindex", bound->ifindex}});
      sock.reset();
      bound.reset();
    }
    if (!want) {
      last_error = "no default route";
      return ok();  // nothing to count; not a failure of the plugin
    }
    auto s = open_counting_socket(want->ifindex, bpf_program__fd(obj->progs.retina_pf_sock));
    if (!s) {
      last_error = fmt::format("counting on {}: {}", want->name, s.error().message);
      log::error("packetforward", "cannot count", {{"error", last_error}});
      return unexpected(Error(s.error()).wrap(fmt::format("packetforward: counting on {}", want->name)));
    }
    sock = std::move(*s);
    bound = want;
    last_error.clear();
    log::info("packetforward", "counting", {{"interface", want->name}, {"ifindex", want->ifindex}});
    return ok();
  }
};

PacketForwardPlugin::PacketForwardPlugin() : impl_(std::make_unique<Impl>()) {}

PacketForwardPlugin::~PacketForwardPlugin() { stop(); }

Status PacketForwardPlugin::init(PluginContext& ctx) {
  auto& m = *impl_;
  if (!ctx.config) return unexpected(Error::invalid("packetforward: no config"));
  m.cfg = *ctx.config;
  // Retina's forward_* are these NIC totals; podForwardMetrics gives them
  // to packetparser's pod traffic when it runs.
  m.basic = !(m.cfg.pod_forward_metrics && packetparser_enabled(m.cfg));

  if (auto st = check_context("packetforward", kNeeds, ctx); !st) return st;
  if (auto st = m.obj.require(*ctx.features, {KernelFeature::kBpfSyscall, KernelFeature::kSocketFilter}); !st)
    return st;
  if (auto st = m.obj.open(packetforward__open_opts, packetforward__load, packetforward__destroy); !st) return st;
  if (auto st = m.obj.load(); !st) return st;
  m.watcher = ctx.interfaces;

  if (ctx.registry) {
    auto mx = packetforward::ForwardMetrics::create(*ctx.registry, bpf_map__fd(m.obj->maps.retina_pf_cnt), m.basic);
    if (!mx) return unexpected(mx.error().wrap("packetforward metrics"));
    m.obj.add_collector(ctx.registry, std::move(*mx));
  }
  log::info("packetforward", "loaded",
            {{"exports", m.basic ? "forward_count/forward_bytes"
                                 : "node_forward_count/node_forward_bytes; packetparser feeds forward_* (podForwardMetrics)"}});
  return ok();
}

Status PacketForwardPlugin::start() {
  auto& m = *impl_;
  if (!m.obj.loaded()) return unexpected(Error::internal("packetforward: start before init"));
  {
    std::lock_guard lock(m.mu);
    if (m.started) return ok();
  }
  Status first = ok();
  {
    std::lock_guard lock(m.mu);
    m.started = true;
    first = m.follow_default_route();
  }
  // Every interface change may move the default route.
  m.subscription = m.watcher->subscribe([&m](const InterfaceInfo&, bool) {
    std::lock_guard lock(m.mu);
    (void)m.follow_default_route();
  });
  // A failed first bind is retried by reconcile(); the plugin runs.
  if (!first) log::warn("packetforward", "first bind failed; retried at reconcile", {{"error", first.error().message}});
  return ok();
}

void PacketForwardPlugin::stop() noexcept {
  auto& m = *impl_;
  // Unsubscribe before taking our lock: the watcher holds its own while
  // calling back.
  if (m.subscription) {
    m.watcher->unsubscribe(m.subscription);
    m.subscription = 0;
  }
  std::lock_guard lock(m.mu);
  m.started = false;
  m.sock.reset();
  m.bound.reset();
}

Status PacketForwardPlugin::reconcile() {
  auto& m = *impl_;
  std::lock_guard lock(m.mu);
  if (!m.started) return ok();
  return m.follow_default_route();
}

Result<PacketForwardPlugin::Totals> PacketForwardPlugin::totals() const {
  if (!impl_->obj.loaded()) return unexpected(Error::internal("packetforward: not loaded"));
  auto s = packetforward::read_sums(bpf_map__fd(impl_->obj->maps.retina_pf_cnt));
  if (!s) return unexpected(s.error());
  Totals t;
  t.packets = s->packets;
  t.bytes = s->bytes;
  return t;
}

std::optional<InterfaceInfo> PacketForwardPlugin::bound_interface() const {
  std::lock_guard lock(impl_->mu);
  return impl_->bound;
}

bool PacketForwardPlugin::exports_basic_forward() const { return impl_->basic; }

std::unique_ptr<Plugin> make_packetforward_plugin() { return std::make_unique<PacketForwardPlugin>(); }

}  // namespace retina
