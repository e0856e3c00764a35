// dns attached to a real cgroup, through the engine: dnsmasq in one pod
// namespace answers dig in another (A, NXDOMAIN, AAAA over IPv6, A over
// TCP), dig in the node namespace, and this process's own sockets (UDP,
// and two queries in one TCP segment). Every message crosses two sockets
// and two veths; each must be counted exactly once in the metrics and show
// up once as a flow with its query, type, rcode and answers.
//
// Attached to a cgroup of this test's own (dnsmasq and dig run in it, this
// process does not), the counts are exact: nothing else on the machine is
// observed, and this process's queries show the ingress-only rule (reported
// where dnsmasq receives them). Attached to the cgroup v2 root, as in
// production, the test's own flows are still exact; the metrics may also
// count other DNS traffic of the machine.
#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "loader/fd.hpp"
#include "plugins/dns/dns.hpp"
#include "retina/engine.hpp"
#include "retina/metrics/names.hpp"
#include "retina/metrics/registry.hpp"
#include "support/dnsmasq.hpp"
#include "support/netns.hpp"
#include "support/privileged.hpp"
#include "support/prom_text.hpp"
#include "unit/test_dns_builder.hpp"

using namespace retina;
using namespace std::chrono_literals;
namespace names = retina::metrics::names;
namespace fs = std::filesystem;

namespace {

// A cgroup v2 directory of this test's own. Destruction kills what is
// still in it (only processes this test started) and removes it.
class TestCgroup {
 public:
  explicit TestCgroup(const std::string& root) : path_(fmt::format("{}/retina-test-{}", root, test::unique_tag())) {
    fs::create_directory(path_);
  }
  ~TestCgroup() {
    for (int round = 0; round < 100; ++round) {
      auto pids = procs();
      if (pids.empty()) break;
      for (int pid : pids) ::kill(pid, SIGKILL);
      std::this_thread::sleep_for(20ms);
    }
    std::error_code ec;
    fs::remove(path_, ec);
  }
  const std::string& path() const { return path_; }
  std::vector<int> procs() const {
    std::vector<int> out;
    std::ifstream f(path_ + "/cgroup.procs");
    int pid;
    while (f >> pid) out.push_back(pid);
    return out;
  }
  // `cmd`, moved into this cgroup before it starts (so are its sockets).
  std::string wrap(const std::string& cmd) const {
    return fmt::format("sh -c 'echo $$ > {}/cgroup.procs && exec {}'", path_, cmd);
  }

 private:
  std::string path_;
};

using Bytes = std::vector<uint8_t>;

Bytes query_msg(uint16_t id, const std::string& name) {
  testing::DnsMsg m;
  m.header(id, testing::kFlagsQuery, 1, 0).question(name, 1);
  return m.b;
}

sockaddr_in addr4(const std::string& ip, uint16_t port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  inet_pton(AF_INET, ip.c_str(), &a.sin_addr);
  return a;
}

bool wait_readable(int fd, int ms) {
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, ms) > 0;
}

// One query over UDP from this process; returns the client port.
uint16_t udp_query(const std::string& server, const Bytes& msg) {
  loader::UniqueFd s(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  REQUIRE(s);
  auto a = addr4(server, 53);
  REQUIRE(::connect(s.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  REQUIRE(::send(s.get(), msg.data(), msg.size(), 0) == static_cast<ssize_t>(msg.size()));
  REQUIRE(wait_readable(s.get(), 5000));
  uint8_t buf[1500];
  REQUIRE(::recv(s.get(), buf, sizeof buf, 0) > 12);
  sockaddr_in local{};
  socklen_t len = sizeof local;
  ::getsockname(s.get(), reinterpret_cast<sockaddr*>(&local), &len);
  return ntohs(local.sin_port);
}

// Several queries in one write over TCP; waits for every answer. Returns
// the client port.
uint16_t tcp_queries(const std::string& server, const std::vector<Bytes>& msgs) {
  loader::UniqueFd s(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  REQUIRE(s);
  auto a = addr4(server, 53);
  REQUIRE(::connect(s.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  Bytes out;
  for (const auto& m : msgs) {
    out.push_back(static_cast<uint8_t>(m.size() >> 8));
    out.push_back(static_cast<uint8_t>(m.size()));
    out.insert(out.end(), m.begin(), m.end());
  }
  REQUIRE(::send(s.get(), out.data(), out.size(), 0) == static_cast<ssize_t>(out.size()));
  Bytes in;
  size_t answers = 0, pos = 0;
  while (answers < msgs.size()) {
    REQUIRE(wait_readable(s.get(), 5000));
    uint8_t buf[4096];
    ssize_t n = ::recv(s.get(), buf, sizeof buf, 0);
    REQUIRE(n > 0);
    in.insert(in.end(), buf, buf + n);
    while (in.size() - pos >= 2) {
      size_t len = (size_t{in[pos]} << 8) | in[pos + 1];
      if (in.size() - pos - 2 < len) break;
      pos += 2 + len;
      ++answers;
    }
  }
  sockaddr_in local{};
  socklen_t len = sizeof local;
  ::getsockname(s.get(), reinterpret_cast<sockaddr*>(&local), &len);
  return ntohs(local.sin_port);
}

struct Expect {
  std::string name;
  uint16_t qtype = 1;
  L4Protocol proto = L4Protocol::kUDP;
  std::string client, server;
  uint16_t rcode = 0;
  std::vector<std::string> ips;
  bool request_seen_at_ingress = false;  // sent by a socket outside the observed cgroup
};

double metric(Engine& e, std::string_view name, const std::map<std::string, std::string>& labels = {}) {
  auto p = test::parse_prom_text(e.metrics().expose());
  REQUIRE(p.error.empty());
  return p.value(name, labels).value_or(-1);
}

template <class Pred>
bool wait_for(Pred pred, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(20ms);
  }
  return pred();
}

}  // namespace

TEST_CASE("dns counts every message once across pods, node and own sockets", "[priv][dns][traffic]") {
  RETINA_REQUIRE_PRIVILEGED();
  const bool own_cgroup = GENERATE(true, false);
  INFO((own_cgroup ? "attached to the test's cgroup" : "attached to the cgroup v2 root"));

  auto root = find_cgroup2_root();
  REQUIRE(root);
  test::Node node({.pods = 2, .isolated = true});
  const test::Pod& server = node.pod(0);
  const test::Pod& client = node.pod(1);
  // The node namespace gets an address on the bridge: "host" traffic.
  const std::string node_ip = "10.200.0.1";
  test::sh(fmt::format("ip addr add {}/16 dev {}", node_ip, node.bridge()));

  TestCgroup cg(*root);
  test::Dnsmasq dnsmasq(server, [&](const std::string& cmd) { return cg.wrap(cmd); });

  Config cfg;
  cfg.enabled_plugins.clear();
  cfg.metrics_interval = 1s;
  EngineOptions opts;
  DnsOptions dopts;
  dopts.cgroup_path = own_cgroup ? cg.path() : "";
  opts.extra_plugins.push_back(std::make_unique<DnsPlugin>(dopts));
  auto engine = Engine::create(cfg, std::move(opts));
  REQUIRE(engine);
  Engine& e = **engine;
  REQUIRE(e.start());
  auto status = e.plugin_status();
  REQUIRE(status.size() == 1);
  INFO("dns plugin: " << status[0].reason);
  REQUIRE(status[0].state == PluginState::kRunning);
  auto sub = e.pipeline().subscribe("dns-test", 1 << 16, FlowFilter{.origins = {FlowSource::kDns}});
  const double req0 = metric(e, names::kDnsRequestCount);
  const double resp0 = metric(e, names::kDnsResponseCount);

  const std::string tag = test::unique_tag();
  std::vector<Expect> want;
  auto dig = [&](const std::string& ns, const std::string& args) {
    const std::string cmd = ns.empty() ? "dig " + args : fmt::format("ip netns exec {} dig {}", ns, args);
    std::string out = test::sh(cg.wrap(cmd));
    INFO(out);
    REQUIRE(out.find("status:") != std::string::npos);
  };
  // Pod to pod: A, NXDOMAIN, AAAA over IPv6, A over TCP.
  want.push_back({.name = fmt::format("a-{}.exists.test.", tag), .client = client.ipv4, .server = server.ipv4,
                  .ips = {"10.9.9.9"}});
  dig(client.ns, fmt::format("+tries=1 +time=5 @{} a-{}.exists.test A", server.ipv4, tag));
  want.push_back({.name = fmt::format("x-{}.missing.test.", tag), .client = client.ipv4, .server = server.ipv4,
                  .rcode = 3});
  dig(client.ns, fmt::format("+tries=1 +time=5 @{} x-{}.missing.test A", server.ipv4, tag));
  want.push_back({.name = fmt::format("v-{}.v6.test.", tag), .qtype = 28, .client = client.ipv6,
                  .server = server.ipv6, .ips = {"fd00::99"}});
  dig(client.ns, fmt::format("-6 +tries=1 +time=5 @{} v-{}.v6.test AAAA", server.ipv6, tag));
  want.push_back({.name = fmt::format("t-{}.exists.test.", tag), .proto = L4Protocol::kTCP, .client = client.ipv4,
                  .server = server.ipv4, .ips = {"10.9.9.9"}});
  dig(client.ns, fmt::format("+tcp +tries=1 +time=5 @{} t-{}.exists.test A", server.ipv4, tag));
  // Node namespace to pod.
  want.push_back({.name = fmt::format("h-{}.exists.test.", tag), .client = node_ip, .server = server.ipv4,
                  .ips = {"10.9.9.9"}});
  dig("", fmt::format("+tries=1 +time=5 @{} h-{}.exists.test A", server.ipv4, tag));
  // This process's own sockets (outside the test cgroup), node namespace.
  want.push_back({.name = fmt::format("s-{}.exists.test.", tag), .client = node_ip, .server = server.ipv4,
                  .ips = {"10.9.9.9"}, .request_seen_at_ingress = own_cgroup});
  const uint16_t udp_port = udp_query(server.ipv4, query_msg(0x5151, want.back().name.substr(0, want.back().name.size() - 1)));
  want.push_back({.name = fmt::format("p-{}.exists.test.", tag), .proto = L4Protocol::kTCP, .client = node_ip,
                  .server = server.ipv4, .ips = {"10.9.9.9"}, .request_seen_at_ingress = own_cgroup});
  want.push_back({.name = fmt::format("q-{}.missing.test.", tag), .proto = L4Protocol::kTCP, .client = node_ip,
                  .server = server.ipv4, .rcode = 3, .request_seen_at_ingress = own_cgroup});
  const uint16_t tcp_port = tcp_queries(server.ipv4, {query_msg(0x6161, fmt::format("p-{}.exists.test", tag)),
                                                      query_msg(0x6262, fmt::format("q-{}.missing.test", tag))});

  // Collect the flows of this test's names; then wait a little longer so
  // that an extra copy would be seen too.
  std::map<std::string, std::vector<OwnedFlow>> flows;
  size_t ours = 0, others = 0;
  auto collect = [&](std::chrono::milliseconds wait) {
    std::vector<OwnedFlow> batch;
    sub->pop_batch(batch, 1024, wait);
    for (auto& of : batch) {
      const Flow& f = of.flow();
      if (f.dns && f.dns->query.find(tag) != std::string::npos) {
        flows[f.dns->query].push_back(of);
        ++ours;
      } else {
        ++others;
      }
    }
  };
  const size_t expected_flows = want.size() * 2;
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (ours < expected_flows && std::chrono::steady_clock::now() < deadline) collect(200ms);
  for (int i = 0; i < 5; ++i) collect(100ms);
  INFO("dnsmasq log:\n" << dnsmasq.log());
  CHECK(ours == expected_flows);

  for (const Expect& w : want) {
    INFO("query " << w.name);
    const auto& fl = flows[w.name];
    REQUIRE(fl.size() == 2);
    const Flow* req = nullptr;
    const Flow* resp = nullptr;
    for (const auto& of : fl) (of.flow().l7_type == L7Type::REQUEST ? req : resp) = &of.flow();
    REQUIRE(req);
    REQUIRE(resp);
    for (const Flow* f : {req, resp}) {
      CHECK(f->origin == FlowSource::kDns);
      CHECK(f->verdict == Verdict::DNS);
      CHECK(f->proto == w.proto);
      CHECK(f->event_type == 129);
      REQUIRE(f->dns);
      CHECK(f->dns->qtype == w.qtype);
    }
    CHECK(req->src == *IpAddr::parse(w.client));
    CHECK(req->dst == *IpAddr::parse(w.server));
    CHECK(req->dst_port == 53);
    CHECK_FALSE(req->is_reply);
    CHECK_FALSE(req->dns->is_response);
    CHECK(resp->src == *IpAddr::parse(w.server));
    CHECK(resp->dst == *IpAddr::parse(w.client));
    CHECK(resp->src_port == 53);
    CHECK(resp->dst_port == req->src_port);
    CHECK(resp->is_reply);
    CHECK(resp->l7_type == L7Type::RESPONSE);
    CHECK(resp->dns->rcode == w.rcode);
    CHECK(resp->dns->answer_count == w.ips.size());
    std::vector<std::string> ips;
    for (const auto& ip : resp->dns->ips) ips.push_back(ip.to_string());
    CHECK(ips == w.ips);
    // Where each was reported: at the sending socket, or at the receiving
    // one when the sender is not observed.
    CHECK(req->observation_point ==
          (w.request_seen_at_ingress ? TraceObservationPoint::FROM_NETWORK : TraceObservationPoint::TO_NETWORK));
    CHECK(req->direction == (w.request_seen_at_ingress ? TrafficDirection::INGRESS : TrafficDirection::EGRESS));
    CHECK(resp->observation_point == TraceObservationPoint::TO_NETWORK);
  }
  CHECK(flows[want[5].name].front().flow().proto == L4Protocol::kUDP);
  for (const auto& of : flows[want[5].name]) {
    const Flow& f = of.flow();
    CHECK((f.is_reply ? f.dst_port : f.src_port) == udp_port);
  }
  for (const auto& of : flows[want[6].name]) {
    const Flow& f = of.flow();
    CHECK((f.is_reply ? f.dst_port : f.src_port) == tcp_port);
  }

  // Metrics: the basic aggregator publishes at the end of each batch.
  const double n = static_cast<double>(want.size());
  if (own_cgroup) {
    CHECK(others == 0);
    CHECK(wait_for([&] { return metric(e, names::kDnsRequestCount) - req0 == n; }, 5s));
    CHECK(metric(e, names::kDnsRequestCount) - req0 == n);
    CHECK(metric(e, names::kDnsResponseCount) - resp0 == n);
    // The copies at the second socket: dig's five queries and their
    // answers; this process's sockets are not observed.
    CHECK(metric(e, "controlplane_networkobservability_bpf_events_total", {{"plugin", "dns"}, {"stat", "duplicate"}}) ==
          10);
  } else {
    CHECK(wait_for([&] { return metric(e, names::kDnsRequestCount) - req0 >= n; }, 5s));
    CHECK(metric(e, names::kDnsResponseCount) - resp0 >= n);
    CHECK(metric(e, "controlplane_networkobservability_bpf_events_total", {{"plugin", "dns"}, {"stat", "duplicate"}}) >=
          16);
  }
  CHECK(metric(e, names::kLostEvents, {{"type", "kernel"}, {"reason", "dns"}}) == 0);

  e.stop();
  // Nothing left attached: the links went with their fds.
  std::string show = test::sh(fmt::format("bpftool cgroup show {}", own_cgroup ? cg.path() : *root));
  CHECK(show.find("retina_dns") == std::string::npos);
}
