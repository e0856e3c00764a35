// Least privilege, proved on this kernel: each plugin's start set in the
// plugin table (src/plugins/registry.cpp) is enough for it to load and
// attach, and without any one of its capabilities the kernel refuses it;
// a plugin whose capability the agent lacks is reported as such in
// /healthz while the others run; and after start-up every thread of the
// agent holds only the running plugins' run sets.
#include <catch2/catch.hpp>

#include <dirent.h>
#include <unistd.h>

#include <chrono>
#include <map>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "core/file.hpp"
#include "retina/capabilities.hpp"
#include "retina/plugin.hpp"
#include "support/agent_process.hpp"
#include "support/capability_wrapper.hpp"
#include "support/http_client.hpp"
#include "support/netns.hpp"
#include "support/privileged.hpp"

using namespace retina;
using namespace std::chrono_literals;

namespace {

// A node of one pod (packetparser attaches to its veth) and a default
// route (packetforward counts its interface), in a namespace of its own.
struct CapNode {
  test::Node node{{.pods = 1, .isolated = true}};
  std::string uplink = fmt::format("rcap{}", ::getpid());
  CapNode() {
    const std::string& ns = node.node_ns();
    // A veth whose peer stays in the same namespace: not a pod veth.
    test::sh(fmt::format("ip -n {} link add {} type veth peer name {}p", ns, uplink, uplink));
    test::sh(fmt::format("ip -n {} link set {}p up", ns, uplink));
    test::sh(fmt::format("ip -n {} addr add 10.126.0.1/30 dev {}", ns, uplink));
    test::sh(fmt::format("ip -n {} link set {} up", ns, uplink));
    test::sh(fmt::format("ip -n {} route add default via 10.126.0.2", ns));
  }
};

std::string config_for(uint16_t port, const std::vector<std::string>& plugins) {
  return fmt::format("apiServer:\n  host: 127.0.0.1\n  port: {}\nenabledPlugin: [{}]\n", port,
                     fmt::join(plugins, ", "));
}

// What shows that a running plugin really did its privileged work.
std::string proof_line(const std::string& plugin, const CapNode& n) {
  if (plugin == "packetparser") return "attached to " + n.node.pod(0).host_if + " ";
  if (plugin == "packetforward") return "msg=counting interface=" + n.uplink;
  if (plugin == "dns") return "msg=attached";
  if (plugin == "dropreason" || plugin == "tcpretrans") return "msg=\"plugin running\" plugin=" + plugin;
  return "plugin=" + plugin;
}

std::vector<pid_t> threads_of(pid_t pid) {
  std::vector<pid_t> out;
  if (DIR* d = ::opendir(fmt::format("/proc/{}/task", pid).c_str())) {
    while (dirent* e = ::readdir(d))
      if (e->d_name[0] >= '0' && e->d_name[0] <= '9') out.push_back(std::atoi(e->d_name));
    ::closedir(d);
  }
  return out;
}

ThreadCapabilities thread_capabilities(pid_t pid, pid_t tid) {
  auto text = read_file(fmt::format("/proc/{}/task/{}/status", pid, tid));
  REQUIRE(text);
  auto caps = parse_status_capabilities(*text);
  REQUIRE(caps);
  return *caps;
}

}  // namespace

TEST_CASE("capabilities: each plugin starts with its table start set, and not without any one of it",
          "[priv][agent][e2e][capabilities]") {
  RETINA_REQUIRE_PRIVILEGED();
  CapNode n;
  for (const PluginInfo& p : builtin_plugins()) {
    const std::string name(p.name);
    if (p.caps.start.empty()) continue;  // linuxutil, infiniband: files and netlink only
    INFO("plugin " << name << ", start set " << to_string(p.caps.start));
    const std::vector<std::string> all = short_names(p.caps.start);
    std::vector<std::vector<std::string>> sets = {all};
    for (const auto& c : all) {
      std::vector<std::string> fewer;
      for (const auto& o : all)
        if (o != c) fewer.push_back(o);
      sets.push_back(fewer);
    }
    for (size_t i = 0; i < sets.size(); ++i) {
      INFO("with " << fmt::format("{}", fmt::join(sets[i], ",")) << (i == 0 ? " (the start set)" : ""));
      const uint16_t port = test::free_port(n.node.node_ns());
      test::AgentProcess agent;
      // The engine's own check is off: the kernel is the judge here.
      agent.start({.config = config_for(port, {name}),
                   .args = {"--skip-capability-check"},
                   .wrapper = test::setpriv_wrapper(sets[i]),
                   .netns = n.node.node_ns(),
                   .port = port});
      REQUIRE(agent.wait_log("msg=plugins", 30s));
      INFO(agent.log_tail(30));
      const auto states = test::plugin_states(agent.logs());
      REQUIRE(states.count(name) == 1);
      if (i == 0) {
        CHECK(states.at(name) == "running");
        CHECK(agent.wait_log(proof_line(name, n), 10s));
      } else {
        // The kernel refused: the plugin failed (EPERM, or the verifier's
        // EACCES/EINVAL, or a feature probe that could not load), or runs
        // without ever doing its work (packetforward retries its socket).
        const bool worked = states.at(name) == "running" && agent.wait_log(proof_line(name, n), 3s);
        CHECK_FALSE(worked);
      }
      CHECK(agent.stop() == 0);
    }
  }
}

TEST_CASE("capabilities: without NET_ADMIN /healthz names it for packetparser and dns while the others run",
          "[priv][agent][e2e][capabilities]") {
  RETINA_REQUIRE_PRIVILEGED();
  CapNode n;
  std::vector<std::string> caps;
  for (const auto& c : test::daemonset_capabilities())
    if (c != "NET_ADMIN") caps.push_back(c);
  const uint16_t port = test::free_port(n.node.node_ns());
  test::AgentProcess agent;
  agent.start({.config = config_for(port, {"packetparser", "dropreason", "packetforward", "linuxutil", "dns",
                                           "tcpretrans"}),
               .wrapper = test::setpriv_wrapper(caps),
               .netns = n.node.node_ns(),
               .port = port});
  REQUIRE(agent.wait_log("msg=plugins", 30s));
  INFO(agent.log_tail(40));
  const auto states = test::plugin_states(agent.logs());
  for (const char* p : {"dropreason", "packetforward", "linuxutil", "tcpretrans"}) {
    INFO(p);
    CHECK(states.at(p) == "running");
  }
  // The API server starts after the plugins line.
  REQUIRE(agent.wait_log("component=api msg=listening", 10s));
  const auto health = agent.get("/healthz");
  INFO(health.body);
  CHECK(health.status == 503);  // a failed plugin fails the health check
  for (const char* p : {"packetparser", "dns"}) {
    CHECK(states.at(p) == "failed");
    const std::string entry = fmt::format(R"({{"name":"{}","state":"failed","reason":"missing capability CAP_NET_ADMIN: {} needs)", p, p);
    CHECK(health.body.find(entry) != std::string::npos);
  }
  // The engine named it before any bpf(2) call could fail with EPERM.
  CHECK(agent.logs().find("Operation not permitted") == std::string::npos);
  CHECK(agent.wait_log("msg=counting interface=" + n.uplink, 10s));
  // What the agent keeps: packetforward's NET_RAW only.
  REQUIRE(agent.wait_log("msg=\"capabilities after start-up\"", 10s));
  const auto kept = test::process_capabilities(agent.pid());
  CHECK(to_string(kept.effective) == "CAP_NET_RAW");
  CHECK(agent.stop() == 0);
}

TEST_CASE("capabilities: after start-up every agent thread holds exactly the running plugins' run sets",
          "[priv][agent][e2e][capabilities]") {
  RETINA_REQUIRE_PRIVILEGED();
  CapNode n;
  const std::vector<std::string> plugins = {"packetparser", "dropreason", "packetforward", "linuxutil", "dns",
                                            "tcpretrans"};
  CapabilitySet expected;
  for (const auto& p : plugins) expected |= find_builtin_plugin(p)->caps.run;
  REQUIRE(to_string(expected) == "CAP_NET_ADMIN, CAP_NET_RAW");
  const uint16_t port = test::free_port(n.node.node_ns());
  test::AgentProcess agent;
  agent.start({.config = config_for(port, plugins),
               .wrapper = test::setpriv_wrapper(test::daemonset_capabilities()),
               .netns = n.node.node_ns(),
               .port = port});
  agent.wait_ready(30s);
  REQUIRE(agent.wait_log("msg=\"capabilities after start-up\"", 10s));
  INFO(agent.log_tail(40));
  const auto states = test::plugin_states(agent.logs());
  for (const auto& p : plugins) CHECK(states.at(p) == "running");
  CHECK(agent.logs().find("kept=\"CAP_NET_ADMIN, CAP_NET_RAW\"") != std::string::npos);

  const auto proc = test::process_capabilities(agent.pid());
  CHECK(proc.effective == expected);
  CHECK(proc.permitted == expected);
  CHECK(proc.bounding == expected);
  CHECK(proc.inheritable.empty());
  CHECK(proc.ambient.empty());
  const auto tids = threads_of(agent.pid());
  CHECK(tids.size() > 3);  // reader, control, watchers, HTTP: not just the main thread
  for (pid_t tid : tids) {
    INFO("thread " << tid);
    const auto t = thread_capabilities(agent.pid(), tid);
    CHECK(t.effective == expected);
    CHECK(t.permitted == expected);
    CHECK(t.bounding == expected);
  }
  // no_new_privs: nothing the agent runs can gain capabilities back.
  const std::string status = test::sh(fmt::format("cat /proc/{}/status", agent.pid()));
  CHECK(status.find("NoNewPrivs:\t1") != std::string::npos);

  // The kept NET_ADMIN does its job: a pod added now is attached, and a
  // clean exit still detaches everything.
  const auto& pod = n.node.add_pod();
  CHECK(agent.wait_log("attached to " + pod.host_if + " ", 20s));
  CHECK(agent.stop() == 0);
  for (const auto& p : n.node.pods()) {
    for (auto d : {loader::TcDirection::kIngress, loader::TcDirection::kEgress}) {
      CHECK(test::count_retina_tc_filters(p.host_ifindex, d) == 0);
      for (const auto& prog : test::tcx_programs(p.host_ifindex, d)) CHECK(prog.name.rfind("retina", 0) != 0);
    }
  }
}
