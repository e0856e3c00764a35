// Attach hygiene: a packetparser killed with SIGKILL and restarted leaves
// exactly one retina filter per hook (legacy tc replaces its own fixed
// slot), a clean stop leaves none, stale retina filters on interfaces no
// longer used are removed, TCX links die with the process, and a foreign
// tc filter on the same interfaces survives all of it.
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <thread>

#include <fmt/format.h>

#include "loader/fd.hpp"
#include "loader/tc_attach.hpp"
#include "plugins/packetparser/packetparser.hpp"
#include "plugins/services.hpp"
#include "support/netns.hpp"
#include "support/privileged.hpp"

using namespace retina;
using namespace std::chrono_literals;
using retina::loader::TcDirection;
using retina::loader::UniqueFd;

namespace {

template <class Pred>
bool wait_for(Pred pred, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(20ms);
  }
  return pred();
}

// A packetparser in a child process (as a separate agent would be). The
// child attaches, reports readiness, and stops cleanly when told to; it
// can also be killed.
class Agent {
 public:
  Agent(Config cfg, size_t expect_attachments) {
    int ready[2], cmd[2];
    REQUIRE(::pipe2(ready, O_CLOEXEC) == 0);
    REQUIRE(::pipe2(cmd, O_CLOEXEC) == 0);
    std::fflush(nullptr);  // the child must not repeat buffered output
    pid_ = ::fork();
    REQUIRE(pid_ >= 0);
    if (pid_ == 0) {
      ::close(ready[0]);
      ::close(cmd[1]);
      _exit(child(cfg, expect_attachments, ready[1], cmd[0]));
    }
    ::close(ready[1]);
    ::close(cmd[0]);
    ready_.reset(ready[0]);
    cmd_.reset(cmd[1]);
    char c = 0;
    ssize_t n = ::read(ready_.get(), &c, 1);
    if (n != 1 || c != 'R') {
      int status = 0;
      ::waitpid(pid_, &status, 0);
      pid_ = -1;
      FAIL("agent did not attach (exit status " << (WIFEXITED(status) ? WEXITSTATUS(status) : -1) << ")");
    }
  }
  ~Agent() {
    if (pid_ > 0) kill();
  }

  void kill() {
    ::kill(pid_, SIGKILL);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
  }
  // Asks for a clean stop; returns the exit code.
  int stop() {
    char c = 'S';
    (void)!::write(cmd_.get(), &c, 1);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
  }

 private:
  static int child(Config cfg, size_t expect, int ready_fd, int cmd_fd) {
    int rc = 0;
    {
      PluginServices services;
      PacketParserPlugin pp;
      PluginContext ctx;
      ctx.config = &cfg;
      if (!services.provide(PacketParserPlugin::kNeeds, ctx)) return 9;
      if (!pp.init(ctx)) return 10;
      if (!pp.start()) return 11;
      if (!wait_for([&] { return pp.attachments().size() == expect; }, 5s)) return 12;
      char c = 'R';
      if (::write(ready_fd, &c, 1) != 1) return 13;
      if (::read(cmd_fd, &c, 1) != 1) rc = 14;
      pp.stop();
    }
    return rc;
  }

  pid_t pid_ = -1;
  UniqueFd ready_, cmd_;
};

Config agent_config(const std::string& prefix, TcxMode tcx) {
  Config cfg;
  cfg.data_aggregation_level = AggregationLevel::kLow;
  cfg.enable_tcx = tcx;
  cfg.host_interfaces.clear();
  cfg.pod_interface_prefixes = {prefix};
  cfg.packet_parser_ring_buffer_size = 1 << 20;
  return cfg;
}

size_t retina_filters(int ifindex, TcDirection d) { return test::count_retina_tc_filters(ifindex, d); }

size_t retina_tcx(int ifindex, TcDirection d) {
  size_t n = 0;
  for (const auto& p : test::tcx_programs(ifindex, d))
    if (p.name.rfind("retina", 0) == 0) ++n;
  return n;
}

// Another tool's filter: a classic-BPF cls_bpf filter that never matches
// (this kernel has no matchall or tc actions).
void add_foreign_filter(const std::string& dev) {
  (void)test::sh_status("tc qdisc add dev " + dev + " clsact");
  test::sh("tc filter add dev " + dev + " ingress pref 7 protocol all bpf bytecode '1,6 0 0 0,'");
  test::sh("tc filter add dev " + dev + " egress pref 7 protocol all bpf bytecode '1,6 0 0 0,'");
}

bool foreign_filter_present(const std::string& dev) {
  return test::tc_filter_show(dev, "ingress").find("bytecode '1,6 0 0 0'") != std::string::npos &&
         test::tc_filter_show(dev, "egress").find("bytecode '1,6 0 0 0'") != std::string::npos;
}

bool has_clsact(const std::string& dev) { return test::sh("tc qdisc show dev " + dev).find("clsact") != std::string::npos; }

}  // namespace

TEST_CASE("legacy tc: a killed agent's filter is replaced, never duplicated", "[priv][loader][attach]") {
  RETINA_REQUIRE_PRIVILEGED();
  test::Node node({.pods = 2, .isolated = true});
  const auto& p0 = node.pod(0);
  const auto& p1 = node.pod(1);
  add_foreign_filter(p0.host_if);
  auto cfg = agent_config(node.host_prefix(), TcxMode::kOff);

  {
    Agent a(cfg, 2);
    for (const auto* p : {&p0, &p1})
      for (TcDirection d : {TcDirection::kIngress, TcDirection::kEgress}) CHECK(retina_filters(p->host_ifindex, d) == 1);
    a.kill();
  }
  // The killed agent's filters stay behind.
  for (const auto* p : {&p0, &p1})
    for (TcDirection d : {TcDirection::kIngress, TcDirection::kEgress}) CHECK(retina_filters(p->host_ifindex, d) == 1);
  CHECK(foreign_filter_present(p0.host_if));

  {
    Agent b(cfg, 2);
    for (const auto* p : {&p0, &p1}) {
      for (TcDirection d : {TcDirection::kIngress, TcDirection::kEgress}) CHECK(retina_filters(p->host_ifindex, d) == 1);
      CHECK(test::tcx_programs(p->host_ifindex, TcDirection::kIngress).empty());
    }
    CHECK(foreign_filter_present(p0.host_if));
    CHECK(b.stop() == 0);
  }
  for (const auto* p : {&p0, &p1}) {
    for (TcDirection d : {TcDirection::kIngress, TcDirection::kEgress}) CHECK(retina_filters(p->host_ifindex, d) == 0);
    CHECK(test::tc_filter_show(p->host_if, "ingress").find("retina") == std::string::npos);
    CHECK(test::tc_filter_show(p->host_if, "egress").find("retina") == std::string::npos);
  }
  CHECK(foreign_filter_present(p0.host_if));
  CHECK(has_clsact(p0.host_if));  // retina did not create it, and it is in use
}

TEST_CASE("legacy tc: clsact created by retina goes away on a clean stop", "[priv][loader][attach]") {
  RETINA_REQUIRE_PRIVILEGED();
  test::Node node({.pods = 1, .isolated = true});
  const auto& p0 = node.pod(0);
  CHECK_FALSE(has_clsact(p0.host_if));
  auto cfg = agent_config(node.host_prefix(), TcxMode::kOff);
  {
    Agent a(cfg, 1);
    CHECK(has_clsact(p0.host_if));
    CHECK(a.stop() == 0);
  }
  CHECK_FALSE(has_clsact(p0.host_if));
}

TEST_CASE("legacy tc: stale retina filters are removed where the agent no longer attaches", "[priv][loader][attach]") {
  RETINA_REQUIRE_PRIVILEGED();
  test::Node node({.pods = 2, .isolated = true});
  const auto& p0 = node.pod(0);
  const auto& p1 = node.pod(1);
  add_foreign_filter(p1.host_if);
  {
    Agent a(agent_config(node.host_prefix(), TcxMode::kOff), 2);
    a.kill();
  }
  CHECK(retina_filters(p1.host_ifindex, TcDirection::kIngress) == 1);
  {
    // Only pod 0 is a pod veth now.
    Agent b(agent_config(p0.host_if, TcxMode::kOff), 1);
    CHECK(retina_filters(p0.host_ifindex, TcDirection::kIngress) == 1);
    CHECK(retina_filters(p0.host_ifindex, TcDirection::kEgress) == 1);
    CHECK(retina_filters(p1.host_ifindex, TcDirection::kIngress) == 0);
    CHECK(retina_filters(p1.host_ifindex, TcDirection::kEgress) == 0);
    CHECK(foreign_filter_present(p1.host_if));
    CHECK(b.stop() == 0);
  }
  CHECK(retina_filters(p0.host_ifindex, TcDirection::kIngress) == 0);
  CHECK(foreign_filter_present(p1.host_if));
}

TEST_CASE("tcx: links die with the agent and leave others' filters alone", "[priv][loader][attach][tcx]") {
  RETINA_REQUIRE_PRIVILEGED();
  test::Node node({.pods = 2, .isolated = true});
  const auto& p0 = node.pod(0);
  const auto& p1 = node.pod(1);
  add_foreign_filter(p0.host_if);
  auto cfg = agent_config(node.host_prefix(), TcxMode::kAuto);

  {
    Agent a(cfg, 2);
    for (const auto* p : {&p0, &p1}) {
      for (TcDirection d : {TcDirection::kIngress, TcDirection::kEgress}) {
        CHECK(retina_tcx(p->host_ifindex, d) == 1);
        CHECK(retina_filters(p->host_ifindex, d) == 0);
      }
    }
    a.kill();
  }
  for (const auto* p : {&p0, &p1})
    for (TcDirection d : {TcDirection::kIngress, TcDirection::kEgress})
      CHECK(wait_for([&] { return retina_tcx(p->host_ifindex, d) == 0; }, 2s));
  CHECK(foreign_filter_present(p0.host_if));

  {
    Agent b(cfg, 2);
    for (const auto* p : {&p0, &p1})
      for (TcDirection d : {TcDirection::kIngress, TcDirection::kEgress}) CHECK(retina_tcx(p->host_ifindex, d) == 1);
    CHECK(b.stop() == 0);
  }
  for (const auto* p : {&p0, &p1})
    for (TcDirection d : {TcDirection::kIngress, TcDirection::kEgress}) CHECK(retina_tcx(p->host_ifindex, d) == 0);
  CHECK(foreign_filter_present(p0.host_if));
  CHECK_FALSE(has_clsact(p1.host_if));  // TCX needs no qdisc
}

TEST_CASE("tcx: a legacy filter left by an earlier agent is removed", "[priv][loader][attach][tcx]") {
  RETINA_REQUIRE_PRIVILEGED();
  test::Node node({.pods = 1, .isolated = true});
  const auto& p0 = node.pod(0);
  {
    Agent a(agent_config(node.host_prefix(), TcxMode::kOff), 1);
    a.kill();
  }
  CHECK(retina_filters(p0.host_ifindex, TcDirection::kIngress) == 1);
  {
    Agent b(agent_config(node.host_prefix(), TcxMode::kAuto), 1);
    for (TcDirection d : {TcDirection::kIngress, TcDirection::kEgress}) {
      CHECK(retina_filters(p0.host_ifindex, d) == 0);
      CHECK(retina_tcx(p0.host_ifindex, d) == 1);
    }
    CHECK(b.stop() == 0);
  }
  CHECK(retina_tcx(p0.host_ifindex, TcDirection::kIngress) == 0);
}

TEST_CASE("legacy tc: a foreign filter in retina's slot is left alone and the attach retried", "[priv][loader][attach]") {
  RETINA_REQUIRE_PRIVILEGED();
  test::Node node({.pods = 1, .isolated = true});
  const auto& p0 = node.pod(0);
  const std::string slot = fmt::format("pref {} handle {:#x}", loader::kPacketParserTcSlot.priority,
                                       loader::kPacketParserTcSlot.handle);
  test::sh("tc qdisc add dev " + p0.host_if + " clsact");
  test::sh("tc filter add dev " + p0.host_if + " ingress " + slot + " protocol all bpf bytecode '1,6 0 0 0,'");

  auto cfg = agent_config(node.host_prefix(), TcxMode::kOff);
  PluginServices services;
  PacketParserPlugin pp;
  PluginContext ctx;
  ctx.config = &cfg;
  REQUIRE(services.provide(PacketParserPlugin::kNeeds, ctx));
  REQUIRE(pp.init(ctx));
  REQUIRE(pp.start());
  CHECK(pp.attachments().empty());
  CHECK(pp.degraded_reason().find("foreign") != std::string::npos);
  CHECK_FALSE(pp.reconcile().has_value());
  CHECK(test::tc_filter_show(p0.host_if, "ingress").find("bytecode '1,6 0 0 0'") != std::string::npos);
  CHECK(retina_filters(p0.host_ifindex, TcDirection::kEgress) == 0);  // nothing half-attached

  test::sh("tc filter del dev " + p0.host_if + " ingress " + slot + " protocol all bpf");
  CHECK(pp.reconcile().has_value());
  CHECK(pp.attachments().size() == 1);
  CHECK(pp.degraded_reason().empty());
  CHECK(retina_filters(p0.host_ifindex, TcDirection::kIngress) == 1);
  pp.stop();
  CHECK(retina_filters(p0.host_ifindex, TcDirection::kIngress) == 0);
  CHECK(has_clsact(p0.host_if));  // not retina's to remove
}
