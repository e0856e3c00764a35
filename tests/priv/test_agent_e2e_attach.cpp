// Attach hygiene of the real agent binary: after a clean exit (SIGTERM or
// SIGINT) no tc filter or TCX program of retina is left on any interface,
// the BPF programs and maps the agent loaded are gone, and nothing is
// pinned; after a SIGKILL a restart replaces retina's stale filters and
// never duplicates them, with legacy tc, with TCX, and from one to the other;
// SIGKILLs at random points of start-up, a watch and a capture leave no
// duplicate filter, stale pin, clsact or half-written file for the next run.
#include <catch2/catch.hpp>

#include <net/if.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "loader/tcx_link.hpp"
#include "retina/features.hpp"
#include "support/agent_process.hpp"
#include "support/fake_apiserver.hpp"
#include "support/netns.hpp"
#include "support/privileged.hpp"

using namespace retina;
using namespace std::chrono_literals;
using retina::loader::TcDirection;

namespace {

bool kernel_has_tcx() { return make_kernel_feature_detector()->probe(KernelFeature::kTcx).has_value(); }

constexpr TcDirection kDirs[] = {TcDirection::kIngress, TcDirection::kEgress};
const char* dir_name(TcDirection d) { return d == TcDirection::kIngress ? "ingress" : "egress"; }

template <class Pred>
bool wait_for(Pred pred, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(50ms);
  }
  return pred();
}

// Every interface of the calling thread's namespace.
std::vector<std::pair<int, std::string>> interfaces() {
  std::vector<std::pair<int, std::string>> out;
  struct if_nameindex* list = ::if_nameindex();
  REQUIRE(list != nullptr);
  for (auto* i = list; i->if_index != 0; ++i) out.emplace_back(static_cast<int>(i->if_index), i->if_name);
  ::if_freenameindex(list);
  return out;
}

size_t lines_naming_retina(const std::string& text) {
  size_t n = 0, pos = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    if (text.substr(pos, end - pos).find("retina") != std::string::npos) ++n;
    pos = end + 1;
  }
  return n;
}

std::vector<uint32_t> retina_tcx_ids(int ifindex, TcDirection d) {
  std::vector<uint32_t> ids;
  for (const auto& p : test::tcx_programs(ifindex, d))
    if (p.name.rfind("retina", 0) == 0) ids.push_back(p.prog_id);
  return ids;
}

std::vector<uint32_t> retina_tc_ids(int ifindex, TcDirection d) {
  std::vector<uint32_t> ids;
  for (const auto& f : test::tc_filters(ifindex, d))
    if (f.handle != 0 && f.bpf_name.rfind("retina", 0) == 0) ids.push_back(f.bpf_prog_id);
  return ids;
}

std::string agent_config(uint16_t port, bool tcx) {
  return fmt::format(
      "apiServer:\n"
      "  host: 127.0.0.1\n"
      "  port: {}\n"
      "enabledPlugin: [packetparser]\n"
      "enableTCX: {}\n",
      port, tcx ? "auto" : "off");
}

void start_agent(test::AgentProcess& agent, const test::Node& node, bool tcx) {
  const uint16_t port = test::free_port(node.node_ns());
  agent.start({.config = agent_config(port, tcx), .netns = node.node_ns(), .port = port});
  agent.wait_ready();
  for (const auto& p : node.pods()) {
    INFO("attach to " << p.host_if << "\n" << agent.log_tail());
    REQUIRE(agent.wait_log("attached to " + p.host_if + " "));
  }
}

// Exactly one retina program on each hook of each pod veth, through the
// expected mechanism, and it is one the running agent holds.
void check_attached_once(const test::Node& node, const test::AgentProcess& agent, bool tcx) {
  const auto held = test::bpf_holdings(agent.pid()).prog_ids;
  for (const auto& p : node.pods()) {
    for (TcDirection d : kDirs) {
      INFO(p.host_if << " " << dir_name(d) << (tcx ? " (tcx)" : " (legacy tc)"));
      const auto tc_ids = retina_tc_ids(p.host_ifindex, d);
      const auto tcx_ids = retina_tcx_ids(p.host_ifindex, d);
      const std::string shown = test::tc_filter_show(p.host_if, dir_name(d));
      INFO("tc filter show:\n" << shown);
      if (tcx) {
        CHECK(tc_ids.empty());
        CHECK(lines_naming_retina(shown) == 0);
        REQUIRE(tcx_ids.size() == 1);
        CHECK(std::binary_search(held.begin(), held.end(), tcx_ids[0]));
      } else {
        CHECK(tcx_ids.empty());
        CHECK(lines_naming_retina(shown) == 1);
        REQUIRE(tc_ids.size() == 1);
        CHECK(std::binary_search(held.begin(), held.end(), tc_ids[0]));
      }
    }
  }
}

// No retina tc filter or TCX program on any interface of the node.
void check_nothing_attached() {
  for (const auto& [ifindex, name] : interfaces()) {
    for (TcDirection d : kDirs) {
      INFO(name << " " << dir_name(d));
      const std::string shown = test::tc_filter_show(name, dir_name(d));
      INFO("tc filter show:\n" << shown);
      CHECK(lines_naming_retina(shown) == 0);
      CHECK(retina_tc_ids(ifindex, d).empty());
      CHECK(retina_tcx_ids(ifindex, d).empty());
    }
  }
}

// No clsact qdisc on the pod veths (retina created it and removes it).
void check_no_clsact(const test::Node& node) {
  for (const auto& p : node.pods()) {
    const std::string q = test::sh("tc qdisc show dev " + p.host_if);
    INFO(p.host_if << ": " << q);
    CHECK(q.find("clsact") == std::string::npos);
  }
}

// Every program and map in `held` has been freed (freeing can trail the
// detach by an RCU grace period).
void check_unloaded(const test::BpfHoldings& held) {
  REQUIRE_FALSE(held.prog_ids.empty());
  const bool gone = wait_for(
      [&] {
        for (uint32_t id : held.prog_ids)
          if (test::bpf_prog_exists(id)) return false;
        for (uint32_t id : held.map_ids)
          if (test::bpf_map_exists(id)) return false;
        return true;
      },
      10s);
  for (uint32_t id : held.prog_ids) {
    INFO("program id " << id);
    CHECK_FALSE(test::bpf_prog_exists(id));
  }
  for (uint32_t id : held.map_ids) {
    INFO("map id " << id);
    CHECK_FALSE(test::bpf_map_exists(id));
  }
  CHECK(gone);
  const std::set<uint32_t> ids(held.prog_ids.begin(), held.prog_ids.end());
  size_t others = 0;
  for (const auto& [id, name] : test::bpftool_progs()) {
    INFO("bpftool prog show: id " << id << " " << name);
    CHECK(ids.count(id) == 0);
    if (name.rfind("retina", 0) == 0) ++others;
  }
  // Other retina processes on the machine (parallel test runs) may hold
  // their own programs; they are not ours to judge.
  if (others) WARN(others << " retina program(s) of other processes are loaded");
}

test::BpfHoldings merge(const test::BpfHoldings& a, const test::BpfHoldings& b) {
  test::BpfHoldings m = a;
  m.prog_ids.insert(m.prog_ids.end(), b.prog_ids.begin(), b.prog_ids.end());
  m.map_ids.insert(m.map_ids.end(), b.map_ids.begin(), b.map_ids.end());
  return m;
}

}  // namespace

TEST_CASE("agent e2e: a clean exit leaves nothing attached, loaded or pinned", "[priv][agent][e2e][attach]") {
  RETINA_REQUIRE_PRIVILEGED();
  const bool tcx = GENERATE(false, true);
  const int sig = GENERATE(SIGTERM, SIGINT);
  INFO((tcx ? "enableTCX auto" : "enableTCX off") << ", stopped with " << (sig == SIGTERM ? "SIGTERM" : "SIGINT"));
  if (tcx && !kernel_has_tcx()) {
    WARN("SKIPPED: the kernel has no TCX");
    return;
  }

  const auto pinned_before = test::list_tree("/sys/fs/bpf");
  test::Node node({.pods = 3, .isolated = true});
  test::AgentProcess agent;
  start_agent(agent, node, tcx);
  check_attached_once(node, agent, tcx);
  const auto held = test::bpf_holdings(agent.pid());
  INFO("agent held programs " << held.prog_ids.size() << ", maps " << held.map_ids.size());

  REQUIRE(agent.stop(sig) == 0);
  INFO(agent.log_tail());
  CHECK(agent.logs().find(fmt::format("msg=\"shutting down\" signal={}", sig == SIGTERM ? "SIGTERM" : "SIGINT")) !=
        std::string::npos);
  check_nothing_attached();
  check_no_clsact(node);
  check_unloaded(held);
  CHECK(test::list_tree("/sys/fs/bpf") == pinned_before);
}

TEST_CASE("agent e2e: after SIGKILL a restart replaces retina's programs and never duplicates them",
          "[priv][agent][e2e][attach]") {
  RETINA_REQUIRE_PRIVILEGED();
  struct Modes {
    bool first_tcx, second_tcx;
  };
  const auto modes = GENERATE(Modes{false, false}, Modes{true, true}, Modes{false, true});
  INFO("first run " << (modes.first_tcx ? "tcx" : "legacy tc") << ", restart " << (modes.second_tcx ? "tcx" : "legacy tc"));
  if ((modes.first_tcx || modes.second_tcx) && !kernel_has_tcx()) {
    WARN("SKIPPED: the kernel has no TCX");
    return;
  }

  const auto pinned_before = test::list_tree("/sys/fs/bpf");
  test::Node node({.pods = 3, .isolated = true});
  test::AgentProcess agent;
  start_agent(agent, node, modes.first_tcx);
  check_attached_once(node, agent, modes.first_tcx);
  const auto first = test::bpf_holdings(agent.pid());
  agent.kill_hard();

  // A killed agent's TCX links die with its file descriptors; its legacy
  // tc filters stay, exactly one per hook, still running its programs.
  for (const auto& p : node.pods()) {
    for (TcDirection d : kDirs) {
      INFO(p.host_if << " " << dir_name(d));
      if (modes.first_tcx) {
        CHECK(wait_for([&] { return retina_tcx_ids(p.host_ifindex, d).empty(); }, 5s));
      } else {
        const auto ids = retina_tc_ids(p.host_ifindex, d);
        REQUIRE(ids.size() == 1);
        CHECK(std::binary_search(first.prog_ids.begin(), first.prog_ids.end(), ids[0]));
        CHECK(test::bpf_prog_exists(ids[0]));
      }
    }
  }

  start_agent(agent, node, modes.second_tcx);
  check_attached_once(node, agent, modes.second_tcx);
  const auto second = test::bpf_holdings(agent.pid());
  // Nothing of the killed run survives the restart: its filters were
  // replaced (or removed), so its programs and maps were freed.
  check_unloaded(first);
  if (!modes.first_tcx && modes.second_tcx) {
    INFO(agent.log_tail());
    CHECK(agent.logs().find("stale retina filter") != std::string::npos);
  }

  REQUIRE(agent.stop() == 0);
  check_nothing_attached();
  check_unloaded(merge(first, second));
  CHECK(test::list_tree("/sys/fs/bpf") == pinned_before);
  // The killed run's clsact was empty once its filters went: the restart
  // took it over and removed it with its own.
  check_no_clsact(node);
}

TEST_CASE("agent e2e: a clean exit in the middle of bulk traffic detaches without disturbing it",
          "[priv][agent][e2e][attach]") {
  RETINA_REQUIRE_PRIVILEGED();
  const bool tcx = GENERATE(false, true);
  INFO((tcx ? "enableTCX auto" : "enableTCX off"));
  if (tcx && !kernel_has_tcx()) {
    WARN("SKIPPED: the kernel has no TCX");
    return;
  }
  test::Node node({.pods = 3, .isolated = true});
  test::AgentProcess agent;
  start_agent(agent, node, tcx);
  const auto held = test::bpf_holdings(agent.pid());

  const auto& server_pod = node.pod(1);
  auto server = test::ChildProcess::spawn(
      {.argv = {"/usr/bin/iperf3", "-s", "-1", "-p", "5301", "-B", server_pod.ipv4}, .netns = server_pod.ns});
  const std::string client_log = agent.path("iperf3-client.log");
  std::unique_ptr<test::ChildProcess> client;
  // The server needs a moment to listen: retry until the client connects.
  for (int attempt = 0; attempt < 50; ++attempt) {
    client = test::ChildProcess::spawn({.argv = {"/usr/bin/iperf3", "-c", server_pod.ipv4, "-p", "5301", "-t", "4"},
                                        .netns = node.pod(0).ns,
                                        .output_path = client_log});
    if (!client->wait_exit(300ms)) break;  // still running: connected
  }
  REQUIRE(client->running());
  std::this_thread::sleep_for(1s);

  const auto code = agent.stop();
  WARN(fmt::format("SIGTERM to exit during bulk traffic ({}): {} ms", tcx ? "tcx" : "legacy tc",
                   agent.last_stop_duration().count()));
  CHECK(code == 0);
  CHECK(agent.last_stop_duration() < 5s);
  CHECK(client->running());  // the transfer goes on

  INFO("iperf3 client:\n" << agent.read_file("iperf3-client.log"));
  CHECK(client->wait_exit(15s) == 0);
  CHECK(server->wait_exit(5s) == 0);
  check_nothing_attached();
  check_unloaded(held);
}

TEST_CASE("agent e2e: SIGKILL at random points of start-up, a watch and a capture leaves nothing for the next run",
          "[priv][agent][e2e][attach][restart]") {
  RETINA_REQUIRE_PRIVILEGED();
  namespace kj = test::k8sjson;
  namespace fs = std::filesystem;
  const auto pinned_before = test::list_tree("/sys/fs/bpf");
  test::Node node({.pods = 3, .isolated = true});
  test::FakeApiServer server(test::FakeApiServer::Options{.tls = false});
  const std::string node_name = "node-" + test::unique_tag();
  server.upsert("namespaces", kj::namespace_("shop", false));
  for (size_t i = 0; i < node.pods().size(); ++i) {
    kj::Pod p;
    p.ns = "shop";
    p.name = fmt::format("web-{}", i);
    p.node = node_name;
    p.ips = {node.pod(i).ipv4};
    p.labels = {{"app", "web"}};
    server.upsert("pods", kj::pod(p));
  }
  test::AgentProcess agent;
  agent.write_file("kubeconfig.yaml",
                   fmt::format("apiVersion: v1\nkind: Config\ncurrent-context: fake\nclusters:\n- name: fake\n  cluster: "
                               "{{server: \"{}\"}}\ncontexts:\n- name: fake\n  context: {{cluster: fake, user: nobody}}\n"
                               "users:\n- name: nobody\n  user: {{}}\n",
                               server.url()));
  const std::string out = agent.path("out");
  const std::string flows = agent.path("flows.jsonl");
  const uint16_t port = test::free_port(node.node_ns());
  const test::AgentOptions opts{
      .config = fmt::format("apiServer:\n  host: 127.0.0.1\n  port: {}\nenabledPlugin: [packetparser]\nenableTCX: off\n"
                            "dataAggregationLevel: low\nkubeconfig: {}\nnodeName: {}\npodInterfacePrefixes: [{}]\n"
                            "flowLogPath: {}\nflowLogMaxSize: 1\nflowLogMaxFiles: 2\nenableCapture: true\n"
                            "captureOutputRoot: {}\n",
                            port, agent.path("kubeconfig.yaml"), node_name, node.host_prefix(), flows, out),
      .netns = node.node_ns(),
      .port = port};

  const auto seed = std::random_device{}();
  INFO("seed " << seed);
  std::mt19937 rng(seed);
  // Traffic for the flow log while the agent starts, runs and dies.
  const auto traffic_for = [&](std::chrono::milliseconds d) {
    const auto end = std::chrono::steady_clock::now() + d;
    while (std::chrono::steady_clock::now() < end) {
      test::udp_send(node.pod(0), node.pod(1), false, 9100, 20, 200);
      std::this_thread::sleep_for(10ms);
    }
  };
  constexpr int kKills = 8;  // captures at kills 2 and 5
  bool killed_in_capture = false;
  for (int i = 0; i < kKills; ++i) {
    INFO("kill " << i);
    agent.start(opts);
    if (i % 3 == 2) {
      // Mid-capture: the kill lands while packets are being written.
      agent.wait_ready(30s);
      REQUIRE(agent.wait_log("attached to " + node.pod(0).host_if + " "));
      const std::string body =
          R"({"name":"k)" + std::to_string(i) +
          R"(","spec":{"captureConfiguration":{"captureTarget":{"podSelector":{"matchLabels":{"app":"web"}}},"captureOption":{"duration":"60s"}}}})";
      // Until the watch has listed the pods the selector matches none (400).
      test::HttpResponse r;
      const bool created = wait_for(
          [&] {
            r = test::http_raw("127.0.0.1", agent.port(),
                               "POST /captures HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\n"
                               "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body,
                               30s);
            return r.status == 201;
          },
          15s);
      CHECK(created);
      INFO(r.body << "\n" << agent.log_tail());
      REQUIRE(r.status == 201);
      traffic_for(std::chrono::milliseconds(std::uniform_int_distribution<int>(100, 800)(rng)));
      agent.kill_hard();
      if (fs::exists(out + "/.staging") && !fs::is_empty(out + "/.staging")) killed_in_capture = true;
    } else {
      // Anywhere in start-up: loading, attaching, the first LIST and watch.
      traffic_for(std::chrono::milliseconds(std::uniform_int_distribution<int>(0, 2500)(rng)));
      agent.kill_hard();
    }
    if (i == kKills - 1) {
      // What a kill inside write() leaves: a line cut short.
      std::ofstream(flows, std::ios::app) << R"({"flow":{"time":"2026-01-01T00:00:00Z","verdict":"FORW)";
    }
  }
  CHECK(killed_in_capture);  // the cleanup below had something to clean

  agent.start(opts);
  agent.wait_ready(30s);
  for (const auto& p : node.pods()) REQUIRE(agent.wait_log("attached to " + p.host_if + " "));
  // The kills left no second filter and the restart owns every hook.
  check_attached_once(node, agent, false);
  INFO(agent.log_tail());
  CHECK_FALSE(fs::exists(out + "/.staging"));
  for (const auto& path : test::list_tree(out)) CHECK_THAT(path, !Catch::EndsWith(".partial"));
  REQUIRE(agent.stop() == 0);
  check_nothing_attached();
  check_no_clsact(node);
  CHECK(test::list_tree("/sys/fs/bpf") == pinned_before);
  // Every flow log file holds whole lines only (parse_flow_lines throws on
  // a broken one), the repaired one included.
  for (const auto& name : {"flows.jsonl", "flows.jsonl.1", "flows.jsonl.2"}) {
    if (!fs::exists(agent.path(name))) continue;
    INFO(name);
    const std::string text = agent.read_file(name);
    CHECK((text.empty() || text.back() == '\n'));
    CHECK_NOTHROW(test::parse_flow_lines(text));
  }
}
