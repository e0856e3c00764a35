// The rtnetlink interface watcher, and packetparser following it: pod
// veths that appear are attached within a second, vanished ones are
// forgotten without errors, and the default-route interface is tracked.
#include <catch2/catch.hpp>

#include <chrono>
#include <mutex>
#include <thread>
#include <vector>

#include "loader/interface_watcher.hpp"
#include "plugins/packetparser/packetparser.hpp"
#include "plugins/services.hpp"
#include "support/netns.hpp"
#include "support/privileged.hpp"

using namespace retina;
using namespace std::chrono_literals;
using retina::loader::TcDirection;

namespace {

template <class Pred>
bool wait_for(Pred pred, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(10ms);
  }
  return pred();
}

struct Recorder {
  std::mutex mu;
  std::vector<std::pair<InterfaceInfo, bool>> events;

  InterfaceWatcher::Callback callback() {
    return [this](const InterfaceInfo& info, bool added) {
      std::lock_guard lock(mu);
      events.emplace_back(info, added);
    };
  }
  // The last event for an interface name, if any.
  std::optional<std::pair<InterfaceInfo, bool>> last(const std::string& name) {
    std::lock_guard lock(mu);
    for (auto it = events.rbegin(); it != events.rend(); ++it)
      if (it->first.name == name) return *it;
    return std::nullopt;
  }
};

std::optional<InterfaceInfo> find(const std::vector<InterfaceInfo>& v, const std::string& name) {
  for (const auto& i : v)
    if (i.name == name) return i;
  return std::nullopt;
}

}  // namespace

TEST_CASE("interface watcher classifies pod veths in the root namespace", "[priv][loader][watcher]") {
  RETINA_REQUIRE_PRIVILEGED();
  test::Node node({.pods = 1});  // bridge and host veths in the root namespace
  Config cfg;
  auto w = InterfaceWatcher::create(cfg);
  REQUIRE(w);
  REQUIRE((*w)->start());
  auto snap = (*w)->snapshot();
  auto veth = find(snap, node.pod(0).host_if);
  REQUIRE(veth);
  CHECK(veth->is_pod_veth);  // its peer lives in another namespace
  CHECK(veth->kind == "veth");
  CHECK(veth->ifindex == node.pod(0).host_ifindex);
  CHECK(veth->up);
  auto br = find(snap, node.bridge());
  REQUIRE(br);
  CHECK(br->kind == "bridge");
  CHECK_FALSE(br->is_pod_veth);
  auto lo = find(snap, "lo");
  REQUIRE(lo);
  CHECK_FALSE(lo->is_pod_veth);
  (*w)->stop();
}

TEST_CASE("interface watcher reports veths and default routes as they change", "[priv][loader][watcher]") {
  RETINA_REQUIRE_PRIVILEGED();
  test::Node node({.pods = 1, .isolated = true});
  Config cfg;
  auto w = InterfaceWatcher::create(cfg);
  REQUIRE(w);
  REQUIRE((*w)->start());
  Recorder rec;
  const uint64_t id = (*w)->subscribe(rec.callback());
  // Existing interfaces are delivered at once.
  auto first = rec.last(node.pod(0).host_if);
  REQUIRE(first);
  CHECK(first->second);
  CHECK(first->first.is_pod_veth);
  CHECK_FALSE((*w)->default_route_interface().has_value());

  const auto& added = node.add_pod();
  const std::string added_name = added.host_if;
  const int added_ifindex = added.host_ifindex;
  REQUIRE(wait_for(
      [&] {
        auto e = rec.last(added_name);
        return e && e->second && e->first.is_pod_veth;
      },
      1s));
  CHECK(rec.last(added_name)->first.ifindex == added_ifindex);

  node.remove_pod(1);
  REQUIRE(wait_for(
      [&] {
        auto e = rec.last(added_name);
        return e && !e->second;
      },
      1s));
  CHECK_FALSE(find((*w)->snapshot(), added_name).has_value());

  test::sh("ip addr add 10.250.0.1/24 dev " + node.bridge());
  test::sh("ip route add default via 10.250.0.254 dev " + node.bridge());
  REQUIRE(wait_for(
      [&] {
        auto d = (*w)->default_route_interface();
        return d && d->name == node.bridge();
      },
      1s));
  REQUIRE(wait_for(
      [&] {
        auto e = rec.last(node.bridge());
        return e && e->second && e->first.is_default_route;
      },
      1s));
  test::sh("ip route del default");
  REQUIRE(wait_for([&] { return !(*w)->default_route_interface().has_value(); }, 1s));
  REQUIRE(wait_for(
      [&] {
        auto e = rec.last(node.bridge());
        return e && e->second && !e->first.is_default_route;
      },
      1s));

  (*w)->unsubscribe(id);
  (*w)->stop();
}

TEST_CASE("interface watcher honours pod interface prefixes", "[priv][loader][watcher]") {
  RETINA_REQUIRE_PRIVILEGED();
  test::Node node({.pods = 2, .isolated = true});
  Config cfg;
  cfg.pod_interface_prefixes = {node.pod(1).host_if};
  auto w = InterfaceWatcher::create(cfg);
  REQUIRE(w);
  REQUIRE((*w)->start());
  auto snap = (*w)->snapshot();
  CHECK_FALSE(find(snap, node.pod(0).host_if)->is_pod_veth);
  CHECK(find(snap, node.pod(1).host_if)->is_pod_veth);
  (*w)->stop();
}

TEST_CASE("packetparser attaches to new pod veths within a second and forgets deleted ones", "[priv][packetparser][watcher]") {
  RETINA_REQUIRE_PRIVILEGED();
  auto tcx = GENERATE(TcxMode::kOff, TcxMode::kAuto);
  test::Node node({.pods = 1, .isolated = true});
  Config cfg;
  cfg.data_aggregation_level = AggregationLevel::kHigh;
  cfg.conntrack_max_entries = 1024;
  cfg.enable_tcx = tcx;
  cfg.host_interfaces.clear();
  cfg.pod_interface_prefixes = {node.host_prefix()};
  auto w = InterfaceWatcher::create(cfg);
  REQUIRE(w);
  REQUIRE((*w)->start());
  PluginServices services;
  PacketParserPlugin pp;
  PluginContext ctx;
  ctx.config = &cfg;
  ctx.interfaces = w->get();
  REQUIRE(services.provide(PacketParserPlugin::kNeeds, ctx));
  REQUIRE(pp.init(ctx));
  REQUIRE(pp.start());
  CHECK(pp.attachments().size() == 1);  // existing interfaces are attached during start

  const auto& added = node.add_pod();
  const int ifindex = added.host_ifindex;
  auto attached = [&] {
    for (const auto& a : pp.attachments())
      if (a.ifindex == ifindex) return true;
    return false;
  };
  const auto t0 = std::chrono::steady_clock::now();
  REQUIRE(wait_for(attached, 1s));
  INFO("attached after " << std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count() << " ms");
  if (tcx == TcxMode::kOff) {
    CHECK(test::count_retina_tc_filters(ifindex, TcDirection::kIngress) == 1);
    CHECK(test::count_retina_tc_filters(ifindex, TcDirection::kEgress) == 1);
  } else {
    CHECK(test::tcx_programs(ifindex, TcDirection::kIngress).size() == 1);
  }

  node.remove_pod(1);
  REQUIRE(wait_for([&] { return !attached(); }, 1s));
  CHECK(pp.attachments().size() == 1);
  CHECK(pp.degraded_reason().empty());
  CHECK(pp.reconcile());

  pp.stop();
  (*w)->stop();
  CHECK(test::count_retina_tc_filters(node.pod(0).host_ifindex, TcDirection::kIngress) == 0);
}

TEST_CASE("packetparser attaches to node interfaces by name, and to the default route at low only", "[priv][packetparser][watcher]") {
  RETINA_REQUIRE_PRIVILEGED();
  auto level = GENERATE(AggregationLevel::kLow, AggregationLevel::kHigh);
  test::Node node({.pods = 1, .isolated = true});
  test::sh("ip addr add 10.250.0.1/24 dev " + node.bridge());
  test::sh("ip route add default via 10.250.0.254 dev " + node.bridge());
  const int br = test::ifindex_of(node.bridge());

  auto run = [&](std::vector<std::string> host_interfaces) {
    Config cfg;
    cfg.data_aggregation_level = level;
    cfg.conntrack_max_entries = 1024;
    cfg.enable_tcx = TcxMode::kOff;
    cfg.host_interfaces = std::move(host_interfaces);
    cfg.pod_interface_prefixes = {node.host_prefix()};
    PluginServices services;
    PacketParserPlugin pp;
    PluginContext ctx;
    ctx.config = &cfg;
    REQUIRE(services.provide(PacketParserPlugin::kNeeds, ctx));
    REQUIRE(pp.init(ctx));
    REQUIRE(pp.start());
    std::optional<PacketParserPlugin::Attachment> on_bridge;
    for (const auto& a : pp.attachments())
      if (a.ifindex == br) on_bridge = a;
    pp.stop();
    return on_bridge;
  };

  auto by_name = run({node.bridge()});
  REQUIRE(by_name);
  CHECK(by_name->host);
  auto by_auto = run({"auto"});
  if (level == AggregationLevel::kLow) {
    REQUIRE(by_auto);
    CHECK(by_auto->host);
  } else {
    CHECK_FALSE(by_auto.has_value());
  }
  CHECK(test::count_retina_tc_filters(br, TcDirection::kIngress) == 0);
}
