// Advanced (pod-level) metrics: every adv_* metric, local and remote
// context labels, unknowns, namespace filters, annotations, the series cap,
// ttl expiry with an injected clock, and configuration swaps.
#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "retina/metrics/advanced.hpp"
#include "retina/metrics/names.hpp"
#include "retina/metrics/registry.hpp"
#include "support/prom_text.hpp"

using namespace retina;
using namespace std::chrono_literals;
using metrics::AdvancedAggregator;
using metrics::AdvancedOptions;
using metrics::AdvMetric;
using retina::test::parse_prom_text;
using Labels = std::map<std::string, std::string>;

namespace {

const std::string kFwdCount(metrics::names::kAdvForwardCount);
const std::string kFwdBytes(metrics::names::kAdvForwardBytes);
const std::string kDropCount(metrics::names::kAdvDropCount);
const std::string kDropBytes(metrics::names::kAdvDropBytes);
const std::string kFlags(metrics::names::kAdvTcpFlagsCount);
const std::string kRetrans(metrics::names::kAdvTcpRetransCount);
const std::string kDnsReq(metrics::names::kAdvDnsRequestCount);
const std::string kDnsResp(metrics::names::kAdvDnsResponseCount);
const std::string kExpired(metrics::names::kExpiredMetrics);
const std::string kOverflow(metrics::names::kSeriesOverflow);

EndpointPtr pod(std::string ns, std::string name, std::string ip, std::string node = "node-1",
                std::string wl_kind = "Deployment", std::string wl_name = "", bool observe = false) {
  auto ep = std::make_shared<Endpoint>();
  ep->kind = EndpointKind::kPod;
  ep->namespace_ = std::move(ns);
  ep->name = std::move(name);
  ep->node_name = std::move(node);
  if (!wl_name.empty()) ep->workloads = {Workload{std::move(wl_kind), std::move(wl_name)}};
  ep->ips = {*IpAddr::parse(ip)};
  ep->observe = observe;
  return ep;
}

struct Fixture {
  // Two pods on this node, one on another node, a service.
  EndpointPtr a = pod("shop", "web-1", "10.0.0.1", "node-1", "Deployment", "web");
  EndpointPtr b = pod("pay", "api-1", "10.0.0.2", "node-1", "StatefulSet", "api");
  EndpointPtr far = pod("shop", "db-1", "10.0.1.9", "node-2", "StatefulSet", "db");
  EndpointPtr svc = [] {
    auto s = std::make_shared<Endpoint>();
    s->kind = EndpointKind::kService;
    s->namespace_ = "pay";
    s->name = "api";
    s->service = "api";
    s->ips = {*IpAddr::parse("10.96.0.10")};
    return s;
  }();
  std::chrono::steady_clock::time_point now{std::chrono::hours(1)};

  // advMetricsWithoutConfiguration: every metric with the default labels
  // while no context option is set (Retina's default produces none).
  AdvancedOptions options(bool remote) {
    AdvancedOptions o;
    o.default_context = true;
    o.remote_context = remote;
    o.node_name = "node-1";
    o.clock = [this] { return now; };
    return o;
  }
};

Flow packet(const Endpoint* src, const char* sip, const Endpoint* dst, const char* dip, TraceObservationPoint obs,
            uint32_t bytes, uint64_t prev_packets = 0, uint64_t prev_bytes = 0) {
  Flow f;
  f.origin = FlowSource::kPacketParser;
  f.verdict = Verdict::FORWARDED;
  f.ip_version = IpVersion::IPv4;
  f.src = *IpAddr::parse(sip);
  f.dst = *IpAddr::parse(dip);
  f.proto = L4Protocol::kTCP;
  f.src_port = 40000;
  f.dst_port = 8080;
  f.observation_point = obs;
  f.direction = (obs == TraceObservationPoint::TO_STACK || obs == TraceObservationPoint::TO_NETWORK)
                    ? TrafficDirection::EGRESS
                    : TrafficDirection::INGRESS;
  f.is_reply_known = true;
  f.bytes = bytes;
  f.prev_packets = prev_packets;
  f.prev_bytes = prev_bytes;
  f.source = src;
  f.destination = dst;
  return f;
}

constexpr auto kFromEndpoint = TraceObservationPoint::TO_STACK;
constexpr auto kToEndpoint = TraceObservationPoint::TO_ENDPOINT;
constexpr auto kToNetwork = TraceObservationPoint::TO_NETWORK;
constexpr auto kFromNetwork = TraceObservationPoint::FROM_NETWORK;

retina::test::PromText scrape(metrics::Registry& r) {
  auto p = parse_prom_text(r.expose());
  REQUIRE(p.error.empty());
  return p;
}

size_t series_count(const retina::test::PromText& p, const std::string& name) {
  const auto* f = p.family(name);
  return f ? f->samples.size() : 0;
}

MetricsContextOption option(std::string metric, std::vector<std::string> src, std::vector<std::string> dst = {},
                            std::vector<std::string> extra = {}, std::chrono::seconds ttl = 0s) {
  MetricsContextOption o;
  o.metric_name = std::move(metric);
  o.source_labels = std::move(src);
  o.destination_labels = std::move(dst);
  o.additional_labels = std::move(extra);
  o.ttl = ttl;
  return o;
}

}  // namespace

TEST_CASE("local context: one series per local pod side, exact counts", "[adv]") {
  Fixture fx;
  metrics::Registry r;
  auto agg = AdvancedAggregator::create(r, fx.options(false));
  REQUIRE(agg);
  auto& adv = **agg;

  // a -> b seen at a's veth (from endpoint) and at b's veth (to endpoint),
  // with a conntrack report carrying 9 earlier packets.
  adv.on_flow(packet(fx.a.get(), "10.0.0.1", fx.b.get(), "10.0.0.2", kFromEndpoint, 100, 9, 900));
  adv.on_flow(packet(fx.a.get(), "10.0.0.1", fx.b.get(), "10.0.0.2", kToEndpoint, 100, 9, 900));
  // a -> an unknown address: counted for a only, at a's veth; the node's
  // interface does not count it again.
  adv.on_flow(packet(fx.a.get(), "10.0.0.1", nullptr, "192.0.2.7", kFromEndpoint, 50));
  adv.on_flow(packet(fx.a.get(), "10.0.0.1", nullptr, "192.0.2.7", kToNetwork, 50));
  // A pod on another node -> b: counted for b at its veth only.
  adv.on_flow(packet(fx.far.get(), "10.0.1.9", fx.b.get(), "10.0.0.2", kFromNetwork, 70));
  adv.on_flow(packet(fx.far.get(), "10.0.1.9", fx.b.get(), "10.0.0.2", kToEndpoint, 70));
  adv.on_batch_end();

  auto p = scrape(r);
  const Labels a_egress{{"direction", "egress"}, {"ip", "10.0.0.1"}, {"namespace", "shop"}, {"podname", "web-1"},
                        {"workload_kind", "Deployment"}, {"workload_name", "web"}};
  CHECK(p.value(kFwdCount, a_egress) == 11.0);  // 10 + 1
  CHECK(p.value(kFwdBytes, a_egress) == 1050.0);
  const Labels b_ingress{{"direction", "ingress"}, {"ip", "10.0.0.2"}, {"namespace", "pay"}, {"podname", "api-1"},
                         {"workload_kind", "StatefulSet"}, {"workload_name", "api"}};
  CHECK(p.value(kFwdCount, b_ingress) == 11.0);  // 10 from a + 1 from far
  CHECK(p.value(kFwdBytes, b_ingress) == 1070.0);
  CHECK(series_count(p, kFwdCount) == 2);
  // Local labels are unprefixed and exactly Retina's defaults.
  for (const auto& s : p.family(kFwdCount)->samples) {
    CHECK(s.labels.size() == 6);
    CHECK(s.labels.count("source_ip") == 0);
  }
  CHECK(p.family(kFwdCount)->type == "counter");

  // TCP flags follow the same sides: a SYN from a counts for a and for b.
  Flow syn = packet(fx.a.get(), "10.0.0.1", fx.b.get(), "10.0.0.2", kFromEndpoint, 60);
  syn.tcp_flags = kSYN;
  adv.on_flow(syn);
  syn.observation_point = kToEndpoint;
  adv.on_flow(syn);
  adv.on_batch_end();
  p = scrape(r);
  CHECK(p.value(kFlags, {{"flag", "SYN"}, {"podname", "web-1"}}) == 1.0);
  CHECK(p.value(kFlags, {{"flag", "SYN"}, {"podname", "api-1"}}) == 1.0);
}

TEST_CASE("remote context: source_ and destination_ labels, one series per flow", "[adv]") {
  Fixture fx;
  metrics::Registry r;
  auto agg = AdvancedAggregator::create(r, fx.options(true));
  REQUIRE(agg);
  auto& adv = **agg;
  adv.on_flow(packet(fx.a.get(), "10.0.0.1", fx.b.get(), "10.0.0.2", kFromEndpoint, 100, 4, 400));
  adv.on_flow(packet(fx.a.get(), "10.0.0.1", fx.b.get(), "10.0.0.2", kToEndpoint, 100, 4, 400));
  // To an unknown address: the veth counts it, the node interface does not.
  adv.on_flow(packet(fx.a.get(), "10.0.0.1", nullptr, "192.0.2.7", kFromEndpoint, 10));
  adv.on_flow(packet(fx.a.get(), "10.0.0.1", nullptr, "192.0.2.7", kToNetwork, 10));
  // Between two addresses of another node, seen on the node interface: counted.
  adv.on_flow(packet(fx.far.get(), "10.0.1.9", nullptr, "192.0.2.8", kToNetwork, 20));
  adv.on_batch_end();

  auto p = scrape(r);
  CHECK(p.value(kFwdCount, {{"direction", "EGRESS"}, {"source_podname", "web-1"}, {"destination_podname", "api-1"},
                            {"source_namespace", "shop"}, {"destination_namespace", "pay"},
                            {"source_workload_name", "web"}, {"destination_workload_kind", "StatefulSet"}}) == 5.0);
  CHECK(p.value(kFwdCount, {{"direction", "INGRESS"}, {"source_podname", "web-1"}, {"destination_podname", "api-1"}}) ==
        5.0);
  CHECK(p.value(kFwdBytes, {{"direction", "INGRESS"}, {"source_podname", "web-1"}}) == 500.0);
  const Labels unknown_dst{{"direction", "EGRESS"},          {"source_podname", "web-1"},
                           {"destination_ip", "192.0.2.7"},  {"destination_namespace", "unknown"},
                           {"destination_podname", "unknown"}, {"destination_workload_kind", "unknown"},
                           {"destination_workload_name", "unknown"}};
  CHECK(p.value(kFwdCount, unknown_dst) == 1.0);
  CHECK(p.value(kFwdCount, {{"source_podname", "db-1"}, {"destination_ip", "192.0.2.8"}}) == 1.0);
  CHECK(series_count(p, kFwdCount) == 4);
  for (const auto& s : p.family(kFwdCount)->samples) CHECK(s.labels.size() == 11);
}

TEST_CASE("every adv metric with its own labels", "[adv]") {
  Fixture fx;
  metrics::Registry r;
  auto o = fx.options(true);
  o.context_options = {option("forward", {"podname"}, {"podname"}, {"is_reply"}),
                       option("drop", {"namespace"}, {"namespace"}),
                       option("tcpflags", {"podname"}),
                       option("tcpretrans", {"ip"}, {"ip", "port"}),
                       option("dns", {"podname"}, {"service", "zone"})};
  auto agg = AdvancedAggregator::create(r, std::move(o));
  REQUIRE(agg);
  auto& adv = **agg;

  // forward with is_reply
  Flow reply = packet(fx.b.get(), "10.0.0.2", fx.a.get(), "10.0.0.1", kFromEndpoint, 40, 1, 40);
  reply.is_reply = true;
  adv.on_flow(reply);
  // drops: 1 reported + 3 suppressed packets; bytes of the reported one
  Flow drop = packet(fx.a.get(), "10.0.0.1", fx.b.get(), "10.0.0.2", TraceObservationPoint::UNKNOWN_POINT, 1500);
  drop.origin = FlowSource::kDropReason;
  drop.verdict = Verdict::DROPPED;
  drop.direction = TrafficDirection::INGRESS;
  drop.drop_reason_desc = "NETFILTER_DROP";
  drop.suppressed = 3;
  adv.on_flow(drop);
  // tcp flags: earlier flags carried by the report plus this packet's
  Flow flags = packet(fx.a.get(), "10.0.0.1", fx.b.get(), "10.0.0.2", kFromEndpoint, 60, 7, 420);
  flags.tcp_flags = kACK | kPSH;
  flags.prev_flag_counts[1] = 1;  // SYN
  flags.prev_flag_counts[4] = 6;  // ACK
  flags.prev_flag_counts[3] = 2;  // PSH
  adv.on_flow(flags);
  // a flush report without a packet of its own: only the carried counts
  Flow flush = flags;
  flush.has_packet = false;
  flush.bytes = 0;
  flush.tcp_flags = kFIN;  // ignored: no packet
  flush.prev_flag_counts = {};
  flush.prev_flag_counts[0] = 1;  // FIN
  adv.on_flow(flush);
  // retransmission, direction unknown: derived from the local source pod
  Flow rt = packet(fx.a.get(), "10.0.0.1", fx.b.get(), "10.0.0.2", TraceObservationPoint::UNKNOWN_POINT, 0);
  rt.origin = FlowSource::kTcpRetrans;
  rt.verdict = Verdict::RETRANSMISSION;
  rt.direction = TrafficDirection::TRAFFIC_DIRECTION_UNKNOWN;
  adv.on_flow(rt);
  // DNS request and response between a and the service
  DnsInfo q;
  q.query = "api.pay.svc.cluster.local.";
  q.qtype = 1;
  Flow dq = packet(fx.a.get(), "10.0.0.1", fx.svc.get(), "10.96.0.10", kFromEndpoint, 0);
  dq.origin = FlowSource::kDns;
  dq.verdict = Verdict::DNS;
  dq.proto = L4Protocol::kUDP;
  dq.dst_port = 53;
  dq.l7_type = L7Type::REQUEST;
  dq.dns = &q;
  adv.on_flow(dq);
  DnsInfo resp = q;
  resp.is_response = true;
  resp.answer_count = 2;
  resp.ips = {*IpAddr::parse("10.0.0.2"), *IpAddr::parse("fd00::2")};
  Flow dr = dq;
  dr.l7_type = L7Type::RESPONSE;
  dr.dns = &resp;
  adv.on_flow(dr);
  resp.rcode = 3;
  resp.ips.clear();
  resp.answer_count = 0;
  adv.on_flow(dr);
  adv.on_batch_end();

  auto p = scrape(r);
  CHECK(p.value(kFwdCount, {{"direction", "EGRESS"}, {"is_reply", "true"}, {"source_podname", "api-1"},
                            {"destination_podname", "web-1"}}) == 2.0);
  CHECK(p.value(kFwdCount, {{"direction", "EGRESS"}, {"is_reply", "false"}}) == 15.0);  // 8 + the flush's 7
  CHECK(p.value(kFwdBytes, {{"is_reply", "true"}}) == 80.0);
  // Retina's reason for the kernel's NETFILTER_DROP.
  CHECK(p.value(kDropCount, {{"reason", "IPTABLE_RULE_DROP"}, {"direction", "INGRESS"}, {"source_namespace", "shop"},
                             {"destination_namespace", "pay"}}) == 4.0);
  CHECK(p.value(kDropBytes, {{"reason", "IPTABLE_RULE_DROP"}}) == 1500.0);
  CHECK(p.value(kFlags, {{"flag", "SYN"}, {"source_podname", "web-1"}}) == 1.0);
  CHECK(p.value(kFlags, {{"flag", "ACK"}}) == 7.0);
  CHECK(p.value(kFlags, {{"flag", "PSH"}}) == 3.0);
  CHECK(p.value(kFlags, {{"flag", "FIN"}}) == 1.0);
  CHECK_FALSE(p.value(kFlags, {{"flag", "RST"}}));
  CHECK(p.family(kFlags)->samples.front().labels.size() == 2);  // flag, source_podname
  CHECK(p.value(kRetrans, {{"direction", "EGRESS"}, {"source_ip", "10.0.0.1"}, {"destination_ip", "10.0.0.2"},
                           {"destination_port", "8080"}}) == 1.0);
  CHECK(p.value(kDnsReq, {{"query_type", "A"}, {"query", "api.pay.svc.cluster.local."}, {"source_podname", "web-1"},
                          {"destination_service", "api"}, {"destination_zone", "unknown"}}) == 1.0);
  CHECK(p.value(kDnsResp, {{"return_code", "NOERROR"}, {"query_type", "A"}, {"response", "10.0.0.2,fd00::2"},
                           {"num_response", "2"}}) == 1.0);
  CHECK(p.value(kDnsResp, {{"return_code", "NXDOMAIN"}, {"response", ""}, {"num_response", "0"}}) == 1.0);
  CHECK(p.family(kDnsResp)->samples.front().labels.size() == 8);
}

TEST_CASE("events reported once (DNS, drops, retransmissions) count for every local pod side", "[adv]") {
  Fixture fx;
  for (const bool remote : {false, true}) {
    INFO((remote ? "remote" : "local"));
    metrics::Registry r;
    auto agg = AdvancedAggregator::create(r, fx.options(remote));
    REQUIRE(agg);
    // The dns plugin reports a message once, at the sending socket's egress
    // (TO_NETWORK), whatever veths it crosses afterwards.
    DnsInfo q;
    q.query = "api.pay.svc.cluster.local.";
    q.qtype = 28;
    Flow dq = packet(fx.a.get(), "10.0.0.1", fx.b.get(), "10.0.0.2", kToNetwork, 0);
    dq.origin = FlowSource::kDns;
    dq.verdict = Verdict::DNS;
    dq.proto = L4Protocol::kUDP;
    dq.l7_type = L7Type::REQUEST;
    dq.dns = &q;
    (*agg)->on_flow(dq);
    Flow rt = packet(fx.a.get(), "10.0.0.1", nullptr, "192.0.2.1", kToNetwork, 0);
    rt.origin = FlowSource::kTcpRetrans;
    rt.verdict = Verdict::RETRANSMISSION;
    (*agg)->on_flow(rt);
    (*agg)->on_batch_end();
    auto p = scrape(r);
    if (remote) {
      CHECK(p.value(kDnsReq, {{"query_type", "AAAA"}, {"source_podname", "web-1"}, {"destination_podname", "api-1"}}) ==
            1.0);
      CHECK(p.value(kRetrans, {{"direction", "EGRESS"}, {"source_podname", "web-1"}}) == 1.0);
    } else {
      CHECK(p.value(kDnsReq, {{"query_type", "AAAA"}, {"podname", "web-1"}}) == 1.0);  // sent
      CHECK(p.value(kDnsReq, {{"query_type", "AAAA"}, {"podname", "api-1"}}) == 1.0);  // received
      CHECK(p.value(kRetrans, {{"direction", "egress"}, {"podname", "web-1"}}) == 1.0);
      CHECK(series_count(p, kRetrans) == 1);
    }
  }
}

TEST_CASE("port, service and zone labels, and metric-name precedence", "[adv]") {
  Fixture fx;
  auto zoned = pod("shop", "web-2", "10.0.0.3");
  std::const_pointer_cast<Endpoint>(zoned)->zone = "eu-1";
  std::const_pointer_cast<Endpoint>(zoned)->service = "web";
  metrics::Registry r;
  auto o = fx.options(false);
  // The specific forward_bytes option wins over the group option for bytes.
  o.context_options = {option("forward", {"podname", "port", "service", "zone"}),
                       option("forward_bytes", {"namespace"})};
  auto agg = AdvancedAggregator::create(r, std::move(o));
  REQUIRE(agg);
  (*agg)->on_flow(packet(zoned.get(), "10.0.0.3", nullptr, "192.0.2.1", kFromEndpoint, 10));
  Flow icmp = packet(zoned.get(), "10.0.0.3", nullptr, "192.0.2.1", kFromEndpoint, 10);
  icmp.proto = L4Protocol::kICMPv4;
  (*agg)->on_flow(icmp);
  (*agg)->on_batch_end();
  auto p = scrape(r);
  CHECK(p.value(kFwdCount, {{"podname", "web-2"}, {"port", "40000"}, {"service", "web"}, {"zone", "eu-1"}}) == 1.0);
  CHECK(p.value(kFwdCount, {{"podname", "web-2"}, {"port", "unknown"}}) == 1.0);
  CHECK(p.value(kFwdBytes, {{"namespace", "shop"}, {"direction", "egress"}}) == 20.0);
  CHECK(p.family(kFwdBytes)->samples.size() == 1);
  CHECK(p.family(kFwdBytes)->samples.front().labels.size() == 2);
  // Metrics without an option are not produced.
  CHECK(p.family(kDropCount) == nullptr);
  const auto st = (*agg)->stats();
  CHECK(st.enabled[static_cast<size_t>(AdvMetric::kForwardCount)]);
  CHECK_FALSE(st.enabled[static_cast<size_t>(AdvMetric::kDnsRequest)]);
}

TEST_CASE("namespace include and exclude", "[adv]") {
  Fixture fx;
  for (const bool remote : {false, true}) {
    INFO((remote ? "remote" : "local"));
    metrics::Registry r;
    auto o = fx.options(remote);
    o.namespaces.include = {"pay"};
    auto agg = AdvancedAggregator::create(r, o);
    REQUIRE(agg);
    auto& adv = **agg;
    adv.on_flow(packet(fx.a.get(), "10.0.0.1", fx.b.get(), "10.0.0.2", kFromEndpoint, 10));  // a side: shop
    adv.on_flow(packet(fx.a.get(), "10.0.0.1", fx.b.get(), "10.0.0.2", kToEndpoint, 10));    // b side: pay
    adv.on_flow(packet(fx.a.get(), "10.0.0.1", nullptr, "192.0.2.1", kFromEndpoint, 10));   // shop only
    adv.on_batch_end();
    auto p = scrape(r);
    if (remote) {
      // A flow counts when either side is in an included namespace.
      CHECK(p.value(kFwdCount, {{"source_podname", "web-1"}, {"destination_podname", "api-1"}}, true) == 2.0);
      CHECK_FALSE(p.value(kFwdCount, {{"destination_ip", "192.0.2.1"}}));
    } else {
      CHECK(p.value(kFwdCount, {{"podname", "api-1"}}) == 1.0);
      CHECK_FALSE(p.value(kFwdCount, {{"podname", "web-1"}}));
    }

    // Swap to exclude: the filter changes without a restart.
    o.namespaces.include.clear();
    o.namespaces.exclude = {"pay"};
    REQUIRE(adv.configure(o));
    adv.maintain();
    adv.on_flow(packet(fx.a.get(), "10.0.0.1", fx.b.get(), "10.0.0.2", kFromEndpoint, 10));
    adv.on_flow(packet(fx.a.get(), "10.0.0.1", fx.b.get(), "10.0.0.2", kToEndpoint, 10));
    adv.on_flow(packet(fx.b.get(), "10.0.0.2", nullptr, "192.0.2.1", kFromEndpoint, 10));  // pay only
    adv.on_batch_end();
    p = scrape(r);
    if (remote) {
      CHECK(p.value(kFwdCount, {{"source_podname", "web-1"}, {"destination_podname", "api-1"}}, true) == 4.0);
      CHECK_FALSE(p.value(kFwdCount, {{"source_podname", "api-1"}}));
    } else {
      CHECK(p.value(kFwdCount, {{"podname", "web-1"}}) == 1.0);
      CHECK(p.value(kFwdCount, {{"podname", "api-1"}}) == 1.0);  // from before the swap
    }
  }
}

TEST_CASE("enableAnnotations limits metrics to observed pods", "[adv]") {
  Fixture fx;
  auto watched = pod("shop", "web-9", "10.0.0.9", "node-1", "Deployment", "web", true);
  for (const bool remote : {false, true}) {
    INFO((remote ? "remote" : "local"));
    metrics::Registry r;
    auto o = fx.options(remote);
    o.enable_annotations = true;
    auto agg = AdvancedAggregator::create(r, o);
    REQUIRE(agg);
    auto& adv = **agg;
    adv.on_flow(packet(watched.get(), "10.0.0.9", fx.b.get(), "10.0.0.2", kFromEndpoint, 10));
    adv.on_flow(packet(watched.get(), "10.0.0.9", fx.b.get(), "10.0.0.2", kToEndpoint, 10));
    adv.on_flow(packet(fx.a.get(), "10.0.0.1", fx.b.get(), "10.0.0.2", kFromEndpoint, 10));
    adv.on_batch_end();
    auto p = scrape(r);
    if (remote) {
      CHECK(p.value(kFwdCount, {{"source_podname", "web-9"}}, true) == 2.0);
      CHECK_FALSE(p.value(kFwdCount, {{"source_podname", "web-1"}}));
    } else {
      CHECK(p.value(kFwdCount, {{"podname", "web-9"}}) == 1.0);
      CHECK(series_count(p, kFwdCount) == 1);
    }
  }
}

TEST_CASE("series cap: the rest folds into one overflow series and is counted", "[adv]") {
  Fixture fx;
  metrics::Registry r;
  auto o = fx.options(true);
  o.max_series_per_metric = 3;
  o.context_options = {option("forward_count", {"ip"})};
  auto agg = AdvancedAggregator::create(r, o);
  REQUIRE(agg);
  auto& adv = **agg;
  for (int i = 1; i <= 10; ++i) {
    const std::string ip = "192.0.2." + std::to_string(i);
    adv.on_flow(packet(nullptr, ip.c_str(), nullptr, "192.0.2.200", kFromEndpoint, 10));
  }
  adv.on_flow(packet(nullptr, "192.0.2.1", nullptr, "192.0.2.200", kFromEndpoint, 10));  // existing: not overflow
  adv.on_batch_end();
  auto p = scrape(r);
  CHECK(series_count(p, kFwdCount) == 4);
  CHECK(p.value(kFwdCount, {{"source_ip", "192.0.2.1"}}) == 2.0);
  CHECK(p.value(kFwdCount, {{"direction", "overflow"}, {"source_ip", "overflow"}}) == 7.0);
  CHECK(p.value(kOverflow, {{"metric", "adv_forward_count"}}) == 7.0);
  CHECK(p.value(kOverflow, {{"metric", "adv_forward_bytes"}}) == 0.0);
  CHECK(p.value(kFwdCount, {}, true) == 11.0);  // nothing lost
  CHECK(adv.stats().overflowed[0] == 7);
  CHECK(adv.stats().series[0] == 4);
}

TEST_CASE("ttl: idle series expire and are counted, active ones stay", "[adv]") {
  Fixture fx;
  metrics::Registry r;
  auto o = fx.options(false);
  o.context_options = {option("forward", {"podname"}, {}, {}, 30s), option("dns", {"podname"})};
  auto agg = AdvancedAggregator::create(r, o);
  REQUIRE(agg);
  auto& adv = **agg;
  adv.on_flow(packet(fx.a.get(), "10.0.0.1", nullptr, "192.0.2.1", kFromEndpoint, 10));
  adv.on_flow(packet(fx.b.get(), "10.0.0.2", nullptr, "192.0.2.1", kFromEndpoint, 10));
  adv.on_batch_end();
  CHECK(series_count(scrape(r), kFwdCount) == 2);

  fx.now += 20s;
  adv.on_batch_end();  // sets the batch clock: b's next update is at +20s
  adv.on_flow(packet(fx.b.get(), "10.0.0.2", nullptr, "192.0.2.1", kFromEndpoint, 10));
  adv.on_batch_end();
  fx.now += 15s;  // a idle 35s, b 15s
  adv.maintain();
  auto p = scrape(r);
  CHECK(series_count(p, kFwdCount) == 1);
  CHECK(p.value(kFwdCount, {{"podname", "api-1"}}) == 2.0);
  CHECK(p.value(kExpired, {{"metric", "adv_forward_count"}}) == 1.0);
  CHECK(p.value(kExpired, {{"metric", "adv_forward_bytes"}}) == 1.0);
  // A series that comes back starts from zero.
  adv.on_flow(packet(fx.a.get(), "10.0.0.1", nullptr, "192.0.2.1", kFromEndpoint, 10));
  adv.on_batch_end();
  CHECK(scrape(r).value(kFwdCount, {{"podname", "web-1"}}) == 1.0);
  fx.now += 1h;
  adv.maintain();
  p = scrape(r);
  CHECK(series_count(p, kFwdCount) == 0);
  CHECK(p.family(kFwdCount) != nullptr);  // the family stays announced
  CHECK(adv.stats().expired[0] == 3);
}

TEST_CASE("configuration swap: changed metrics restart, unchanged keep their series", "[adv]") {
  Fixture fx;
  metrics::Registry r;
  auto o = fx.options(false);
  o.context_options = {option("forward", {"podname"}), option("drop", {"podname"})};
  auto agg = AdvancedAggregator::create(r, o);
  REQUIRE(agg);
  auto& adv = **agg;
  CHECK(adv.stats().generation == 1);
  Flow drop = packet(fx.a.get(), "10.0.0.1", nullptr, "192.0.2.1", TraceObservationPoint::UNKNOWN_POINT, 100);
  drop.verdict = Verdict::DROPPED;
  drop.drop_reason_desc = "TCP_CSUM";
  adv.on_flow(drop);
  adv.on_flow(packet(fx.a.get(), "10.0.0.1", nullptr, "192.0.2.1", kFromEndpoint, 10));
  adv.on_batch_end();

  // Invalid: rejected with a clear error, nothing changes.
  auto bad = o;
  bad.context_options.push_back(option("forward", {"pod"}));
  auto st = adv.configure(bad);
  REQUIRE_FALSE(st);
  CHECK_THAT(st.error().message, Catch::Contains("sourceLabels") && Catch::Contains("pod"));
  bad = o;
  bad.namespaces.include = {"a"};
  bad.namespaces.exclude = {"b"};
  REQUIRE_FALSE(adv.configure(bad));
  CHECK_FALSE(adv.stats().config_pending);

  // Forward keeps its labels, drop changes them.
  o.context_options = {option("forward", {"podname"}), option("drop", {"namespace"}), option("tcpretrans", {"ip"})};
  REQUIRE(adv.configure(o));
  CHECK(adv.stats().config_pending);
  CHECK(adv.stats().generation == 1);
  adv.on_batch_end();  // the feeding thread applies it
  CHECK(adv.stats().generation == 2);
  adv.on_flow(drop);
  adv.on_flow(packet(fx.a.get(), "10.0.0.1", nullptr, "192.0.2.1", kFromEndpoint, 10));
  adv.on_batch_end();
  auto p = scrape(r);
  CHECK(p.value(kFwdCount, {{"podname", "web-1"}}) == 2.0);
  CHECK(p.value(kDropCount, {{"namespace", "shop"}}) == 1.0);
  CHECK_FALSE(p.value(kDropCount, {{"podname", "web-1"}}));
  CHECK(p.family(kRetrans) != nullptr);

  // Back to no options: with advMetricsWithoutConfiguration all metrics with
  // ip, namespace, podname, workload.
  o.context_options.clear();
  REQUIRE(adv.configure(o));
  adv.maintain();
  adv.on_flow(packet(fx.a.get(), "10.0.0.1", nullptr, "192.0.2.1", kFromEndpoint, 10));
  adv.on_batch_end();
  p = scrape(r);
  for (size_t m = 0; m < metrics::kAdvMetricCount; ++m) {
    CHECK(p.family(std::string(metrics::adv_metric_name(static_cast<AdvMetric>(m)))) != nullptr);
  }
  CHECK(p.value(kFwdCount, {{"podname", "web-1"}, {"ip", "10.0.0.1"}, {"workload_name", "web"}}) == 1.0);
}

TEST_CASE("new series reach scrapes at the next maintenance, values in between are kept", "[adv]") {
  Fixture fx;
  metrics::Registry r;
  auto agg = AdvancedAggregator::create(r, fx.options(false));
  REQUIRE(agg);
  auto& adv = **agg;
  adv.on_flow(packet(fx.a.get(), "10.0.0.1", nullptr, "192.0.2.1", kFromEndpoint, 10));
  CHECK(series_count(scrape(r), kFwdCount) == 0);
  CHECK(adv.stats().series[0] == 1);
  adv.on_flow(packet(fx.a.get(), "10.0.0.1", nullptr, "192.0.2.1", kFromEndpoint, 10));
  adv.on_batch_end();
  CHECK(scrape(r).value(kFwdCount, {{"podname", "web-1"}}) == 2.0);
}

TEST_CASE("scrapes, flows, expiry and configuration swaps run concurrently", "[adv]") {
  // Exercises the locking (run under TSan in CI); asserts the totals.
  metrics::Registry r;
  std::atomic<int64_t> clock_ns{0};
  AdvancedOptions o;
  o.remote_context = true;
  o.node_name = "node-1";
  o.max_series_per_metric = 500;
  o.context_options = {option("forward", {"ip"}, {}, {}, 1s)};
  o.clock = [&] { return std::chrono::steady_clock::time_point(std::chrono::nanoseconds(clock_ns.load())); };
  auto agg = AdvancedAggregator::create(r, o);
  REQUIRE(agg);
  auto& adv = **agg;
  // Catch2 is not thread-safe: the threads count problems, the test checks them.
  std::atomic<bool> stop{false};
  std::atomic<int> bad_scrapes{0}, rejected{0};
  std::thread scraper([&] {
    while (!stop.load()) {
      if (!parse_prom_text(r.expose()).error.empty()) ++bad_scrapes;
    }
  });
  std::thread reconfig([&] {
    for (int i = 0; i < 50; ++i) {
      auto c = o;
      c.context_options = {option("forward", {"ip"}, {}, {}, std::chrono::seconds(1 + i % 2))};
      if (!adv.configure(c)) ++rejected;
      std::this_thread::yield();
    }
  });
  for (int round = 0; round < 200; ++round) {
    for (int i = 0; i < 100; ++i) {
      const std::string ip = "10.1." + std::to_string(round % 7) + "." + std::to_string(i);
      adv.on_flow(packet(nullptr, ip.c_str(), nullptr, "192.0.2.1", kFromEndpoint, 1));
    }
    clock_ns += 300'000'000;  // series idle more than 1-2s expire
    adv.on_batch_end();
  }
  reconfig.join();
  stop = true;
  scraper.join();
  adv.maintain();
  CHECK(bad_scrapes == 0);
  CHECK(rejected == 0);
  const auto st = adv.stats();
  CHECK(st.series[0] <= 501);
  CHECK(st.generation >= 2);
}

TEST_CASE("Retina's defaults: no adv series without a configuration, Retina's values", "[adv]") {
  Fixture fx;
  metrics::Registry r;
  auto o = fx.options(true);
  o.default_context = false;
  auto agg = AdvancedAggregator::create(r, o);
  REQUIRE(agg);
  auto& adv = **agg;
  adv.on_flow(packet(fx.a.get(), "10.0.0.1", fx.b.get(), "10.0.0.2", kFromEndpoint, 100));
  adv.on_batch_end();
  auto p = scrape(r);
  for (size_t m = 0; m < metrics::kAdvMetricCount; ++m)
    CHECK(p.family(std::string(metrics::adv_metric_name(static_cast<AdvMetric>(m)))) == nullptr);
  CHECK_FALSE(adv.stats().enabled[0]);

  // A configuration naming metrics brings exactly those.
  o.context_options = {option("drop", {"podname"}), option("tcpflags", {"podname"})};
  REQUIRE(adv.configure(o));
  adv.maintain();
  Flow drop = packet(fx.a.get(), "10.0.0.1", fx.b.get(), "10.0.0.2", TraceObservationPoint::UNKNOWN_POINT, 100);
  drop.origin = FlowSource::kDropReason;
  drop.verdict = Verdict::DROPPED;
  drop.direction = TrafficDirection::INGRESS;
  for (const char* kernel : {"NETFILTER_DROP", "TCP_CLOSE", "TCP_CSUM", ""}) {
    drop.drop_reason_desc = kernel;
    adv.on_flow(drop);
  }
  // A SYN-ACK is Retina's SYNACK; the report's earlier packets count flag by flag.
  Flow synack = packet(fx.b.get(), "10.0.0.2", fx.a.get(), "10.0.0.1", kFromEndpoint, 60, 2, 120);
  synack.tcp_flags = kSYN | kACK;
  synack.prev_flag_counts[1] = 1;  // SYN
  synack.prev_flag_counts[4] = 1;  // ACK
  adv.on_flow(synack);
  adv.on_batch_end();
  p = scrape(r);
  CHECK(p.family(kFwdCount) == nullptr);
  CHECK(p.value(kDropCount, {{"reason", "IPTABLE_RULE_DROP"}, {"direction", "INGRESS"}}) == 1.0);
  CHECK(p.value(kDropCount, {{"reason", "TCP_CLOSE_BASIC"}}) == 1.0);
  CHECK(p.value(kDropCount, {{"reason", "UNKNOWN_DROP"}}) == 2.0);  // TCP_CSUM and no reason
  CHECK(series_count(p, kDropCount) == 3);
  CHECK(p.value(kFlags, {{"flag", "SYNACK"}, {"source_podname", "api-1"}}) == 1.0);
  CHECK(p.value(kFlags, {{"flag", "SYN"}}) == 1.0);
  CHECK(p.value(kFlags, {{"flag", "ACK"}}) == 1.0);

  // Ours: kernel reasons and a SYN-ACK counted as SYN and ACK.
  metrics::Registry r2;
  o.kernel_drop_reasons = true;
  o.tcp_flags_separate_syn_ack = true;
  auto ours = AdvancedAggregator::create(r2, o);
  REQUIRE(ours);
  drop.drop_reason_desc = "TCP_CSUM";
  (*ours)->on_flow(drop);
  (*ours)->on_flow(synack);
  (*ours)->on_batch_end();
  p = scrape(r2);
  CHECK(p.value(kDropCount, {{"reason", "TCP_CSUM"}, {"direction", "INGRESS"}}) == 1.0);
  CHECK(p.value(kFlags, {{"flag", "SYN"}}) == 2.0);
  CHECK(p.value(kFlags, {{"flag", "ACK"}}) == 2.0);
  CHECK_FALSE(p.value(kFlags, {{"flag", "SYNACK"}}));
}
