#include <catch2/catch.hpp>

#include "hubble/hubble_metrics.hpp"
#include "support/prom_text.hpp"

using namespace retina;

namespace {

Flow tcp(uint16_t flags, Verdict v = Verdict::FORWARDED) {
  Flow f;
  f.verdict = v;
  f.src = *IpAddr::parse("10.0.0.1");
  f.dst = *IpAddr::parse("10.0.0.2");
  f.ip_version = IpVersion::IPv4;
  f.proto = L4Protocol::kTCP;
  f.src_port = 40000;
  f.dst_port = 443;
  f.tcp_flags = flags;
  f.direction = TrafficDirection::EGRESS;
  f.observation_point = TraceObservationPoint::TO_STACK;
  f.event_type = v == Verdict::DROPPED ? 1 : 4;
  f.is_reply_known = true;
  return f;
}

}  // namespace

TEST_CASE("hubble metrics: every handler, with contexts", "[hubble]") {
  metrics::Registry reg;
  auto m = hubble::HubbleMetrics::create({"flow:sourceContext=pod|ip;destinationIngressContext=namespace",
                                          "drop:labelsContext=source_namespace,traffic_direction", "tcp",
                                          "dns:query;ignoreAAAA", "port-distribution"},
                                         reg);
  REQUIRE(m);
  Endpoint web;
  web.kind = EndpointKind::kPod;
  web.namespace_ = "shop";
  web.name = "web-0";
  Flow syn = tcp(kSYN);
  syn.source = &web;
  (*m)->observe(syn);
  (*m)->observe(tcp(kSYN | kACK));
  (*m)->observe(tcp(kFIN | kACK));
  (*m)->observe(tcp(kRST));
  Flow drop = tcp(kSYN, Verdict::DROPPED);
  drop.drop_reason_desc = "NETFILTER_DROP";
  drop.source = &web;
  (*m)->observe(drop);
  Flow odd = drop;
  odd.drop_reason_desc = "SOME_KERNEL_ONLY_REASON";
  (*m)->observe(odd);

  DnsInfo q;
  q.query = "example.com.";
  q.qtype = 1;
  Flow dq = tcp(0, Verdict::DNS);
  dq.proto = L4Protocol::kUDP;
  dq.dns = &q;
  dq.event_type = 129;
  (*m)->observe(dq);
  DnsInfo r = q;
  r.is_response = true;
  r.rcode = 3;
  Flow dr = dq;
  dr.dns = &r;
  (*m)->observe(dr);
  DnsInfo aaaa = q;
  aaaa.qtype = 28;
  Flow da = dq;
  da.dns = &aaaa;
  (*m)->observe(da);  // ignored: ignoreAAAA

  const auto p = test::parse_prom_text(reg.expose());
  INFO(reg.expose());
  REQUIRE(p.error.empty());
  CHECK(p.value("hubble_flows_processed_total", {{"source", "shop/web-0"}, {"destination", ""}, {"protocol", "TCP"},
                                                 {"type", "Trace"}, {"subtype", "to-stack"}, {"verdict", "FORWARDED"}}) == 1.0);
  CHECK(p.value("hubble_flows_processed_total", {{"source", "10.0.0.1"}, {"verdict", "FORWARDED"}}, true) == 3.0);
  CHECK(p.value("hubble_flows_processed_total", {{"protocol", "DNS"}, {"type", "L7"}, {"subtype", "DNS"}}, true) == 3.0);  // ignoreAAAA is dns-only
  CHECK(p.value("hubble_flows_processed_total", {}, true) == 9.0);
  CHECK(p.value("hubble_drop_total", {{"reason", "POLICY_DENIED"}, {"protocol", "TCP"}, {"source_namespace", "shop"},
                                      {"traffic_direction", "egress"}}) == 1.0);
  CHECK(p.value("hubble_drop_total", {{"reason", "DROP_REASON_UNKNOWN"}}) == 1.0);
  for (const char* flag : {"SYN", "SYN-ACK", "FIN", "RST"})
    CHECK(p.value("hubble_tcp_flags_total", {{"flag", flag}, {"family", "IPv4"}}) == 1.0);
  CHECK(p.value("hubble_dns_queries_total",
                {{"rcode", ""}, {"qtypes", "A"}, {"ips_returned", "0"}, {"query", "example.com."}}) == 1.0);
  CHECK(p.value("hubble_dns_queries_total", {}, true) == 1.0);
  CHECK(p.value("hubble_dns_responses_total",
                {{"rcode", "Non-Existent Domain"}, {"qtypes", "A"}, {"ips_returned", "0"}}) == 1.0);
  CHECK(p.value("hubble_port_distribution_total", {{"protocol", "TCP"}, {"port", "443"}}) == 4.0);
  CHECK(p.value("hubble_lost_events_total", {{"source", "hubble_ring_buffer"}}) == 0.0);

  CHECK_FALSE(hubble::HubbleMetrics::create({"flow:sourceContext=identity"}, reg));
}
