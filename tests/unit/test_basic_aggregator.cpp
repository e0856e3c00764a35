#include <catch2/catch.hpp>

#include "retina/metrics/aggregator.hpp"
#include "retina/metrics/names.hpp"
#include "retina/metrics/registry.hpp"
#include "support/prom_text.hpp"

using namespace retina;
using retina::test::parse_prom_text;

namespace {
Flow packet(TrafficDirection dir, uint32_t bytes, uint64_t prev_packets, uint64_t prev_bytes, bool has_packet = true) {
  Flow f;
  f.origin = FlowSource::kPacketParser;
  f.verdict = Verdict::FORWARDED;
  f.direction = dir;
  f.bytes = bytes;
  f.prev_packets = prev_packets;
  f.prev_bytes = prev_bytes;
  f.has_packet = has_packet;
  return f;
}
}  // namespace

TEST_CASE("forward counts follow the counting rule and publish per batch", "[aggregator]") {
  metrics::Registry r;
  metrics::BasicAggregator agg(r);
  agg.on_flow(packet(TrafficDirection::EGRESS, 100, 0, 0));          // 1 packet, 100 B
  agg.on_flow(packet(TrafficDirection::EGRESS, 60, 9, 900));         // 10 packets, 960 B
  agg.on_flow(packet(TrafficDirection::INGRESS, 0, 4, 4000, false)); // flush: 4 packets, 4000 B
  // Nothing published before the batch ends.
  CHECK(agg.totals().forward_packets[2] == 0);
  agg.on_batch_end();
  auto t = agg.totals();
  CHECK(t.forward_packets[static_cast<int>(TrafficDirection::EGRESS)] == 11);
  CHECK(t.forward_bytes[static_cast<int>(TrafficDirection::EGRESS)] == 1060);
  CHECK(t.forward_packets[static_cast<int>(TrafficDirection::INGRESS)] == 4);
  CHECK(t.forward_bytes[static_cast<int>(TrafficDirection::INGRESS)] == 4000);

  auto p = parse_prom_text(r.expose());
  REQUIRE(p.error.empty());
  CHECK(p.value(std::string(metrics::names::kForwardCount), {{"direction", "egress"}}) == 11.0);
  CHECK(p.value(std::string(metrics::names::kForwardBytes), {{"direction", "ingress"}}) == 4000.0);
  // No flow had an unknown direction, so no such series.
  CHECK_FALSE(p.value(std::string(metrics::names::kForwardCount), {{"direction", "unknown"}}));
  CHECK(p.family(std::string(metrics::names::kForwardCount))->type == "counter");
}

TEST_CASE("non-forwarded and other-origin flows do not count as forwarded", "[aggregator]") {
  metrics::Registry r;
  metrics::BasicAggregator agg(r);
  Flow drop = packet(TrafficDirection::INGRESS, 100, 0, 0);
  drop.verdict = Verdict::DROPPED;
  agg.on_flow(drop);
  Flow dnsq;
  dnsq.origin = FlowSource::kDns;
  dnsq.verdict = Verdict::DNS;
  dnsq.l7_type = L7Type::REQUEST;
  agg.on_flow(dnsq);
  dnsq.l7_type = L7Type::RESPONSE;
  agg.on_flow(dnsq);
  agg.on_flow(dnsq);
  Flow rt;
  rt.origin = FlowSource::kTcpRetrans;
  rt.verdict = Verdict::RETRANSMISSION;
  rt.direction = TrafficDirection::EGRESS;
  agg.on_flow(rt);
  agg.on_batch_end();
  auto t = agg.totals();
  CHECK(t.forward_packets[1] + t.forward_packets[2] == 0);
  CHECK(t.dns_requests == 1);
  CHECK(t.dns_responses == 2);
  CHECK(t.tcp_retransmissions[2] == 1);
  auto p = parse_prom_text(r.expose());
  REQUIRE(p.error.empty());
  CHECK(p.value(std::string(metrics::names::kDnsResponseCount)) == 2.0);
}
