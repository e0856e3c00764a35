// Retina's API-server latency metrics from packetparser flows on the node's
// interface: exact histogram counts, handshake, no response, and nothing
// without a configuration naming them.
#include <catch2/catch.hpp>

#include "metrics/apiserver_latency.hpp"
#include "retina/config.hpp"
#include "retina/metrics/registry.hpp"
#include "support/prom_text.hpp"

using namespace retina;
using metrics::ApiServerLatency;

namespace {

constexpr int64_t kMs = 1'000'000;
const char* kNode = "192.168.1.10";
const char* kServer = "10.0.0.1";

Flow packet(bool to_server, int64_t t_ns, uint16_t flags, uint16_t node_port = 40000, const char* server = kServer) {
  Flow f;
  f.origin = FlowSource::kPacketParser;
  f.verdict = Verdict::FORWARDED;
  f.proto = L4Protocol::kTCP;
  f.time_ns = static_cast<uint64_t>(t_ns);
  f.tcp_flags = flags;
  f.observation_point = to_server ? TraceObservationPoint::TO_NETWORK : TraceObservationPoint::FROM_NETWORK;
  f.src = *IpAddr::parse(to_server ? kNode : server);
  f.dst = *IpAddr::parse(to_server ? server : kNode);
  f.src_port = to_server ? node_port : 443;
  f.dst_port = to_server ? 443 : node_port;
  return f;
}

std::vector<MetricsContextOption> naming(std::initializer_list<const char*> names) {
  std::vector<MetricsContextOption> out;
  for (const char* n : names) out.push_back({.metric_name = n});
  return out;
}

}  // namespace

TEST_CASE("apiserver latency: request to first answer, SYN to SYN-ACK, unanswered", "[adv][latency]") {
  metrics::Registry r;
  ApiServerLatency lat(r);
  lat.set_servers({*IpAddr::parse(kServer)});
  lat.configure(naming({"node_apiserver_latency", "node_apiserver_tcp_handshake_latency",
                        "node_apiserver_no_response"}));
  const int64_t t0 = 1'700'000'000LL * 1'000'000'000;
  // Handshake: SYN, then SYN-ACK 2.4 ms later (2 ms once rounded, as Retina rounds).
  lat.on_flow(packet(true, t0, kSYN));
  lat.on_flow(packet(true, t0 + kMs, kSYN));  // a retransmitted SYN is not timed again
  lat.on_flow(packet(false, t0 + 2 * kMs + 400'000, kSYN | kACK));
  // A request and its answer 7 ms later: beyond the last bucket.
  lat.on_flow(packet(true, t0 + 10 * kMs, kACK | kPSH));
  lat.on_flow(packet(false, t0 + 17 * kMs, kACK));
  // An answer nothing asked for; traffic of another address; a flow seen at a pod veth.
  lat.on_flow(packet(false, t0 + 18 * kMs, kACK));
  lat.on_flow(packet(true, t0 + 19 * kMs, kACK, 40001, "10.0.0.2"));
  Flow veth = packet(true, t0 + 19 * kMs, kACK, 40002);
  veth.observation_point = TraceObservationPoint::TO_STACK;
  lat.on_flow(veth);
  // Unanswered on another connection: counted once 500 ms have passed.
  lat.on_flow(packet(true, t0 + 20 * kMs, kACK, 40003));
  auto s = lat.snapshot();
  CHECK(s.latency.count == 2);
  CHECK(s.latency.counts[4] == 1);   // 2 ms: le="2"
  CHECK(s.latency.counts[10] == 1);  // 7 ms: +Inf
  CHECK(s.latency.sum == 9.0);
  CHECK(s.handshake.count == 1);
  CHECK(s.handshake.counts[4] == 1);
  CHECK(s.no_response == 0);
  CHECK(s.pending == 1);
  lat.on_flow(packet(true, t0 + 600 * kMs, kACK | kPSH, 40004));  // time moves on
  s = lat.snapshot();
  CHECK(s.no_response == 1);
  CHECK(s.pending == 1);  // the new one

  auto p = test::parse_prom_text(r.expose());
  REQUIRE(p.error.empty());
  const std::string lname = "networkobservability_adv_node_apiserver_latency";
  REQUIRE(p.family(lname) != nullptr);
  CHECK(p.family(lname)->type == "histogram");
  CHECK(p.value(lname + "_bucket", {{"le", "1.5"}}) == 0.0);
  CHECK(p.value(lname + "_bucket", {{"le", "2"}}) == 1.0);
  CHECK(p.value(lname + "_bucket", {{"le", "4.5"}}) == 1.0);
  CHECK(p.value(lname + "_bucket", {{"le", "+Inf"}}) == 2.0);
  CHECK(p.value(lname + "_count") == 2.0);
  CHECK(p.value(lname + "_sum") == 9.0);
  CHECK(p.value("networkobservability_adv_node_apiserver_tcp_handshake_latency_count") == 1.0);
  CHECK(p.value("networkobservability_adv_node_apiserver_no_response", {{"no_response", "no_response"}}) == 1.0);
}

TEST_CASE("apiserver latency: only the metrics a configuration names", "[adv][latency]") {
  metrics::Registry r;
  ApiServerLatency lat(r);
  lat.set_servers({*IpAddr::parse(kServer)});
  lat.on_flow(packet(true, 1000 * kMs, kSYN));
  lat.on_flow(packet(false, 1001 * kMs, kSYN | kACK));
  auto p = test::parse_prom_text(r.expose());
  CHECK(p.family("networkobservability_adv_node_apiserver_latency") == nullptr);
  CHECK(lat.snapshot().pending == 0);
  lat.configure(naming({"forward", "node_apiserver_latency"}));
  lat.on_flow(packet(true, 2000 * kMs, kSYN));
  lat.on_flow(packet(false, 2001 * kMs, kSYN | kACK));
  p = test::parse_prom_text(r.expose());
  CHECK(p.value("networkobservability_adv_node_apiserver_latency_count") == 1.0);
  CHECK(p.family("networkobservability_adv_node_apiserver_tcp_handshake_latency") == nullptr);
  CHECK(p.family("networkobservability_adv_node_apiserver_no_response") == nullptr);
  // And a MetricsConfiguration naming them is valid.
  Config c;
  c.context_options = naming({"node_apiserver_latency", "node_apiserver_tcp_handshake_latency",
                              "node_apiserver_no_response", "forward"});
  CHECK(c.validate());
}

TEST_CASE("apiserver latency: the API server URL's addresses", "[adv][latency]") {
  auto v4 = metrics::api_server_addresses("https://10.0.0.1:443");
  REQUIRE(v4);
  CHECK(*v4 == std::vector<IpAddr>{*IpAddr::parse("10.0.0.1")});
  auto v6 = metrics::api_server_addresses("https://[fd00::1]:6443/");
  REQUIRE(v6);
  CHECK(*v6 == std::vector<IpAddr>{*IpAddr::parse("fd00::1")});
  auto name = metrics::api_server_addresses("http://localhost:8001");
  REQUIRE(name);
  CHECK(std::find(name->begin(), name->end(), *IpAddr::parse("127.0.0.1")) != name->end());
  CHECK_FALSE(metrics::api_server_addresses("https://"));
  CHECK_FALSE(metrics::api_server_addresses("https://[fd00::1:443"));
}
