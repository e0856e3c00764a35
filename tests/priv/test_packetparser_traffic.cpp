// packetparser attached to real pod veths: known TCP, UDP and ICMP traffic
// between three pod namespaces, and the records summed with the counting
// rule must equal, per veth and direction, exactly what the veth itself
// counted over the same period, at aggregation low and high, with legacy
// tc and with TCX.
#include <catch2/catch.hpp>

#include <netinet/in.h>

#include <chrono>
#include <cstring>
#include <map>
#include <thread>
#include <vector>

#include "plugins/packetparser/packetparser.hpp"
#include "plugins/services.hpp"
#include "retina/endpoint.hpp"
#include "retina/ip_cache.hpp"
#include "support/netns.hpp"
#include "support/packet_events.hpp"
#include "support/privileged.hpp"

using namespace retina;
using namespace std::chrono_literals;
using retina::loader::TcDirection;

namespace {

struct Sum {
  uint64_t packets = 0;
  uint64_t bytes = 0;
  uint64_t records = 0;
};

std::vector<retina_packet_event> drain(PacketParserPlugin& pp) { return test::drain_packet_events(pp, 4096); }

// (ifindex, observation point) -> totals with the counting rule.
std::map<std::pair<uint32_t, uint8_t>, Sum> sum(const std::vector<retina_packet_event>& evs) {
  std::map<std::pair<uint32_t, uint8_t>, Sum> out;
  for (const auto& e : evs) {
    auto& s = out[{e.ifindex, e.obs_point}];
    s.packets += e.prev_packets + ((e.flags & RETINA_PKT_F_NO_PACKET) ? 0 : 1);
    s.bytes += e.bytes + e.prev_bytes;
    s.records++;
  }
  return out;
}

template <class Pred>
bool wait_for(Pred pred, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(20ms);
  }
  return pred();
}

// Starts packetparser with the services it declares and waits until it
// holds the three pod veths.
void start_on_pods(PluginServices& services, PacketParserPlugin& pp, const Config& cfg) {
  PluginContext ctx;
  ctx.config = &cfg;
  REQUIRE(services.provide(PacketParserPlugin::kNeeds, ctx));
  REQUIRE(pp.init(ctx));
  REQUIRE(pp.start());
  REQUIRE(wait_for([&] { return pp.attachments().size() == 3; }, 5s));
}

void traffic(const test::Node& node) {
  const auto& p = node.pods();
  auto t1 = test::tcp_send(p[0], p[1], false, 5001, 1'000'000);
  REQUIRE(t1.received == 1'000'000);
  auto t2 = test::tcp_send(p[1], p[2], true, 5002, 300'000);
  REQUIRE(t2.received == 300'000);
  auto t3 = test::tcp_send(p[2], p[0], false, 5003, 1);
  REQUIRE(t3.received == 1);
  REQUIRE(test::udp_send(p[2], p[0], false, 5004, 200, 1000) == 200);
  REQUIRE(test::udp_send(p[0], p[2], true, 5005, 50, 500) == 50);
  REQUIRE(test::ping(p[1], p[0], false, 3) == 3);
  REQUIRE(test::ping(p[0], p[1], true, 2) == 2);
}

}  // namespace

TEST_CASE("packetparser accounts for every packet through the pod veths", "[priv][packetparser][traffic]") {
  RETINA_REQUIRE_PRIVILEGED();
  struct Mode {
    AggregationLevel level;
    TcxMode tcx;
  };
  auto mode = GENERATE(Mode{AggregationLevel::kLow, TcxMode::kOff}, Mode{AggregationLevel::kLow, TcxMode::kAuto},
                       Mode{AggregationLevel::kHigh, TcxMode::kOff}, Mode{AggregationLevel::kHigh, TcxMode::kAuto});
  const bool high = mode.level == AggregationLevel::kHigh;
  INFO("aggregation " << (high ? "high" : "low") << ", " << (mode.tcx == TcxMode::kAuto ? "tcx" : "legacy tc"));

  test::Node node({.pods = 3, .isolated = true});
  node.wait_quiet();

  Config cfg;
  cfg.data_aggregation_level = mode.level;
  cfg.enable_tcx = mode.tcx;
  cfg.host_interfaces.clear();
  cfg.pod_interface_prefixes = {node.host_prefix()};
  cfg.conntrack_report_interval = 1s;
  cfg.conntrack_max_entries = 4096;
  PluginServices services;
  PacketParserPlugin pp;
  start_on_pods(services, pp, cfg);
  CHECK(pp.degraded_reason().empty());
  for (const auto& a : pp.attachments()) CHECK(a.tcx == (mode.tcx == TcxMode::kAuto));

  node.wait_quiet();
  if (high) REQUIRE(pp.sweep(true));
  drain(pp);
  const auto base_stats = *pp.stats();
  std::map<int, test::LinkCounters> before;
  for (const auto& p : node.pods()) before[p.host_ifindex] = test::read_counters(p.host_ifindex);

  traffic(node);
  node.wait_quiet();

  std::map<int, test::LinkCounters> after;
  for (const auto& p : node.pods()) after[p.host_ifindex] = test::read_counters(p.host_ifindex);
  if (high) {
    // Let the report interval (1 s) and the delete grace of closed
    // connections (1 s) pass, then sweep: every pending count is reported.
    std::this_thread::sleep_for(2200ms);
    REQUIRE(pp.sweep(false));
  }
  auto evs = drain(pp);
  auto sums = sum(evs);

  for (const auto& p : node.pods()) {
    INFO("pod veth " << p.host_if);
    const auto& b = before[p.host_ifindex];
    const auto& a = after[p.host_ifindex];
    const auto from = sums[{static_cast<uint32_t>(p.host_ifindex), RETINA_OBS_FROM_ENDPOINT}];
    const auto to = sums[{static_cast<uint32_t>(p.host_ifindex), RETINA_OBS_TO_ENDPOINT}];
    CHECK(from.packets == a.rx_packets - b.rx_packets);
    CHECK(from.bytes == a.rx_bytes - b.rx_bytes);
    CHECK(to.packets == a.tx_packets - b.tx_packets);
    CHECK(to.bytes == a.tx_bytes - b.tx_bytes);
    CHECK(from.packets > 0);
    CHECK(to.packets > 0);
    if (high) CHECK(from.records < from.packets);  // conntrack aggregated
    else CHECK(from.records == from.packets);
  }
  for (const auto& e : evs) {
    CHECK(e.hdr.type == RETINA_EV_PACKET);
    CHECK(((e.flags & RETINA_PKT_F_CT_REPORT) != 0) == high);
    CHECK(e.report_reason != RETINA_REPORT_MAP_FULL);
  }
  const auto stats = *pp.stats();
  CHECK(stats[RETINA_STAT_RINGBUF_FULL] == 0);
  CHECK(stats[RETINA_STAT_CT_FULL] == 0);
  CHECK(stats[RETINA_STAT_REPORTS] - base_stats[RETINA_STAT_REPORTS] == evs.size());
  CHECK(stats[RETINA_STAT_NOT_IP] == base_stats[RETINA_STAT_NOT_IP]);  // static neighbours: no ARP
  if (high) {
    auto g = pp.conntrack_gauges();
    REQUIRE(g);
    CHECK(g->connections >= 2);  // the UDP and ICMP flows are still alive
    CHECK(g->packets_tx > 0);
  }

  pp.stop();
  for (const auto& p : node.pods()) {
    for (TcDirection d : {TcDirection::kIngress, TcDirection::kEgress}) {
      CHECK(test::count_retina_tc_filters(p.host_ifindex, d) == 0);
      for (const auto& prog : test::tcx_programs(p.host_ifindex, d)) CHECK(prog.name.rfind("retina", 0) != 0);
    }
    CHECK(test::tc_filter_show(p.host_if, "ingress").find("retina") == std::string::npos);
    CHECK(test::tc_filter_show(p.host_if, "egress").find("retina") == std::string::npos);
  }
}

TEST_CASE("packetparser without bypassLookupIPOfInterest reports only the observed pod's traffic",
          "[priv][packetparser][traffic]") {
  RETINA_REQUIRE_PRIVILEGED();
  test::Node node({.pods = 3, .isolated = true});
  node.wait_quiet();
  const auto& p = node.pods();
  Config cfg;
  cfg.data_aggregation_level = AggregationLevel::kLow;
  cfg.enable_tcx = TcxMode::kOff;
  cfg.bypass_lookup_ip_of_interest = false;
  cfg.host_interfaces.clear();
  cfg.pod_interface_prefixes = {node.host_prefix()};

  // Pod 0 is annotated retina.sh: observe; pods 1 and 2 are known but not observed.
  auto cache = std::make_shared<IpCache>();
  for (size_t i = 0; i < 3; ++i) {
    auto ep = std::make_shared<Endpoint>();
    ep->kind = EndpointKind::kPod;
    ep->namespace_ = "shop";
    ep->name = "pod-" + std::to_string(i);
    ep->observe = i == 0;
    ep->ips = {*IpAddr::parse(p[i].ipv4), *IpAddr::parse(p[i].ipv6)};
    cache->upsert(ep);
  }
  PluginServices services(cfg, {.cache = cache});
  PacketParserPlugin pp;
  start_on_pods(services, pp, cfg);
  node.wait_quiet();
  drain(pp);

  REQUIRE(test::ping(p[1], p[2], false, 4) == 4);  // neither end observed: nothing
  REQUIRE(test::udp_send(p[1], p[2], false, 5011, 20, 100) == 20);
  REQUIRE(test::ping(p[0], p[1], false, 3) == 3);  // observed source
  REQUIRE(test::udp_send(p[2], p[0], true, 5012, 10, 100) == 10);  // observed destination, IPv6
  node.wait_quiet();
  auto evs = drain(pp);

  const IpAddr v4 = *IpAddr::parse(p[0].ipv4), v6 = *IpAddr::parse(p[0].ipv6);
  std::map<std::pair<uint32_t, uint8_t>, uint64_t> icmp, udp6;
  for (const auto& e : evs) {
    IpAddr s, d;
    std::memcpy(s.bytes.data(), e.tuple.saddr, 16);
    std::memcpy(d.bytes.data(), e.tuple.daddr, 16);
    INFO(s.to_string() << " -> " << d.to_string());
    REQUIRE((s == v4 || d == v4 || s == v6 || d == v6));
    if (e.tuple.proto == IPPROTO_ICMP) ++icmp[{e.ifindex, e.obs_point}];
    if (e.tuple.proto == IPPROTO_UDP && e.tuple.family == 6) ++udp6[{e.ifindex, e.obs_point}];
  }
  // Each packet is seen once on the sender's veth and once on the receiver's:
  // 3 echo requests and 3 replies, 10 datagrams (aggregation low: a record each).
  uint64_t icmp_total = 0, udp_total = 0;
  for (const auto& [k, n] : icmp) icmp_total += n;
  for (const auto& [k, n] : udp6) udp_total += n;
  CHECK(icmp_total == 2 * (3 + 3));
  CHECK(udp_total == 2 * 10);

  // Annotating pod 1 as well: the next reconcile lets its traffic through.
  auto pod1 = std::make_shared<Endpoint>(*cache->find(*IpAddr::parse(p[1].ipv4)));
  pod1->observe = true;
  cache->upsert(pod1);
  REQUIRE(pp.reconcile());
  REQUIRE(test::ping(p[1], p[2], false, 2) == 2);
  node.wait_quiet();
  size_t icmp_after = 0;
  for (const auto& e : drain(pp)) icmp_after += e.tuple.proto == IPPROTO_ICMP ? 1 : 0;
  CHECK(icmp_after == 2 * (2 + 2));
  pp.stop();
}
