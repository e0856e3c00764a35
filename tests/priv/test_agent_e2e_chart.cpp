// The shipped deployment, run for real: the agent started with the
// DaemonSet's exact command line, the ConfigMap's config.yaml (both from
// deploy/kubernetes, which is the Helm chart rendered with its defaults,
// see scripts/gen-deploy.py) and only the container's capabilities, in a
// node namespace of its own. Every default plugin runs and packetforward
// counts; without any one of the capabilities something the agent needs
// fails, so the set is also minimal.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <map>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include "support/agent_process.hpp"
#include "support/capability_wrapper.hpp"
#include "support/http_client.hpp"
#include "support/netns.hpp"
#include "support/privileged.hpp"

using namespace retina;
using namespace std::chrono_literals;

namespace {

const std::string kDeploy = std::string(RETINA_SOURCE_DIR) + "/deploy/kubernetes";

struct Chart {
  std::vector<std::string> args;
  std::vector<std::string> capabilities;  // as Kubernetes spells them: BPF, NET_ADMIN, ...
  std::string config_yaml;
  std::string config_path;  // where args point --config
};

Chart load_chart() {
  Chart c;
  const YAML::Node ds = YAML::LoadFile(kDeploy + "/daemonset.yaml");
  const YAML::Node container = ds["spec"]["template"]["spec"]["containers"][0];
  REQUIRE(container["name"].as<std::string>() == "retina");
  c.args = container["args"].as<std::vector<std::string>>();
  c.capabilities = container["securityContext"]["capabilities"]["add"].as<std::vector<std::string>>();
  const YAML::Node cm = YAML::LoadFile(kDeploy + "/configmap.yaml");
  c.config_yaml = cm["data"]["config.yaml"].as<std::string>();
  const auto it = std::find(c.args.begin(), c.args.end(), "--config");
  REQUIRE(it != c.args.end());
  REQUIRE(it + 1 != c.args.end());
  c.config_path = *(it + 1);
  return c;
}

std::string caps_list(const std::vector<std::string>& caps) { return fmt::format("{}", fmt::join(caps, ",")); }

// The agent with only `caps`, as the container runtime starts it.
std::vector<std::string> setpriv(const std::vector<std::string>& caps) { return test::setpriv_wrapper(caps); }

struct Node {
  test::NetNs ns, peer;
  std::string up;
  Node()
      : ns("rtk-" + test::unique_tag() + "-chart"),
        peer("rtk-" + test::unique_tag() + "-chartp"),
        up(fmt::format("rcu{}", ::getpid())) {
    test::sh("ip -n " + ns.name() + " link set lo up");
    // A default route through an uplink: packetforward has an interface to count.
    const std::string down = fmt::format("rcd{}", ::getpid());
    test::sh(fmt::format("ip link add {} netns {} type veth peer name {} netns {}", up, ns.name(), down, peer.name()));
    test::sh(fmt::format("ip -n {} addr add 10.125.0.1/30 dev {} && ip -n {} link set {} up", ns.name(), up,
                         ns.name(), up));
    test::sh(fmt::format("ip -n {} link set {} up", peer.name(), down));
    test::sh(fmt::format("ip -n {} route add default via 10.125.0.2", ns.name()));
  }
};

}  // namespace

TEST_CASE("chart: the agent runs with the DaemonSet's command line, config and capabilities only",
          "[priv][agent][e2e][chart]") {
  RETINA_REQUIRE_PRIVILEGED();
  const Chart chart = load_chart();
  INFO("args: " << fmt::format("{}", fmt::join(chart.args, " ")));
  INFO("capabilities: " << caps_list(chart.capabilities));
  Node node;

  test::AgentProcess agent;
  // The ConfigMap's file where the mount puts it is the one substitution:
  // the test cannot write /retina/config on the host.
  agent.write_file("config.yaml", chart.config_yaml);
  std::vector<std::string> args = chart.args;
  std::replace(args.begin(), args.end(), chart.config_path, agent.path("config.yaml"));
  agent.start({.config = std::nullopt,
               .args = args,
               .wrapper = setpriv(chart.capabilities),
               .env = {"NODE_NAME=chart-node"},
               .netns = node.ns.name(),
               .port = 10093});  // the config's apiServer.port, in the agent's own namespace
  REQUIRE(agent.wait_log("msg=plugins", 30s));
  INFO(agent.log_tail(60));
  // Every plugin the chart enables runs with these capabilities only.
  const auto states = test::plugin_states(agent.logs());
  const std::vector<std::string> enabled = {"packetparser", "dropreason", "packetforward", "linuxutil", "dns",
                                            "tcpretrans"};
  for (const auto& p : enabled) {
    INFO("plugin " << p);
    CHECK(states.count(p) == 1);
    if (states.count(p)) CHECK(states.at(p) == "running");
  }
  CHECK(agent.wait_log("msg=counting interface=" + node.up));
  CHECK(agent.wait_log("msg=\"also serving\" flag=--health-probe-bind-address"));
  CHECK(agent.wait_log("msg=\"also serving\" flag=--metrics-bind-address"));
  // The probes the DaemonSet declares, on the probe address; metrics on both ports.
  auto get = [&](uint16_t port, const char* path) {
    return test::in_netns(node.ns.name(), [&] { return test::http_get(port, path); });
  };
  CHECK(get(18081, "/readyz").status == 200);
  // No cluster here: the Kubernetes component fails (503) and says so; the agent runs on.
  const auto health = get(18081, "/healthz");
  CHECK(health.body.find(R"("kubernetes":{"state":"failed")") != std::string::npos);
  for (uint16_t port : {uint16_t{10093}, uint16_t{18080}}) {
    const auto m = get(port, "/metrics");
    REQUIRE(m.status == 200);
    CHECK(m.body.find("networkobservability_forward_count{direction=\"egress\"}") != std::string::npos);
    CHECK(m.body.find("process_cpu_seconds_total") != std::string::npos);
  }
  CHECK(agent.stop() == 0);
}

TEST_CASE("chart: each capability of the DaemonSet is needed", "[priv][agent][e2e][chart]") {
  RETINA_REQUIRE_PRIVILEGED();
  const Chart chart = load_chart();
  Node node;
  const std::string config = "apiServer:\n  host: 127.0.0.1\n  port: 10093\n";
  // What fails without each one (on kernels with CAP_BPF and memcg-accounted
  // BPF memory): the engine names the missing capability before the kernel
  // would refuse (test_agent_capabilities.cpp shows that it would).
  const std::map<std::string, std::string> fails = {
      {"BPF", "missing capability CAP_BPF: packetparser needs"},
      {"PERFMON", "missing capability CAP_PERFMON: dropreason needs"},  // tracing programs (tp_btf)
      {"NET_ADMIN", "missing capability CAP_NET_ADMIN: packetparser needs"},  // tc/tcx programs and their attach
      {"NET_RAW", "missing capability CAP_NET_RAW: packetforward needs"},     // packetforward's AF_PACKET socket
      {"SETPCAP", "bounding_set=\"left as given (no CAP_SETPCAP)\""},        // shrinking the bounding set after start-up
  };
  REQUIRE(fails.size() == chart.capabilities.size());
  for (const auto& cap : chart.capabilities) {
    INFO("without " << cap);
    REQUIRE(fails.count(cap) == 1);
    std::vector<std::string> fewer;
    for (const auto& c : chart.capabilities)
      if (c != cap) fewer.push_back(c);
    test::AgentProcess agent;
    agent.start({.config = config,
                 .args = {"--health-probe-bind-address=0"},
                 .wrapper = setpriv(fewer),
                 .netns = node.ns.name(),
                 .port = 10093});
    REQUIRE(agent.wait_log("msg=plugins", 30s));
    CHECK(agent.wait_log(fails.at(cap), 10s));
    INFO(agent.log_tail(40));
    CHECK(agent.stop() == 0);
  }
}
