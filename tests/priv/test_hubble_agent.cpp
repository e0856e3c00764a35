// Hubble mode end to end: the real agent with enableHubble in a netns node
// (packetparser on the pod veths at aggregation low, dns on the cgroup
// root), UDP, TCP and DNS between the pods, read back through a gRPC
// client generated from proto/: flows carry the pods' addresses, ports,
// names, observation points and directions; one UDP flow per packet and
// observation point; follow delivers later flows; filters select exactly
// what they name; ServerStatus.seen_flows, the flow log and
// hubble_flows_processed_total agree; hubble_dns_queries_total counts the
// queries sent; 100 followers that never read slow nothing down.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <chrono>
#include <future>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <grpcpp/grpcpp.h>

#include "observer/observer.grpc.pb.h"
#include "peer/peer.grpc.pb.h"
#include "support/agent_process.hpp"
#include "support/dnsmasq.hpp"
#include "support/netns.hpp"
#include "support/privileged.hpp"

using namespace retina;
using namespace std::chrono_literals;

namespace {

const char* const kPodNames[] = {"client-5c8b6d-k4rrz", "server-0", "dns-7d9f4c-x2x8q"};
const char* const kApps[] = {"client", "server", "dns"};

std::string pod_namespace() { return fmt::format("hubble-{}", ::getpid()); }
std::string node_name() { return fmt::format("hubble-node-{}", ::getpid()); }

std::string endpoints_yaml(const test::Node& node) {
  std::string y = "endpoints:\n";
  for (size_t i = 0; i < node.pods().size(); ++i) {
    const auto& p = node.pod(i);
    y += fmt::format(
        "  - kind: pod\n    namespace: {}\n    name: {}\n    ips: [{}, \"{}\"]\n"
        "    labels: {{app: {}}}\n    workload: {{kind: Deployment, name: {}}}\n",
        pod_namespace(), kPodNames[i], p.ipv4, p.ipv6, kApps[i], kApps[i]);
  }
  return y;
}

template <class Pred>
bool wait_for(Pred pred, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(100ms);
  }
  return pred();
}

struct Client {
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<observer::Observer::Stub> stub;
  explicit Client(uint16_t port)
      : channel(grpc::CreateChannel(fmt::format("127.0.0.1:{}", port), grpc::InsecureChannelCredentials())),
        stub(observer::Observer::NewStub(channel)) {}

  std::vector<flow::Flow> flows(const observer::GetFlowsRequest& req, grpc::Status* status = nullptr) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + 20s);
    auto reader = stub->GetFlows(&ctx, req);
    std::vector<flow::Flow> out;
    observer::GetFlowsResponse r;
    while (reader->Read(&r)) {
      REQUIRE_FALSE(r.has_lost_events());
      if (r.has_flow()) out.push_back(r.flow());
    }
    const grpc::Status st = reader->Finish();
    if (status) *status = st;
    else {
      INFO(st.error_message());
      REQUIRE(st.ok());
    }
    return out;
  }
  observer::ServerStatusResponse status() {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + 10s);
    observer::ServerStatusResponse r;
    const auto st = stub->ServerStatus(&ctx, {}, &r);
    INFO(st.error_message());
    REQUIRE(st.ok());
    return r;
  }
};

// Every stored flow matching `filter`.
observer::GetFlowsRequest all_with(const std::function<void(flow::FlowFilter&)>& fill) {
  observer::GetFlowsRequest req;
  fill(*req.add_whitelist());
  return req;
}

uint32_t src_port(const flow::Flow& f) { return f.l4().has_tcp() ? f.l4().tcp().source_port() : f.l4().udp().source_port(); }
uint32_t dst_port(const flow::Flow& f) {
  return f.l4().has_tcp() ? f.l4().tcp().destination_port() : f.l4().udp().destination_port();
}

}  // namespace

TEST_CASE("hubble: the agent's Observer API serves the node's flows", "[priv][agent][hubble]") {
  RETINA_REQUIRE_PRIVILEGED();
  test::Node node({.pods = 3, .isolated = true});
  node.wait_quiet();
  const auto& client = node.pod(0);
  const auto& server = node.pod(1);
  const auto& dns_pod = node.pod(2);
  test::Dnsmasq dnsmasq(dns_pod);

  test::AgentProcess agent;
  agent.write_file("endpoints.yaml", endpoints_yaml(node));
  const uint16_t api_port = test::free_port(node.node_ns());
  const uint16_t grpc_port = test::free_port(node.node_ns());
  const uint16_t metrics_port = test::free_port(node.node_ns());
  agent.start({.config = fmt::format(
                   "apiServer: {{host: 127.0.0.1, port: {}}}\n"
                   "enabledPlugin: [packetparser, dns]\n"
                   "podForwardMetrics: true\n"  // forward_* count the pod veths below
                   "dataAggregationLevel: low\n"
                   "endpointsFile: {}\n"
                   "flowLogPath: {}\n"
                   "nodeName: {}\n"
                   "enableHubble: true\n"
                   "hubbleListenAddress: 127.0.0.1:{}\n"
                   "hubbleMetricsServer: 127.0.0.1:{}\n"
                   "hubbleEventBufferCapacity: 65536\n"
                   "hubbleMetrics:\n"
                   "  - flow:sourceContext=pod;destinationContext=pod\n"
                   "  - dns:query\n"
                   "  - tcp\n"
                   "  - port-distribution\n",
                   api_port, agent.path("endpoints.yaml"), agent.path("flows.jsonl"), node_name(), grpc_port,
                   metrics_port),
               .netns = node.node_ns(),
               .port = api_port});
  agent.wait_ready();
  INFO(agent.log_tail());
  REQUIRE(agent.wait_log("msg=\"endpoints file applied\""));
  for (const auto& p : node.pods()) REQUIRE(agent.wait_log("attached to " + p.host_if + " "));
  REQUIRE(agent.wait_log("component=hubble msg=listening"));

  // This thread lives in the node's namespace (the node is isolated), and
  // so do the gRPC threads it starts: 127.0.0.1 is the agent's loopback.
  Client c(grpc_port);
  const std::string ns = pod_namespace();

  // ---- follow: a stream opened before the traffic gets it ----
  constexpr uint16_t kFollowPort = 7101;
  constexpr size_t kFollowPackets = 7;
  auto followed = std::async(std::launch::async, [&] {
    observer::GetFlowsRequest req;
    req.set_follow(true);
    auto* f = req.add_whitelist();
    f->add_destination_port(std::to_string(kFollowPort));
    f->add_traffic_direction(flow::EGRESS);
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + 30s);
    auto reader = c.stub->GetFlows(&ctx, req);
    std::vector<flow::Flow> got;
    observer::GetFlowsResponse r;
    while (got.size() < kFollowPackets && reader->Read(&r))
      if (r.has_flow()) got.push_back(r.flow());
    ctx.TryCancel();
    reader->Finish();
    return got;
  });
  std::this_thread::sleep_for(1s);  // the stream is open before the packets leave
  REQUIRE(test::udp_send(client, server, false, kFollowPort, kFollowPackets, 64) == kFollowPackets);
  REQUIRE(followed.wait_for(20s) == std::future_status::ready);
  const auto follow_flows = followed.get();
  CHECK(follow_flows.size() == kFollowPackets);
  for (const auto& f : follow_flows) CHECK(dst_port(f) == kFollowPort);

  // ---- UDP: one flow per packet at each pod veth ----
  constexpr uint16_t kUdpPort = 7201;
  constexpr size_t kUdpPackets = 25;
  REQUIRE(test::udp_send(client, server, false, kUdpPort, kUdpPackets, 200) == kUdpPackets);
  // ---- TCP ----
  constexpr uint16_t kTcpPort = 7301;
  REQUIRE(test::tcp_send(client, server, false, kTcpPort, 50'000).received == 50'000);
  // ---- DNS to dnsmasq ----
  const std::string tag = fmt::format("h{}", ::getpid());
  constexpr size_t kQueries = 4;
  std::vector<std::string> names;
  for (size_t i = 0; i < kQueries; ++i) {
    names.push_back(fmt::format("q{}-{}.exists.test", i, tag));
    test::sh_in(client.ns, fmt::format("dig +tries=1 +time=5 @{} {} A", dns_pod.ipv4, names.back()));
  }
  node.wait_quiet();

  // UDP, egress at the client's veth and ingress at the server's.
  auto udp = [&](flow::TrafficDirection dir) {
    return c.flows(all_with([&](flow::FlowFilter& f) {
      f.add_destination_port(std::to_string(kUdpPort));
      f.add_protocol("udp");
      f.add_traffic_direction(dir);
    }));
  };
  std::vector<flow::Flow> egress, ingress;
  REQUIRE(wait_for([&] { return (egress = udp(flow::EGRESS)).size() >= kUdpPackets &&
                                (ingress = udp(flow::INGRESS)).size() >= kUdpPackets; }, 10s));
  CHECK(egress.size() == kUdpPackets);
  CHECK(ingress.size() == kUdpPackets);
  for (const auto* set : {&egress, &ingress}) {
    for (const auto& f : *set) {
      CHECK(f.verdict() == flow::FORWARDED);
      CHECK(f.ip().source() == client.ipv4);
      CHECK(f.ip().destination() == server.ipv4);
      CHECK(f.ip().ipversion() == flow::IPv4);
      CHECK(f.l4().has_udp());
      CHECK(dst_port(f) == kUdpPort);
      CHECK(f.source().namespace_() == ns);
      CHECK(f.source().pod_name() == kPodNames[0]);
      CHECK(f.destination().pod_name() == kPodNames[1]);
      CHECK(f.source().labels(0) == "app=client");
      REQUIRE(f.source().workloads_size() == 1);
      CHECK(f.source().workloads(0).kind() == "Deployment");
      CHECK(f.node_name() == node_name());
      CHECK(f.type() == flow::L3_L4);
      CHECK(f.event_type().type() == 4);
    }
  }
  for (const auto& f : egress) CHECK(f.trace_observation_point() == flow::TO_STACK);
  for (const auto& f : ingress) CHECK(f.trace_observation_point() == flow::TO_ENDPOINT);

  // TCP: the handshake and the data, both directions, right ports.
  const auto tcp = c.flows(all_with([&](flow::FlowFilter& f) {
    f.add_protocol("tcp");
    f.add_destination_port(std::to_string(kTcpPort));
    f.add_source_pod(ns + "/client-");
  }));
  REQUIRE_FALSE(tcp.empty());
  bool syn = false;
  for (const auto& f : tcp) {
    CHECK(f.l4().has_tcp());
    CHECK(f.ip().source() == client.ipv4);
    CHECK(f.destination().pod_name() == kPodNames[1]);
    syn = syn || (f.l4().tcp().flags().syn() && !f.l4().tcp().flags().ack());
  }
  CHECK(syn);
  const auto replies = c.flows(all_with([&](flow::FlowFilter& f) {
    f.add_protocol("tcp");
    f.add_source_port(std::to_string(kTcpPort));
  }));
  REQUIRE_FALSE(replies.empty());
  // (is_reply is not checked: at aggregation low packetparser runs no
  // conntrack and reports every packet as not a reply.)
  for (const auto& f : replies) {
    CHECK(f.source().pod_name() == kPodNames[1]);
    CHECK(f.ip().source() == server.ipv4);
    CHECK(f.has_is_reply());
  }
  // SYN selects exactly the handshake's first packet, at each of the two veths.
  const auto syns = c.flows(all_with([&](flow::FlowFilter& f) {
    f.add_destination_port(std::to_string(kTcpPort));
    f.add_tcp_flags()->set_syn(true);
  }));
  CHECK(syns.size() == 2);
  for (const auto& f : syns) CHECK(f.l4().tcp().flags().syn());

  // DNS: one query flow per query sent, with the query name.
  const auto dns = c.flows(all_with([&](flow::FlowFilter& f) {
    f.add_protocol("dns");
    f.add_dns_query(tag + R"(\.exists\.test\.$)");
  }));
  size_t queries = 0, responses = 0;
  for (const auto& f : dns) {
    CHECK(f.type() == flow::L7);
    CHECK(f.l7().dns().query().find(tag) != std::string::npos);
    if (f.l7().type() == flow::REQUEST) {
      ++queries;
      CHECK(f.source().pod_name() == kPodNames[0]);
      CHECK(f.destination().pod_name() == kPodNames[2]);
    } else {
      ++responses;
      REQUIRE(f.l7().dns().ips_size() == 1);
      CHECK(f.l7().dns().ips(0) == "10.9.9.9");
    }
  }
  CHECK(queries == kQueries);
  CHECK(responses == kQueries);

  // Filters select exactly what they name: by pod, everything between the
  // client and the server is the union of the selections above.
  const auto by_dst_pod = c.flows(all_with([&](flow::FlowFilter& f) {
    f.add_source_pod(ns + "/client-");
    f.add_destination_pod(ns + "/server-");
    f.add_protocol("udp");
  }));
  CHECK(by_dst_pod.size() == kFollowPackets * 2 + kUdpPackets * 2);
  const auto none = c.flows(all_with([&](flow::FlowFilter& f) {
    f.add_source_pod(ns + "/server-");
    f.add_protocol("udp");
  }));
  CHECK(none.empty());
  grpc::Status bad;
  c.flows(all_with([](flow::FlowFilter& f) { f.add_source_ip("10.0.0.300"); }), &bad);
  CHECK(bad.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  CHECK_THAT(bad.error_message(), Catch::Contains("source_ip"));

  // seen_flows, the flow log and hubble_flows_processed_total agree.
  uint64_t seen = 0, logged = 0;
  double processed = 0;
  test::PromText hm;
  const bool agree = wait_for(
      [&] {
        seen = c.status().seen_flows();
        logged = agent.flow_log().size();
        const auto r = test::http_get(metrics_port, "/metrics");
        if (r.status != 200) return false;
        hm = test::parse_prom_text(r.body);
        processed = hm.value("hubble_flows_processed_total", {}, true).value_or(-1);
        return seen == logged && processed == double(seen) && seen == c.status().seen_flows();
      },
      10s);
  INFO("seen " << seen << ", flow log " << logged << ", processed " << processed);
  CHECK(agree);
  REQUIRE(hm.error.empty());
  const std::string src = ns + "/" + kPodNames[0], dst = ns + "/" + kPodNames[1];
  CHECK(hm.value("hubble_flows_processed_total",
                 {{"source", src}, {"destination", dst}, {"protocol", "UDP"}, {"verdict", "FORWARDED"}}, true) ==
        double(2 * (kUdpPackets + kFollowPackets)));
  CHECK(hm.value("hubble_flows_processed_total", {{"source", src},
                                                  {"destination", dst},
                                                  {"protocol", "UDP"},
                                                  {"type", "Trace"},
                                                  {"subtype", "to-stack"},
                                                  {"verdict", "FORWARDED"}}) == double(kUdpPackets + kFollowPackets));
  CHECK(hm.value("hubble_port_distribution_total", {{"protocol", "UDP"}, {"port", std::to_string(kUdpPort)}}) ==
        double(2 * kUdpPackets));
  CHECK(hm.value("hubble_tcp_flags_total", {{"flag", "SYN"}, {"family", "IPv4"}}).value_or(0) >= 2);
  for (const auto& n : names) {
    INFO(n);
    CHECK(hm.value("hubble_dns_queries_total", {{"query", n + "."}, {"rcode", ""}, {"qtypes", "A"}, {"ips_returned", "0"}}) == 1.0);
    CHECK(hm.value("hubble_dns_responses_total",
                   {{"query", n + "."}, {"rcode", "No Error"}, {"qtypes", "A"}, {"ips_returned", "1"}}) == 1.0);
  }
  CHECK(hm.value("hubble_lost_events_total", {{"source", "hubble_ring_buffer"}}) == 0.0);
  CHECK(hm.value("hubble_lost_events_total", {{"source", "observer_events_queue"}}) == 0.0);

  // ---- 100 followers that never read: nothing else slows or loses ----
  std::vector<std::unique_ptr<grpc::ClientContext>> ctxs;
  std::vector<std::unique_ptr<grpc::ClientReader<observer::GetFlowsResponse>>> slow;
  observer::GetFlowsRequest follow_all;
  follow_all.set_follow(true);
  for (int i = 0; i < 100; ++i) {
    ctxs.push_back(std::make_unique<grpc::ClientContext>());
    slow.push_back(c.stub->GetFlows(ctxs.back().get(), follow_all));
  }
  const auto before = agent.metrics();
  const double fwd0 = before.value("networkobservability_forward_count", {}, true).value_or(0);
  const uint64_t seen0 = c.status().seen_flows();
  constexpr size_t kBulk = 2000;
  REQUIRE(test::udp_send(client, server, false, 7401, kBulk, 100) == kBulk);
  node.wait_quiet();
  const auto t0 = std::chrono::steady_clock::now();
  const auto scrape = agent.get("/metrics", 5s);
  const auto scrape_ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0);
  CHECK(scrape.status == 200);
  WARN("GET /metrics with 100 stalled followers: " << scrape_ms.count() << " ms");
  // Every packet counted in the metrics and seen by the store.
  CHECK(wait_for([&] {
    return agent.metrics().value("networkobservability_forward_count", {}, true).value_or(0) - fwd0 >= 2.0 * kBulk &&
           c.status().seen_flows() - seen0 >= 2 * kBulk;
  }, 10s));
  CHECK(agent.metrics().value("networkobservability_forward_count", {}, true).value_or(0) - fwd0 == 2.0 * kBulk);
  CHECK(agent.metrics().value("controlplane_networkobservability_lost_events_counter", {}, true).value_or(0) == 0);
  CHECK(test::parse_prom_text(test::http_get(metrics_port, "/metrics").body)
            .value("hubble_lost_events_total", {{"source", "observer_events_queue"}}) == 0.0);
  for (auto& x : ctxs) x->TryCancel();

  // Peer/Notify names this node for Relay.
  auto peer = peer::Peer::NewStub(c.channel);
  grpc::ClientContext pctx;
  pctx.set_deadline(std::chrono::system_clock::now() + 10s);
  auto notes = peer->Notify(&pctx, {});
  peer::ChangeNotification note;
  REQUIRE(notes->Read(&note));
  CHECK(note.name() == node_name());
  CHECK(note.address() == fmt::format("127.0.0.1:{}", grpc_port));
  pctx.TryCancel();

  REQUIRE(agent.stop() == 0);
}
