// packetforward on a "node" namespace whose default route leaves through a
// veth: what the socket filter counts by direction must equal, exactly,
// what the interface itself counted over the same period; the socket
// follows the default route to another interface; the counts reach
// Retina's forward_* (whether packetparser runs or not) or, with
// podForwardMetrics and packetparser on, node_forward_*; and
// stop() leaves no packet socket behind.
#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <chrono>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "loader/fd.hpp"
#include "plugins/packetforward/packetforward.hpp"
#include "plugins/services.hpp"
#include "retina/features.hpp"
#include "retina/metrics/names.hpp"
#include "retina/metrics/registry.hpp"
#include "support/netns.hpp"
#include "support/privileged.hpp"
#include "support/prom_text.hpp"

using namespace retina;
using namespace std::chrono_literals;
using loader::UniqueFd;

namespace {

template <class Pred>
bool wait_for(Pred pred, std::chrono::milliseconds timeout = 5s) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(20ms);
  }
  return pred();
}

// A node namespace with two uplinks, eth0 -> peer 1 and eth1 -> peer 2,
// the default route through eth0, static neighbours and no IPv6, so the
// only packets are the test's own.
struct Topology {
  std::string tag = test::unique_tag();
  test::NetNs node{"retina-pf-node-" + tag};
  test::NetNs peer1{"retina-pf-p1-" + tag};
  test::NetNs peer2{"retina-pf-p2-" + tag};

  Topology() {
    for (const auto* ns : {&node, &peer1, &peer2})
      test::sh(fmt::format("ip netns exec {} sysctl -qw net.ipv6.conf.all.disable_ipv6=1 "
                           "net.ipv6.conf.default.disable_ipv6=1",
                           ns->name()));
    link(peer1, "eth0", 1);
    link(peer2, "eth1", 2);
    test::sh(fmt::format("ip -n {} route add default via 10.77.1.2", node.name()));
  }

  static std::string mac(const std::string& ns, const std::string& dev) {
    auto out = test::sh(fmt::format("ip netns exec {} cat /sys/class/net/{}/address", ns, dev));
    return out.substr(0, out.find('\n'));
  }

  // node:<dev> 10.77.<n>.1/24 <-> peer:eth0 10.77.<n>.2/24
  void link(const test::NetNs& peer, const std::string& dev, int n) {
    test::sh(fmt::format("ip -n {} link add {} type veth peer name eth0 netns {}", node.name(), dev, peer.name()));
    test::sh(fmt::format("ip -n {} addr add 10.77.{}.1/24 dev {}", node.name(), n, dev));
    test::sh(fmt::format("ip -n {} addr add 10.77.{}.2/24 dev eth0", peer.name(), n));
    test::sh(fmt::format("ip -n {} link set {} up", node.name(), dev));
    test::sh(fmt::format("ip -n {} link set eth0 up", peer.name()));
    test::sh(fmt::format("ip -n {} neigh replace 10.77.{}.2 lladdr {} dev {} nud permanent", node.name(), n,
                         mac(peer.name(), "eth0"), dev));
    test::sh(fmt::format("ip -n {} neigh replace 10.77.{}.1 lladdr {} dev eth0 nud permanent", peer.name(), n,
                         mac(node.name(), dev)));
  }
};

// `count` datagrams from namespace `ns` to ip:9 (nobody listens: the
// other side answers with ICMP port unreachable, rate limited).
void udp_to(const std::string& ns, const std::string& ip, size_t count, size_t payload) {
  test::in_netns(ns, [&] {
    UniqueFd s(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    REQUIRE(s);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(9);
    REQUIRE(::inet_pton(AF_INET, ip.c_str(), &a.sin_addr) == 1);
    std::vector<char> buf(payload, 'f');
    for (size_t i = 0; i < count; ++i)
      REQUIRE(::sendto(s.get(), buf.data(), buf.size(), 0, reinterpret_cast<sockaddr*>(&a), sizeof a) ==
              static_cast<ssize_t>(payload));
  });
}

// Interface counters (read in the calling thread's namespace) once they
// have not moved for a while.
test::LinkCounters settled(int ifindex) {
  auto last = test::read_counters(ifindex);
  auto stable_since = std::chrono::steady_clock::now();
  const auto deadline = stable_since + 10s;
  while (std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(50ms);
    auto now = test::read_counters(ifindex);
    if (now.rx_packets != last.rx_packets || now.tx_packets != last.tx_packets) {
      last = now;
      stable_since = std::chrono::steady_clock::now();
    } else if (std::chrono::steady_clock::now() - stable_since >= 400ms) {
      return now;
    }
  }
  FAIL("interface counters never settled");
  return last;
}

size_t packet_sockets() {
  std::ifstream f("/proc/thread-self/net/packet");
  std::string line;
  size_t n = 0;
  while (std::getline(f, line)) ++n;
  return n > 0 ? n - 1 : 0;  // header line
}

struct Instance {
  metrics::Registry registry;
  Config cfg;
  PluginServices services;  // outlives the plugin
  PacketForwardPlugin plugin;

  explicit Instance(bool with_packetparser, bool pod_forward_metrics = false) {
    cfg.enabled_plugins = {"packetforward"};
    if (with_packetparser) cfg.enabled_plugins.push_back("packetparser");
    cfg.pod_forward_metrics = pod_forward_metrics;
    PluginContext ctx;
    ctx.config = &cfg;
    ctx.registry = &registry;
    REQUIRE(services.provide(PacketForwardPlugin::kNeeds, ctx));
    auto st = plugin.init(ctx);
    INFO((st ? "" : st.error().message));
    REQUIRE(st);
    REQUIRE(plugin.start());
  }
  PacketForwardPlugin::Totals totals() {
    auto t = plugin.totals();
    REQUIRE(t);
    return *t;
  }
};

class Without final : public FeatureDetector {
 public:
  explicit Without(KernelFeature f) : missing_(f) {}
  Status probe(KernelFeature f) override {
    if (f == missing_) return unexpected(Error::unsupported(std::string("test kernel lacks ") + to_string(f)));
    return ok();
  }

 private:
  KernelFeature missing_;
};

}  // namespace

TEST_CASE("packetforward counts the default-route interface exactly and follows the route", "[priv][packetforward]") {
  RETINA_REQUIRE_PRIVILEGED();
  Topology topo;
  test::EnterNetns in_node(topo.node.name());  // watcher and sockets live in the node namespace
  const int eth0 = test::ifindex_of("eth0");
  const int eth1 = test::ifindex_of("eth1");
  const size_t sockets_before = packet_sockets();

  Instance basic(true);       // Retina's forward_count / forward_bytes, packetparser on or not
  Instance ours(true, true);  // podForwardMetrics: node_forward_count / node_forward_bytes
  CHECK(basic.plugin.exports_basic_forward());
  CHECK_FALSE(ours.plugin.exports_basic_forward());
  REQUIRE(wait_for([&] {
    auto b = basic.plugin.bound_interface();
    auto o = ours.plugin.bound_interface();
    return b && o && b->ifindex == eth0 && o->ifindex == eth0;
  }));
  CHECK(packet_sockets() == sockets_before + 2);

  auto check_period = [&](int ifindex, auto&& traffic) {
    const auto c0 = settled(ifindex);
    const auto b0 = basic.totals();
    const auto o0 = ours.totals();
    traffic();
    const auto c1 = settled(ifindex);
    const auto b1 = basic.totals();
    const auto o1 = ours.totals();
    auto same = [&](const PacketForwardPlugin::Totals& before, const PacketForwardPlugin::Totals& after) {
      CHECK(after.packets[RETINA_FWD_INGRESS] - before.packets[RETINA_FWD_INGRESS] == c1.rx_packets - c0.rx_packets);
      CHECK(after.bytes[RETINA_FWD_INGRESS] - before.bytes[RETINA_FWD_INGRESS] == c1.rx_bytes - c0.rx_bytes);
      CHECK(after.packets[RETINA_FWD_EGRESS] - before.packets[RETINA_FWD_EGRESS] == c1.tx_packets - c0.tx_packets);
      CHECK(after.bytes[RETINA_FWD_EGRESS] - before.bytes[RETINA_FWD_EGRESS] == c1.tx_bytes - c0.tx_bytes);
    };
    same(b0, b1);
    same(o0, o1);
    return std::make_pair(c1.tx_packets - c0.tx_packets, c1.rx_packets - c0.rx_packets);
  };

  // Out of the node and into it, over eth0.
  auto [tx0, rx0] = check_period(eth0, [&] {
    udp_to(topo.node.name(), "10.77.1.2", 300, 200);
    udp_to(topo.peer1.name(), "10.77.1.1", 120, 1000);
  });
  CHECK(tx0 >= 300);
  CHECK(rx0 >= 120);

  // The series mirror the kernel totals.
  {
    const auto t = basic.totals();
    auto p = test::parse_prom_text(basic.registry.expose());
    REQUIRE(p.error.empty());
    CHECK(p.value(metrics::names::kForwardCount, {{"direction", "egress"}}) == double(t.packets[RETINA_FWD_EGRESS]));
    CHECK(p.value(metrics::names::kForwardCount, {{"direction", "ingress"}}) == double(t.packets[RETINA_FWD_INGRESS]));
    CHECK(p.value(metrics::names::kForwardBytes, {{"direction", "egress"}}) == double(t.bytes[RETINA_FWD_EGRESS]));
    CHECK(p.value(metrics::names::kForwardBytes, {{"direction", "ingress"}}) == double(t.bytes[RETINA_FWD_INGRESS]));
    CHECK(p.family(metrics::names::kForwardCount)->type == "counter");
    CHECK(p.family(kNodeForwardCount) == nullptr);
    const auto u = ours.totals();
    auto q = test::parse_prom_text(ours.registry.expose());
    REQUIRE(q.error.empty());
    CHECK(q.value(kNodeForwardCount, {{"direction", "egress"}}) == double(u.packets[RETINA_FWD_EGRESS]));
    CHECK(q.value(kNodeForwardBytes, {{"direction", "ingress"}}) == double(u.bytes[RETINA_FWD_INGRESS]));
    CHECK(q.family(metrics::names::kForwardCount) == nullptr);
  }

  // The default route moves to eth1: counting follows it.
  test::sh(fmt::format("ip -n {} route replace default via 10.77.2.2", topo.node.name()));
  REQUIRE(wait_for([&] {
    auto b = basic.plugin.bound_interface();
    auto o = ours.plugin.bound_interface();
    return b && o && b->ifindex == eth1 && o->ifindex == eth1;
  }));
  CHECK(basic.plugin.reconcile());
  auto [tx1, rx1] = check_period(eth1, [&] {
    udp_to(topo.node.name(), "10.77.2.2", 80, 300);
    udp_to(topo.node.name(), "10.77.1.2", 50, 300);  // eth0: no longer counted
    udp_to(topo.peer2.name(), "10.77.2.1", 40, 64);
  });
  CHECK(tx1 >= 80);
  CHECK(rx1 >= 40);

  // No default route: nothing bound, no error.
  test::sh(fmt::format("ip -n {} route del default", topo.node.name()));
  REQUIRE(wait_for([&] { return !basic.plugin.bound_interface() && !ours.plugin.bound_interface(); }));
  CHECK(basic.plugin.reconcile());
  CHECK(packet_sockets() == sockets_before);
  test::sh(fmt::format("ip -n {} route add default via 10.77.1.2", topo.node.name()));
  REQUIRE(wait_for([&] { return basic.plugin.bound_interface().has_value(); }));

  basic.plugin.stop();
  ours.plugin.stop();
  CHECK_FALSE(basic.plugin.bound_interface());
  CHECK(packet_sockets() == sockets_before);

  // Without packetparser forward_* are the NIC totals with the switch too.
  for (const bool pod_forward : {false, true}) {
    Instance no_pp(false, pod_forward);
    CHECK(no_pp.plugin.exports_basic_forward());
  }
}

TEST_CASE("packetforward: a kernel without socket filters disables the plugin", "[priv][packetforward]") {
  RETINA_REQUIRE_PRIVILEGED();
  Config cfg;
  Without features(KernelFeature::kSocketFilter);
  PluginContext ctx;
  ctx.config = &cfg;
  ctx.features = &features;
  PluginServices services;
  REQUIRE(services.provide(PacketForwardPlugin::kNeeds, ctx));
  PacketForwardPlugin p;
  auto st = p.init(ctx);
  REQUIRE_FALSE(st);
  CHECK(st.error().kind == Error::Kind::kUnsupported);
  CHECK(st.error().message.find("packetforward") != std::string::npos);
}
