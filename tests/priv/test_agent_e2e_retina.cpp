// The agent as a drop-in for Retina's: started with the flags Retina's chart
// passes it serves probes and metrics on those addresses; with Retina's
// defaults forward_count/forward_bytes are the node interface's own
// counters (packetforward), exactly, whatever else runs.
//
// Each agent runs in a fresh network namespace of its own.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "support/agent_process.hpp"
#include "support/forward_totals.hpp"
#include "support/fake_apiserver.hpp"
#include "support/http_client.hpp"
#include "support/netns.hpp"
#include "support/privileged.hpp"

using namespace retina;
using namespace std::chrono_literals;

namespace {

struct BareNetns {
  test::NetNs ns;
  explicit BareNetns(const std::string& suffix) : ns("rtk-" + test::unique_tag() + "-" + suffix) {
    test::sh("ip -n " + ns.name() + " link set lo up");
    // No IPv6: router and neighbour solicitations would move counters mid-test.
    test::sh("ip netns exec " + ns.name() +
             " sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1");
  }
  const std::string& name() const { return ns.name(); }
};

test::HttpResponse get_in(const std::string& ns, uint16_t port, const std::string& target) {
  return test::in_netns(ns, [&] { return test::http_get(port, target); });
}

}  // namespace

TEST_CASE("agent e2e: Retina's chart flags: probe and metrics addresses, leader election ignored",
          "[priv][agent][e2e][retina]") {
  RETINA_REQUIRE_PRIVILEGED();
  BareNetns ns("flags");
  const uint16_t api = test::free_port(ns.name());
  const uint16_t probe = test::free_port(ns.name());
  uint16_t metrics = test::free_port(ns.name());
  while (metrics == probe) metrics = test::free_port(ns.name());
  test::AgentProcess agent;
  agent.start({.config = fmt::format("apiServer:\n  host: 127.0.0.1\n  port: {}\nenabledPlugin: [linuxutil]\n", api),
               .args = {fmt::format("--health-probe-bind-address=127.0.0.1:{}", probe),
                        fmt::format("--metrics-bind-address=127.0.0.1:{}", metrics), "--leader-elect"},
               .netns = ns.name(),
               .port = api});
  agent.wait_ready();
  INFO(agent.log_tail());
  CHECK(agent.logs().find("--leader-elect is ignored") != std::string::npos);
  REQUIRE(agent.wait_log("msg=\"also serving\" flag=--metrics-bind-address"));

  const auto health = get_in(ns.name(), probe, "/healthz");
  CHECK(health.status == 200);
  CHECK(health.body.find(R"("status":"ok")") != std::string::npos);
  CHECK(get_in(ns.name(), probe, "/readyz").status == 200);
  const auto m = get_in(ns.name(), metrics, "/metrics");
  REQUIRE(m.status == 200);
  const auto prom = test::parse_prom_text(m.body);
  REQUIRE(prom.error.empty());
  CHECK(prom.value("process_cpu_seconds_total").value_or(-1) >= 0);
  CHECK(prom.value("process_open_fds").value_or(0) > 0);
  CHECK(prom.value("process_resident_memory_bytes").value_or(0) > 1 << 20);
  CHECK(prom.value("process_start_time_seconds").value_or(0) > 1.7e9);
  CHECK(prom.family("networkobservability_tcp_state") != nullptr);
  CHECK(agent.stop() == 0);

  // A requested address that is taken fails the start: exit 1, naming the flag.
  {
    test::AgentProcess holder;
    holder.start({.config = fmt::format("apiServer:\n  host: 127.0.0.1\n  port: {}\nenabledPlugin: [linuxutil]\n", api),
                  .args = {fmt::format("--health-probe-bind-address=127.0.0.1:{}", probe)},
                  .netns = ns.name(),
                  .port = api});
    holder.wait_ready();
    const uint16_t api2 = test::free_port(ns.name());
    test::AgentProcess second;
    second.start({.config = fmt::format("apiServer:\n  host: 127.0.0.1\n  port: {}\nenabledPlugin: [linuxutil]\n", api2),
                  .args = {fmt::format("--health-probe-bind-address=127.0.0.1:{}", probe)},
                  .netns = ns.name(),
                  .port = api2});
    const auto code = second.wait_exit(20s);
    INFO(second.logs());
    CHECK(code == 1);
    CHECK(second.logs().find("--health-probe-bind-address") != std::string::npos);
    CHECK(holder.stop() == 0);
  }

  // A malformed address is a command-line error: exit 2.
  test::AgentProcess bad;
  bad.start({.config = std::nullopt, .args = {"--metrics-bind-address=18080"}, .netns = ns.name(), .port = 1});
  const auto code = bad.wait_exit(10s);
  INFO(bad.logs());
  CHECK(code == 2);
  CHECK(bad.logs().find("--metrics-bind-address: bind address \"18080\"") != std::string::npos);
}

TEST_CASE("agent e2e: Retina's forward_count is the node interface's counters, exactly",
          "[priv][agent][e2e][retina][packetforward]") {
  RETINA_REQUIRE_PRIVILEGED();
  BareNetns node("node"), peer("peer");
  const std::string up = fmt::format("rfu{}", ::getpid()), down = fmt::format("rfd{}", ::getpid());
  test::sh(fmt::format("ip link add {} netns {} type veth peer name {} netns {}", up, node.name(), down, peer.name()));
  test::sh(fmt::format("ip -n {} addr add 10.123.0.1/30 dev {} && ip -n {} link set {} up", node.name(), up,
                       node.name(), up));
  test::sh(fmt::format("ip -n {} addr add 10.123.0.2/30 dev {} && ip -n {} link set {} up", peer.name(), down,
                       peer.name(), down));
  test::sh(fmt::format("ip -n {} route add default via 10.123.0.2", node.name()));

  const uint16_t api = test::free_port(node.name());
  test::AgentProcess agent;
  // Retina's defaults: packetparser runs too, and still forward_* are the NIC's.
  agent.start({.config = fmt::format("apiServer:\n  host: 127.0.0.1\n  port: {}\n"
                                     "enabledPlugin: [packetparser, packetforward]\nhostInterfaces: []\n",
                                     api),
               .netns = node.name(),
               .port = api});
  agent.wait_ready();
  INFO(agent.log_tail());
  REQUIRE(agent.wait_log("msg=counting interface=" + up));

  const int ifindex = test::in_netns(node.name(), [&] { return test::ifindex_of(up); });
  const auto nic = [&] {
    return test::forward_totals(test::in_netns(node.name(), [&] { return test::read_counters(ifindex); }));
  };
  const auto m0 = agent.metrics();
  REQUIRE(m0.family("networkobservability_forward_count") != nullptr);
  for (const auto& s : m0.family("networkobservability_forward_count")->samples) CHECK(s.labels.size() == 1);
  CHECK(m0.family("networkobservability_node_forward_count") == nullptr);
  const test::ForwardTotals agent0 = test::forward_totals(m0), nic0 = nic();

  test::sh(fmt::format("ip netns exec {} ping -q -c 40 -i 0.01 -s 200 10.123.0.2", node.name()));
  test::sh(fmt::format("ip netns exec {} ping -q -c 15 -i 0.01 10.123.0.1", peer.name()));

  const test::ForwardTotals expected = nic() - nic0;
  CHECK(expected.packets[1] >= 55);  // 40 requests and 15 replies left the node
  CHECK(expected.packets[0] >= 55);
  test::ForwardTotals got;
  const bool matched = test::wait_until(
      [&] {
        got = test::forward_totals(agent.metrics()) - agent0;
        return got == expected;
      },
      10s);
  INFO("NIC counted " << expected);
  INFO("forward_* counted " << got);
  CHECK(matched);
  CHECK(agent.stop() == 0);
}
