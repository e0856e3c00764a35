// End to end through the real agent binary: a "node" (a bridge and three
// pod namespaces in an isolated node namespace), an endpoints file naming
// the pods, and retina-agent running packetparser inside the node. Known
// TCP (own sockets and iperf3) and UDP traffic between the pods must show
// up in the agent's metrics and in its flow log with exactly the packets
// and bytes that the pod veths counted over the same period, with no lost
// events, and every flow carries the pods' names, namespaces, labels and
// workloads from the endpoints file.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <chrono>
#include <future>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "support/agent_process.hpp"
#include "support/forward_totals.hpp"
#include "support/netns.hpp"
#include "support/privileged.hpp"

using namespace retina;
using namespace std::chrono_literals;

namespace {

// What the endpoints file says about each pod of the node.
struct PodMeta {
  std::string name;
  std::string app;
  std::string workload_kind, workload_name;
};

const std::vector<PodMeta> kPods = {
    {"web-7d9f4c-x2x8q", "web", "Deployment", "web"},
    {"api-0", "api", "StatefulSet", "api"},
    {"db-5c8b6d-k4rrz", "db", "Deployment", "db"},
};

std::string pod_namespace() { return fmt::format("e2e-{}", ::getpid()); }

std::string endpoints_yaml(const test::Node& node, const std::vector<PodMeta>& meta) {
  std::string y = "endpoints:\n";
  for (size_t i = 0; i < node.pods().size(); ++i) {
    const auto& p = node.pod(i);
    const auto& m = meta.at(i);
    y += fmt::format(
        "  - kind: pod\n"
        "    namespace: {}\n"
        "    name: {}\n"
        "    ips: [{}, \"{}\"]\n"
        "    labels: {{app: {}, tier: e2e}}\n"
        "    workload: {{kind: {}, name: {}}}\n",
        pod_namespace(), m.name, p.ipv4, p.ipv6, m.app, m.workload_kind, m.workload_name);
  }
  return y;
}

std::string agent_config(const test::AgentProcess& agent, uint16_t port, const std::string& level,
                         const std::string& tcx) {
  return fmt::format(
      "apiServer:\n"
      "  host: 127.0.0.1\n"
      "  port: {}\n"
      "logLevel: info\n"
      "enabledPlugin: [packetparser]\n"
      // Ours: forward_* are the pods' veth totals these tests compare with
      // (Retina's are packetforward's NIC totals); conntrack_* gauges.
      "podForwardMetrics: true\n"
      "enableConntrackMetrics: true\n"
      "dataAggregationLevel: {}\n"
      "enableTCX: {}\n"
      "conntrackReportInterval: 1s\n"
      "metricsIntervalDuration: 1s\n"
      "endpointsFile: {}\n"
      "flowLogPath: {}\n"
      "nodeName: e2e-node-{}\n",
      port, level, tcx, agent.path("endpoints.yaml"), agent.path("flows.jsonl"), ::getpid());
}

template <class Pred>
bool wait_for(Pred pred, std::chrono::milliseconds timeout, std::chrono::milliseconds step = 100ms) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(step);
  }
  return pred();
}

// Starts the agent inside the node on a free port and waits until it is
// ready, has read the endpoints file and has attached to every pod veth.
void start_agent(test::AgentProcess& agent, const test::Node& node, const std::string& level,
                 const std::string& tcx = "auto") {
  const uint16_t port = test::free_port(node.node_ns());
  agent.start({.config = agent_config(agent, port, level, tcx), .netns = node.node_ns(), .port = port});
  agent.wait_ready();
  INFO(agent.log_tail());
  REQUIRE(agent.wait_log("msg=\"endpoints file applied\""));
  for (const auto& p : node.pods()) {
    INFO("attach to " << p.host_if);
    REQUIRE(agent.wait_log("attached to " + p.host_if + " "));
  }
}

// How many times the agent logged attaching to `ifname`.
size_t attach_count(const test::AgentProcess& agent, const std::string& ifname) {
  const std::string needle = "attached to " + ifname + " ";
  const std::string out = agent.logs();
  size_t n = 0;
  for (size_t at = out.find(needle); at != std::string::npos; at = out.find(needle, at + 1)) ++n;
  return n;
}

// [0] ingress (to the pods), [1] egress (from the pods).
using Totals = test::ForwardTotals;

Totals metric_totals(const test::PromText& m) { return test::forward_totals(m); }

// Host-side veth counters: what the pod sent is the veth's rx (egress,
// TO_STACK), what it received is the veth's tx (ingress, TO_ENDPOINT).
std::map<int, test::LinkCounters> veth_counters(const test::Node& node) {
  std::map<int, test::LinkCounters> out;
  for (const auto& p : node.pods()) out[p.host_ifindex] = test::read_counters(p.host_ifindex);
  return out;
}

Totals veth_delta(const std::map<int, test::LinkCounters>& before, const std::map<int, test::LinkCounters>& after) {
  Totals t;
  for (const auto& [ifindex, a] : after) {
    const auto& b = before.at(ifindex);
    t.packets[0] += a.tx_packets - b.tx_packets;
    t.bytes[0] += a.tx_bytes - b.tx_bytes;
    t.packets[1] += a.rx_packets - b.rx_packets;
    t.bytes[1] += a.rx_bytes - b.rx_bytes;
  }
  return t;
}

// Flow totals by (ifindex, direction index), with the counting rule.
std::map<std::pair<uint32_t, int>, Totals> flow_totals(const std::vector<test::FlowLine>& flows, size_t from) {
  std::map<std::pair<uint32_t, int>, Totals> out;
  for (size_t i = from; i < flows.size(); ++i) {
    const auto& f = flows[i];
    const int d = f.direction == "INGRESS" ? 0 : 1;
    auto& t = out[{f.ifindex, d}];
    t.packets[d] += f.packets();
    t.bytes[d] += f.total_bytes();
  }
  return out;
}

Totals sum_all(const std::map<std::pair<uint32_t, int>, Totals>& m) {
  Totals t;
  for (const auto& [k, v] : m) {
    for (int d = 0; d < 2; ++d) {
      t.packets[d] += v.packets[d];
      t.bytes[d] += v.bytes[d];
    }
  }
  return t;
}

// Runs iperf3 from pod `from` to pod `to` for `bytes` bytes.
void iperf3_bulk(const test::Pod& from, const test::Pod& to, uint16_t port, const std::string& bytes) {
  auto server = test::ChildProcess::spawn({.argv = {"/usr/bin/iperf3", "-s", "-1", "-p", std::to_string(port), "-B", to.ipv4},
                                           .netns = to.ns});
  std::string out;
  int rc = -1;
  // The server needs a moment to listen; a refused connection is retried.
  for (int attempt = 0; attempt < 50; ++attempt) {
    rc = test::sh_status(fmt::format("ip netns exec {} iperf3 -c {} -p {} -n {} --connect-timeout 2000", from.ns,
                                     to.ipv4, port, bytes),
                         &out);
    if (rc == 0 || out.find("Connection refused") == std::string::npos) break;
    std::this_thread::sleep_for(100ms);
  }
  INFO("iperf3 client: " << out);
  REQUIRE(rc == 0);
  REQUIRE(server->wait_exit(10s) == 0);
}

// Own-socket traffic of known sizes, both address families.
void socket_traffic(const test::Node& node, uint16_t base_port) {
  const auto& p = node.pods();
  REQUIRE(test::tcp_send(p[0], p[1], false, base_port, 1'000'000).received == 1'000'000);
  REQUIRE(test::tcp_send(p[1], p[2], true, base_port + 1, 300'000).received == 300'000);
  REQUIRE(test::tcp_send(p[2], p[0], false, base_port + 2, 1).received == 1);
  REQUIRE(test::udp_send(p[2], p[0], false, base_port + 3, 200, 1000) == 200);
  REQUIRE(test::udp_send(p[0], p[2], true, base_port + 4, 50, 500) == 50);
  REQUIRE(test::ping(p[1], p[0], false, 3) == 3);
}

// Every flow is between two of the node's pods and names both as the
// endpoints file does.
void check_enrichment(const test::Node& node, const std::vector<test::FlowLine>& flows, size_t from,
                      const std::vector<PodMeta>& meta) {
  std::map<std::string, size_t> pod_of_ip;
  for (size_t i = 0; i < node.pods().size(); ++i) {
    pod_of_ip[node.pod(i).ipv4] = i;
    pod_of_ip[node.pod(i).ipv6] = i;
  }
  const auto check_side = [&](const test::FlowEndpointInfo& ep, const std::string& ip) {
    INFO("address " << ip);
    REQUIRE(pod_of_ip.count(ip));
    const PodMeta& m = meta[pod_of_ip[ip]];
    CHECK(ep.present);
    CHECK(ep.namespace_ == pod_namespace());
    CHECK(ep.pod_name == m.name);
    CHECK(ep.labels == std::vector<std::string>{"app=" + m.app, "tier=e2e"});
    REQUIRE(ep.workloads.size() == 1);
    CHECK(ep.workloads[0].first == m.workload_kind);
    CHECK(ep.workloads[0].second == m.workload_name);
  };
  size_t checked = 0;
  for (size_t i = from; i < flows.size(); ++i) {
    const auto& f = flows[i];
    CHECK(f.verdict == "FORWARDED");
    CHECK(f.node_name == fmt::format("e2e-node-{}", ::getpid()));
    check_side(f.source, f.src_ip);
    check_side(f.destination, f.dst_ip);
    ++checked;
  }
  CHECK(checked > 0);
}

double lost_events(const test::PromText& m) {
  return m.value("controlplane_networkobservability_lost_events_counter", {}, true).value_or(0);
}

}  // namespace

namespace {

uint64_t parsed_records(const test::PromText& m) {
  return static_cast<uint64_t>(m.value("controlplane_networkobservability_parsed_packets_counter").value_or(0));
}

// Waits until the flow log holds one line per record the agent parsed (the
// log is written by its own thread), and returns it.
std::vector<test::FlowLine> settled_flow_log(const test::AgentProcess& agent) {
  std::vector<test::FlowLine> flows;
  uint64_t parsed = 0;
  const bool settled = wait_for(
      [&] {
        parsed = parsed_records(agent.metrics());
        flows = agent.flow_log();
        return flows.size() == parsed;
      },
      10s);
  INFO("flow log lines " << flows.size() << ", parsed records " << parsed);
  CHECK(settled);
  return flows;
}

// Waits until the node is quiet and, at aggregation high, until conntrack
// has reported every pending count (report interval 1 s, sweeper every
// 1 s), then until the flow log has caught up: a baseline taken after this
// has nothing in flight.
std::vector<test::FlowLine> settle(const test::Node& node, const test::AgentProcess& agent) {
  node.wait_quiet();
  std::this_thread::sleep_for(2s);
  return settled_flow_log(agent);
}

// Per pod veth and direction: the flows' totals equal the veth's counters.
void check_per_veth(const test::Node& node, const std::vector<test::FlowLine>& flows, size_t from,
                    const std::map<int, test::LinkCounters>& before, const std::map<int, test::LinkCounters>& after) {
  const auto per = flow_totals(flows, from);
  const auto at = [&](int ifindex, int d) {
    auto it = per.find({static_cast<uint32_t>(ifindex), d});
    return it == per.end() ? Totals{} : it->second;
  };
  for (const auto& p : node.pods()) {
    INFO("pod veth " << p.host_if << " (ifindex " << p.host_ifindex << ")");
    const auto& b = before.at(p.host_ifindex);
    const auto& a = after.at(p.host_ifindex);
    CHECK(at(p.host_ifindex, 0).packets[0] == a.tx_packets - b.tx_packets);
    CHECK(at(p.host_ifindex, 0).bytes[0] == a.tx_bytes - b.tx_bytes);
    CHECK(at(p.host_ifindex, 1).packets[1] == a.rx_packets - b.rx_packets);
    CHECK(at(p.host_ifindex, 1).bytes[1] == a.rx_bytes - b.rx_bytes);
  }
  // Nothing was reported for any other interface.
  for (const auto& [key, t] : per) {
    INFO("flows on ifindex " << key.first);
    CHECK(before.count(static_cast<int>(key.first)) == 1);
  }
}

}  // namespace

TEST_CASE("agent e2e: metrics and flows count exactly what crossed the pod veths", "[priv][agent][e2e]") {
  RETINA_REQUIRE_PRIVILEGED();
  struct Mode {
    const char* level;
    const char* tcx;
  };
  const Mode mode = GENERATE(Mode{"high", "auto"}, Mode{"low", "auto"}, Mode{"high", "off"});
  const std::string level = mode.level;
  const bool high = level == "high";
  INFO("dataAggregationLevel " << level << ", enableTCX " << mode.tcx);

  test::Node node({.pods = 3, .isolated = true});
  node.wait_quiet();
  test::AgentProcess agent;
  agent.write_file("endpoints.yaml", endpoints_yaml(node, kPods));
  start_agent(agent, node, level, mode.tcx);

  // Baseline: nothing is pending anywhere.
  const auto flows0 = settle(node, agent);
  const auto m0 = agent.metrics();
  const Totals base = metric_totals(m0);
  const auto c0 = veth_counters(node);

  // Round 1: own sockets and an iperf3 bulk transfer; the report interval
  // (high) brings every count out while the agent runs.
  socket_traffic(node, 5001);
  iperf3_bulk(node.pod(0), node.pod(2), 5201, "100M");
  node.wait_quiet();
  const auto c1 = veth_counters(node);
  const Totals expected1 = veth_delta(c0, c1);

  Totals got;
  const bool matched = wait_for(
      [&] {
        got = metric_totals(agent.metrics()) - base;
        return got == expected1;
      },
      20s, 200ms);
  INFO("veths counted " << expected1);
  INFO("metrics counted " << got);
  INFO(agent.log_tail());
  CHECK(matched);
  const auto m1 = agent.metrics();
  CHECK(m1.family("controlplane_networkobservability_lost_events_counter") != nullptr);
  CHECK(lost_events(m1) == 0);
  if (high) {
    CHECK(m1.family("networkobservability_conntrack_total_connections") != nullptr);
    CHECK(m1.value("networkobservability_conntrack_packets_tx").value_or(0) > 0);
  }
  const auto flows1 = settled_flow_log(agent);
  CHECK(sum_all(flow_totals(flows1, flows0.size())) == expected1);
  check_per_veth(node, flows1, flows0.size(), c0, c1);
  for (const auto& p : node.pods()) {  // every pod sent and received
    CHECK(c1.at(p.host_ifindex).rx_packets > c0.at(p.host_ifindex).rx_packets);
    CHECK(c1.at(p.host_ifindex).tx_packets > c0.at(p.host_ifindex).tx_packets);
  }
  check_enrichment(node, flows1, flows0.size(), kPods);
  const uint64_t records = flows1.size() - flows0.size();
  if (high) CHECK(records < expected1.packets[0] + expected1.packets[1]);  // conntrack aggregated
  else CHECK(records == expected1.packets[0] + expected1.packets[1]);     // one per packet
  WARN(fmt::format("aggregation {}, enableTCX {}: {} packets / {} bytes through the veths, {} flow records", level,
                   mode.tcx, expected1.packets[0] + expected1.packets[1], expected1.bytes[0] + expected1.bytes[1], records));

  // Round 2: more traffic, then an immediate clean stop. Whatever conntrack
  // still holds is flushed on the way out, so the flow log is exact.
  const auto& p = node.pods();
  REQUIRE(test::tcp_send(p[0], p[2], true, 6001, 200'000).received == 200'000);
  REQUIRE(test::udp_send(p[1], p[0], false, 6002, 40, 700) == 40);
  node.wait_quiet();
  const auto c2 = veth_counters(node);
  CHECK(lost_events(agent.metrics()) == 0);
  for (const auto& p : node.pods()) {
    INFO(p.host_if);
    CHECK(attach_count(agent, p.host_if) == 1);  // never detached and reattached
  }
  REQUIRE(agent.stop() == 0);
  INFO(agent.log_tail());
  CHECK(agent.logs().find("component=agent msg=stopped") != std::string::npos);

  const auto flows2 = agent.flow_log();
  CHECK(sum_all(flow_totals(flows2, flows0.size())) == veth_delta(c0, c2));
  check_per_veth(node, flows2, flows0.size(), c0, c2);
  check_enrichment(node, flows2, flows1.size(), kPods);
}

namespace {

// Asks /flows to follow flows on `port` while pod `from` sends a UDP
// datagram to pod `to` on that port every 100 ms (each from a new socket,
// so each is a new connection and reported at once at aggregation high),
// until the first matching flow arrives.
test::FlowLine first_flow_on_port(const test::AgentProcess& agent, const test::Pod& from, const test::Pod& to,
                                  uint16_t port) {
  auto answer = std::async(std::launch::async, [&] {
    return agent.get(fmt::format("/flows?follow=1&max=1&port={}", port), 15s);
  });
  for (int i = 0; i < 100 && answer.wait_for(100ms) != std::future_status::ready; ++i)
    test::udp_send(from, to, false, port, 1, 100);
  const auto r = answer.get();
  INFO("GET /flows: " << r.status << " " << r.error << " " << r.body);
  REQUIRE(r.status == 200);
  CHECK(r.header("Content-Type").rfind("application/x-ndjson", 0) == 0);
  const auto flows = test::parse_flow_lines(r.body);
  REQUIRE(flows.size() == 1);
  CHECK(flows[0].l4 == "UDP");
  CHECK((flows[0].src_port == port || flows[0].dst_port == port));
  return flows[0];
}

}  // namespace

TEST_CASE("agent e2e: a pod renamed in the endpoints file is named anew in flows", "[priv][agent][e2e]") {
  RETINA_REQUIRE_PRIVILEGED();
  test::Node node({.pods = 3, .isolated = true});
  node.wait_quiet();
  test::AgentProcess agent;
  agent.write_file("endpoints.yaml", endpoints_yaml(node, kPods));
  start_agent(agent, node, "high");

  const auto before = first_flow_on_port(agent, node.pod(0), node.pod(1), 7001);
  CHECK(before.source.pod_name == kPods[0].name);
  CHECK(before.destination.pod_name == kPods[1].name);

  // Rename pod 1 (and move it to another workload) the way editors and
  // ConfigMap updates write: a new file renamed over the old one.
  auto renamed = kPods;
  renamed[1].name = "api-renamed-1";
  renamed[1].workload_name = "api-v2";
  const size_t flows_before = settle(node, agent).size();
  agent.write_file("endpoints.yaml", endpoints_yaml(node, renamed));
  INFO(agent.log_tail());
  REQUIRE(agent.wait_log("msg=\"endpoints file applied\"", 10s, 2));

  const auto after = first_flow_on_port(agent, node.pod(0), node.pod(1), 7002);
  CHECK(after.source.pod_name == kPods[0].name);
  CHECK(after.destination.pod_name == "api-renamed-1");
  CHECK(after.destination.namespace_ == pod_namespace());
  REQUIRE(after.destination.workloads.size() == 1);
  CHECK(after.destination.workloads[0].second == "api-v2");

  // Replies carry the new name as their source too, and no flow after the
  // reload names the old pod.
  REQUIRE(test::tcp_send(node.pod(1), node.pod(2), true, 7003, 10'000).received == 10'000);
  node.wait_quiet();
  REQUIRE(agent.stop() == 0);
  const auto flows = agent.flow_log();
  size_t named_new = 0;
  for (size_t i = flows_before; i < flows.size(); ++i) {
    CHECK(flows[i].source.pod_name != kPods[1].name);
    CHECK(flows[i].destination.pod_name != kPods[1].name);
    if (flows[i].src_ip == node.pod(1).ipv6) {
      CHECK(flows[i].source.pod_name == "api-renamed-1");
      ++named_new;
    }
  }
  CHECK(named_new > 0);
}

namespace {

// Waits until the agent's forward metrics moved by exactly what the pod
// veths counted between `before` and `after`.
void check_metrics_match(const test::AgentProcess& agent, const Totals& base,
                         const std::map<int, test::LinkCounters>& before,
                         const std::map<int, test::LinkCounters>& after) {
  const Totals expected = veth_delta(before, after);
  Totals got;
  const bool matched = wait_for(
      [&] {
        got = metric_totals(agent.metrics()) - base;
        return got == expected;
      },
      20s, 200ms);
  INFO("veths counted " << expected);
  INFO("metrics counted " << got);
  INFO(agent.log_tail());
  CHECK(matched);
}

}  // namespace

TEST_CASE("agent e2e: pods that come and go while the agent runs are attached, counted and forgotten",
          "[priv][agent][e2e]") {
  RETINA_REQUIRE_PRIVILEGED();
  const std::string tcx = GENERATE("auto", "off");
  INFO("enableTCX " << tcx);
  test::Node node({.pods = 3, .isolated = true});
  node.wait_quiet();
  test::AgentProcess agent;
  agent.write_file("endpoints.yaml", endpoints_yaml(node, kPods));
  start_agent(agent, node, "high", tcx);

  // A fourth pod appears, and the endpoints file learns its name.
  const test::Pod added = node.add_pod();
  auto meta = kPods;
  meta.push_back({"late-6f7c9-q5t2z", "late", "Deployment", "late"});
  agent.write_file("endpoints.yaml", endpoints_yaml(node, meta));
  {
    INFO(agent.log_tail());
    REQUIRE(agent.wait_log("attached to " + added.host_if + " "));
    REQUIRE(agent.wait_log("msg=\"endpoints file applied\"", 10s, 2));
  }
  const size_t flows_from = settle(node, agent).size();
  const Totals base1 = metric_totals(agent.metrics());
  CHECK(attach_count(agent, added.host_if) == 1);  // bridge port events do not detach it
  const auto c0 = veth_counters(node);
  REQUIRE(test::tcp_send(node.pod(3), node.pod(0), false, 8001, 500'000).received == 500'000);
  REQUIRE(test::udp_send(node.pod(1), node.pod(3), true, 8002, 30, 800) == 30);
  node.wait_quiet();
  const auto c1 = veth_counters(node);
  check_metrics_match(agent, base1, c0, c1);
  const auto flows = settled_flow_log(agent);
  check_per_veth(node, flows, flows_from, c0, c1);
  check_enrichment(node, flows, flows_from, meta);

  // The pod goes: its veth goes with its namespace (first losing its peer,
  // then deleted), and the agent lets go of it quietly; the others are
  // still counted exactly.
  const size_t log_before = agent.logs().size();
  node.remove_pod(3);
  settle(node, agent);
  const Totals base2 = metric_totals(agent.metrics());
  const auto c2 = veth_counters(node);
  REQUIRE(test::tcp_send(node.pod(0), node.pod(1), true, 8003, 100'000).received == 100'000);
  node.wait_quiet();
  const auto c3 = veth_counters(node);
  check_metrics_match(agent, base2, c2, c3);

  {
    const std::string since = agent.logs().substr(log_before);
    INFO("agent output after the pod went:\n" << since);
    CHECK(since.find("level=warn") == std::string::npos);
    CHECK(since.find("level=error") == std::string::npos);
  }
  const auto health = agent.get("/healthz");
  CHECK(health.status == 200);
  const auto m = agent.metrics();
  CHECK(m.value("controlplane_networkobservability_plugin_manager_failed_to_reconcile", {}, true).value_or(0) == 0);
  CHECK(lost_events(m) == 0);
  REQUIRE(agent.stop() == 0);
  for (const auto& p : node.pods()) {
    for (const char* dir : {"ingress", "egress"}) {
      INFO(p.host_if << " " << dir);
      CHECK(test::tc_filter_show(p.host_if, dir).find("retina") == std::string::npos);
    }
  }
}

TEST_CASE("agent e2e: a clean stop flushes every count still pending in the kernel", "[priv][agent][e2e]") {
  RETINA_REQUIRE_PRIVILEGED();
  test::Node node({.pods = 3, .isolated = true});
  node.wait_quiet();
  test::AgentProcess agent;
  agent.write_file("endpoints.yaml", endpoints_yaml(node, kPods));
  // Retina's default report interval (30 s): within this test only new
  // connections, flag changes and the final flush report anything.
  const uint16_t port = test::free_port(node.node_ns());
  std::string config = agent_config(agent, port, "high", "auto");
  config.replace(config.find("conntrackReportInterval: 1s"), 27, "conntrackReportInterval: 30s");
  agent.start({.config = config, .netns = node.node_ns(), .port = port});
  agent.wait_ready();
  for (const auto& p : node.pods()) REQUIRE(agent.wait_log("attached to " + p.host_if + " "));
  const auto flows0 = settle(node, agent);
  const Totals base = metric_totals(agent.metrics());
  const auto c0 = veth_counters(node);

  const auto& p = node.pods();
  REQUIRE(test::udp_send(p[0], p[1], false, 9001, 100, 600) == 100);
  REQUIRE(test::udp_send(p[2], p[1], true, 9002, 20, 1200) == 20);
  REQUIRE(test::tcp_send(p[1], p[2], false, 9003, 200'000).received == 200'000);
  REQUIRE(test::ping(p[0], p[2], true, 4) == 4);
  node.wait_quiet();
  const auto c1 = veth_counters(node);
  const Totals expected = veth_delta(c0, c1);

  // While the agent runs, conntrack still holds most of it.
  settled_flow_log(agent);
  const Totals before_stop = metric_totals(agent.metrics()) - base;
  INFO("veths counted " << expected);
  INFO("metrics counted before the stop " << before_stop);
  CHECK(before_stop.packets[0] + before_stop.packets[1] < expected.packets[0] + expected.packets[1]);

  REQUIRE(agent.stop() == 0);
  const auto flows = agent.flow_log();
  CHECK(sum_all(flow_totals(flows, flows0.size())) == expected);
  check_per_veth(node, flows, flows0.size(), c0, c1);
  check_enrichment(node, flows, flows0.size(), kPods);
  WARN(fmt::format("{} of {} packets were reported by the final flush at SIGTERM",
                   expected.packets[0] + expected.packets[1] - before_stop.packets[0] - before_stop.packets[1],
                   expected.packets[0] + expected.packets[1]));
}
