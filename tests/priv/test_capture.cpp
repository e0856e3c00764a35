// Packet capture on a network-namespace node: pods chosen by label from an
// endpoints file, known UDP and TCP traffic between the pods, and the
// result read back as a user would (tar, tshark). Counts are exact: per
// 5-tuple against the traffic sent, per interface against the veth
// counters over the same period.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <thread>

#include <fmt/format.h>

#include "cache/endpoints_file.hpp"
#include "capture/bundle.hpp"
#include "retina/capture.hpp"
#include "retina/ip_cache.hpp"
#include "capture/crd.hpp"
#include "support/agent_process.hpp"
#include "support/fake_apiserver.hpp"
#include "support/fake_s3.hpp"
#include "support/http_client.hpp"
#include "support/netns.hpp"
#include "support/pcap_read.hpp"
#include "support/privileged.hpp"

using namespace retina;
using namespace std::chrono_literals;

namespace {

constexpr size_t kUdpHeaders = 14 + 20 + 8;  // Ethernet + IPv4 + UDP

std::string node_name() { return fmt::format("capture-node-{}", ::getpid()); }

// Pods 0 and 1 carry capture=yes, the others capture=no.
std::string endpoints_yaml(const test::Node& node) {
  std::string y = "endpoints:\n";
  for (size_t i = 0; i < node.pods().size(); ++i) {
    y += fmt::format(
        "  - kind: pod\n"
        "    namespace: cap-{}\n"
        "    name: pod-{}\n"
        "    ips: [{}, \"{}\"]\n"
        "    labels: {{app: app{}, capture: \"{}\"}}\n",
        ::getpid(), i, node.pod(i).ipv4, node.pod(i).ipv6, i, i < 2 ? "yes" : "no");
  }
  return y;
}

struct Fixture {
  test::Node node{{.pods = 4, .isolated = true}};
  test::TempDir root;
  std::shared_ptr<IpCache> cache = std::make_shared<IpCache>();
  std::unique_ptr<capture::Manager> manager;

  Fixture() {
    auto eps = parse_endpoints(endpoints_yaml(node));
    REQUIRE(eps);
    for (auto& ep : *eps) cache->upsert(ep, EndpointSource::kFile);
    capture::ManagerOptions o;
    o.node_name = node_name();
    o.output_root = root.path();
    o.cache = cache;
    o.version = "test";
    o.limits.min_free_bytes = 1 << 20;
    auto m = capture::Manager::create(std::move(o));
    REQUIRE(m);
    manager = std::move(*m);
    // New pod addresses send an MLD report and repeat it up to 1 s later
    // (mldv2_unsolicited_report_interval): a shorter quiet window can end
    // between the two and let the repeat into a capture.
    node.wait_quiet(1500ms);
  }

  capture::CaptureStatus start(const std::string& name, const std::string& configuration,
                               const std::string& output = "") {
    const std::string body = fmt::format(R"({{"name":"{}","spec":{{"captureConfiguration":{{{}}}{}}}}})", name,
                                         configuration, output.empty() ? "" : ",\"outputConfiguration\":{" + output + "}");
    auto spec = capture::parse_request_json(body);
    INFO(body);
    REQUIRE(spec);
    auto st = manager->start(std::move(*spec));
    INFO((st ? std::string() : st.error().message));
    REQUIRE(st);
    return *st;
  }

  capture::CaptureStatus finish(const std::string& name, bool cancel) {
    if (cancel) REQUIRE(manager->cancel(name));
    auto st = manager->wait(name, 30s);
    REQUIRE(st);
    INFO(st->message);
    REQUIRE(st->finished());
    return *st;
  }
};

// Unpacked bundle: dir/<member>.
struct Unpacked {
  test::TempDir dir;
  std::vector<std::string> members;
  std::string path(const std::string& m) const { return dir.path() + "/" + m; }
};

std::unique_ptr<Unpacked> unpack(const capture::CaptureStatus& st) {
  auto u = std::make_unique<Unpacked>();
  REQUIRE_FALSE(st.bundle_path.empty());
  u->members = test::untar(st.bundle_path, u->dir.path());
  return u;
}

const capture::InterfaceStats& iface(const capture::CaptureStatus& st, const std::string& name) {
  for (const auto& i : st.interfaces) {
    if (i.name == name) return i;
  }
  FAIL("no interface " << name << " in the capture");
  throw std::logic_error("unreachable");
}

std::string udp_key(const std::map<std::string, test::FlowTally>& t, const std::string& src, const std::string& dst,
                    uint16_t dport) {
  const std::string prefix = fmt::format("UDP {}:", src);
  const std::string suffix = fmt::format(" > {}:{}", dst, dport);
  for (const auto& [k, _] : t) {
    if (k.starts_with(prefix) && k.ends_with(suffix)) return k;
  }
  return {};
}

}  // namespace

TEST_CASE("capture: pods chosen by label, exact packets and bytes per 5-tuple, bundle complete",
          "[capture][privileged]") {
  RETINA_REQUIRE_PRIVILEGED();
  Fixture f;
  const auto& p0 = f.node.pod(0);
  const auto& p1 = f.node.pod(1);
  const auto& p2 = f.node.pod(2);
  const auto& p3 = f.node.pod(3);
  auto started = f.start("by-label", R"("captureTarget":{"podSelector":{"matchLabels":{"capture":"yes"}}},"captureOption":{"duration":"60s"})");
  REQUIRE(started.state == capture::State::kRunning);

  const auto c0 = test::read_counters(p0.host_ifindex);
  const auto c1 = test::read_counters(p1.host_ifindex);
  REQUIRE(test::udp_send(p0, p1, false, 5001, 40, 100) == 40);
  REQUIRE(test::udp_send(p1, p0, false, 5002, 25, 300) == 25);
  REQUIRE(test::udp_send(p2, p3, false, 5003, 30, 100) == 30);  // not selected
  const auto tcp = test::tcp_send(p0, p1, false, 5004, 200000);
  REQUIRE(tcp.received == 200000);
  f.node.wait_quiet(700ms);
  const auto d0 = test::read_counters(p0.host_ifindex);
  const auto d1 = test::read_counters(p1.host_ifindex);

  const auto st = f.finish("by-label", true);
  CHECK(st.state == capture::State::kCancelled);
  CHECK(st.stop_reason == "cancelled");
  REQUIRE(st.interfaces.size() == 2);
  auto u = unpack(st);

  // Every file the bundle lists: packet files, metadata, log, node state.
  std::vector<std::string> expected = {p0.host_if + ".pcap", p1.host_if + ".pcap", "metadata.json", "capture.log",
                                       "agent-config.yaml"};
  for (const auto& s : capture::node_state_sources()) expected.push_back(s.file);
  std::sort(expected.begin(), expected.end());
  CHECK(u->members == expected);
  const std::string meta = test::sh("cat " + u->path("metadata.json"));
  CHECK(meta.find("\"podSelector\"") != std::string::npos);
  CHECK(meta.find(fmt::format("\"name\":\"pod-0\"")) != std::string::npos);
  CHECK(test::sh("cat " + u->path("ip-resources.txt")).find("### ip route show table all") != std::string::npos);

  for (const auto* pod : {&p0, &p1}) {
    INFO("interface " << pod->host_if);
    const auto t = test::tshark_tally(u->path(pod->host_if + ".pcap"));
    CHECK_FALSE(t.contains("other"));
    // UDP: exactly what was sent, in both files.
    const auto k1 = udp_key(t, p0.ipv4, p1.ipv4, 5001);
    const auto k2 = udp_key(t, p1.ipv4, p0.ipv4, 5002);
    REQUIRE_FALSE(k1.empty());
    REQUIRE_FALSE(k2.empty());
    CHECK(t.at(k1).packets == 40);
    CHECK(t.at(k1).bytes == 40 * (100 + kUdpHeaders));
    CHECK(t.at(k2).packets == 25);
    CHECK(t.at(k2).bytes == 25 * (300 + kUdpHeaders));
    // Nothing between the pods that were not selected.
    CHECK(udp_key(t, p2.ipv4, p3.ipv4, 5003).empty());
    // TCP: the payload sent, one 5-tuple each way.
    uint64_t tcp_payload = 0, all_packets = 0, all_bytes = 0;
    size_t tcp_tuples = 0;
    for (const auto& [k, v] : t) {
      all_packets += v.packets;
      all_bytes += v.bytes;
      if (k.starts_with("TCP " + p0.ipv4 + ":") && k.ends_with(fmt::format(" > {}:5004", p1.ipv4))) {
        tcp_payload += v.payload;
        ++tcp_tuples;
      }
      if (k.starts_with("TCP " + p1.ipv4 + ":5004 >")) ++tcp_tuples;
    }
    CHECK(tcp_tuples == 2);
    // Every byte sent, plus what TCP sent again: on a loaded machine an ACK
    // late past the RTO or a tail-loss probe resends segments, and the
    // capture rightly records them too.
    uint64_t resent = 0;
    const std::string lens = test::sh(fmt::format(
        "tshark -r {} -Y 'tcp.dstport == 5004 && (tcp.analysis.retransmission || tcp.analysis.fast_retransmission || "
        "tcp.analysis.spurious_retransmission)' -T fields -e tcp.len 2>/dev/null",
        u->path(pod->host_if + ".pcap")));
    for (size_t at = 0; at < lens.size();) {
      size_t end = lens.find('\n', at);
      if (end == std::string::npos) end = lens.size();
      const std::string line = lens.substr(at, end - at);
      if (!line.empty() && std::isdigit(static_cast<unsigned char>(line.front()))) resent += std::stoull(line);
      at = end + 1;
    }
    CHECK(tcp_payload - resent == 200000);
    // Every packet that crossed the veth over the same period, no more.
    const auto& before = pod == &p0 ? c0 : c1;
    const auto& after = pod == &p0 ? d0 : d1;
    CHECK(all_packets == (after.rx_packets - before.rx_packets) + (after.tx_packets - before.tx_packets));
    CHECK(all_bytes == (after.rx_bytes - before.rx_bytes) + (after.tx_bytes - before.tx_bytes));
    const auto& s = iface(st, pod->host_if);
    CHECK(s.packets == all_packets);
    CHECK(s.bytes == all_bytes);
    CHECK(s.kernel_dropped == 0);
  }
}

TEST_CASE("capture: a filter narrows the capture exactly", "[capture][privileged]") {
  RETINA_REQUIRE_PRIVILEGED();
  Fixture f;
  const auto& p0 = f.node.pod(0);
  const auto& p1 = f.node.pod(1);
  // The include shortcut and the tcpdump filter together: UDP to p1:5001 only.
  f.start("narrow", fmt::format(R"("captureTarget":{{"podSelector":{{"matchLabels":{{"app":"app0"}}}}}},"filters":{{"include":["{}:5001"]}},"tcpdumpFilter":"udp","captureOption":{{"duration":"60s"}})", p1.ipv4));
  REQUIRE(test::udp_send(p0, p1, false, 5001, 33, 64) == 33);
  REQUIRE(test::udp_send(p0, p1, false, 5002, 20, 64) == 20);
  REQUIRE(test::tcp_send(p0, p1, false, 5001, 10000).received == 10000);
  f.node.wait_quiet(700ms);
  const auto st = f.finish("narrow", true);
  REQUIRE(st.interfaces.size() == 1);
  auto u = unpack(st);
  const auto t = test::tshark_tally(u->path(p0.host_if + ".pcap"));
  REQUIRE(t.size() == 1);
  const auto k = udp_key(t, p0.ipv4, p1.ipv4, 5001);
  REQUIRE_FALSE(k.empty());
  CHECK(t.at(k).packets == 33);
  CHECK(t.at(k).bytes == 33 * (64 + kUdpHeaders));
  CHECK(st.interfaces[0].packets == 33);
}

TEST_CASE("capture: duration, size and packet count limits stop it", "[capture][privileged]") {
  RETINA_REQUIRE_PRIVILEGED();
  Fixture f;
  const auto& p0 = f.node.pod(0);
  const auto& p1 = f.node.pod(1);
  const std::string target = R"("captureTarget":{"podSelector":{"matchLabels":{"app":"app0"}}})";

  SECTION("packet count") {
    f.start("count", target + R"(,"captureOption":{"duration":"60s","maxPackets":10})");
    REQUIRE(test::udp_send(p0, p1, false, 5001, 50, 100) == 50);
    const auto st = f.finish("count", false);  // stops by itself
    CHECK(st.state == capture::State::kCompleted);
    CHECK(st.stop_reason == "packet count");
    auto u = unpack(st);
    const auto t = test::tshark_tally(u->path(p0.host_if + ".pcap"));
    REQUIRE(t.size() == 1);
    CHECK(t.begin()->second.packets == 10);
  }
  SECTION("size") {
    // The file header and exactly 12 records of a 142-byte frame.
    const uint64_t limit = 24 + 12 * (16 + 100 + kUdpHeaders);
    f.start("size", target + fmt::format(R"(,"captureOption":{{"duration":"60s","maxCaptureBytes":{}}})", limit + 50));
    REQUIRE(test::udp_send(p0, p1, false, 5001, 50, 100) == 50);
    const auto st = f.finish("size", false);
    CHECK(st.stop_reason == "max size");
    auto u = unpack(st);
    const auto file = u->path(p0.host_if + ".pcap");
    CHECK(std::filesystem::file_size(file) == limit);
    const auto t = test::tshark_tally(file);
    REQUIRE(t.size() == 1);
    CHECK(t.begin()->second.packets == 12);
  }
  SECTION("duration") {
    const auto t0 = std::chrono::steady_clock::now();
    f.start("short", target + R"(,"captureOption":{"duration":"1s"})");
    auto st = f.manager->wait("short", 20s);
    REQUIRE(st);
    const auto took = std::chrono::steady_clock::now() - t0;
    CHECK(st->state == capture::State::kCompleted);
    CHECK(st->stop_reason == "duration");
    CHECK(took >= 1s);
    CHECK(took < 10s);
    auto u = unpack(*st);
    CHECK(test::tshark_tally(u->path(p0.host_if + ".pcap")).empty());
  }
}

TEST_CASE("capture: fileCount rotates each interface through a ring of files keeping the newest",
          "[capture][privileged]") {
  RETINA_REQUIRE_PRIVILEGED();
  Fixture f;
  const auto& p0 = f.node.pod(0);
  const auto& p1 = f.node.pod(1);
  // 3 files of at most 20000 bytes: the pcap header and 18 records of a
  // 1042-byte frame each (16 + 1042 = 1058 bytes per record).
  constexpr uint64_t kRecord = 16 + 1000 + kUdpHeaders;
  constexpr uint64_t kPerFile = (20000 - 24) / kRecord;
  f.start("ring", R"("captureTarget":{"podSelector":{"matchLabels":{"app":"app0"}}},)"
                  R"("captureOption":{"duration":"60s","maxCaptureBytes":60000,"fileCount":3},"tcpdumpFilter":"udp dst port 5101")");
  REQUIRE(test::udp_send(p0, p1, false, 5101, 100, 1000) == 100);
  f.node.wait_quiet(700ms);
  const auto st = f.finish("ring", true);
  CHECK(st.state == capture::State::kCancelled);  // the size stopped nothing
  REQUIRE(st.interfaces.size() == 1);
  const auto& s = st.interfaces[0];
  // 100 packets: five full files and one of 10; the oldest three were dropped.
  REQUIRE(s.files.size() == 3);
  CHECK(s.overwritten_packets == 3 * kPerFile);
  CHECK(s.packets == 100 - 3 * kPerFile);
  CHECK(s.file == s.files.back());
  auto u = unpack(st);
  uint64_t packets = 0;
  for (const auto& file : s.files) {
    INFO(file);
    CHECK(std::find(u->members.begin(), u->members.end(), file) != u->members.end());
    CHECK(std::filesystem::file_size(u->path(file)) <= 20000);
    const auto t = test::tshark_tally(u->path(file));
    REQUIRE(t.size() == 1);
    packets += t.begin()->second.packets;
  }
  CHECK(packets == s.packets);
  CHECK(test::tshark_tally(u->path(s.files.back())).begin()->second.packets == 100 - 5 * kPerFile);
  CHECK_THAT(test::sh("cat " + u->path("capture.log")), Catch::Contains("oldest packets were in files dropped"));
}

TEST_CASE("capture: podNames picks pods by name, besides the selectors", "[capture][privileged]") {
  RETINA_REQUIRE_PRIVILEGED();
  Fixture f;
  const auto& p0 = f.node.pod(0);
  const auto& p2 = f.node.pod(2);
  const auto& p3 = f.node.pod(3);
  const std::string ns = fmt::format("cap-{}", ::getpid());
  f.start("named", fmt::format(R"("captureTarget":{{"podNames":["{}/pod-2"]}},"captureOption":{{"duration":"60s"}})", ns));
  f.start("both", fmt::format(R"("captureTarget":{{"podNames":["{}/pod-3"],"podSelector":{{"matchLabels":{{"app":"app0"}}}}}},)"
                              R"("captureOption":{{"duration":"60s"}})",
                              ns));
  REQUIRE(test::udp_send(p2, p3, false, 5201, 7, 100) == 7);
  f.node.wait_quiet(700ms);
  const auto named = f.finish("named", true);
  const auto both = f.finish("both", true);
  REQUIRE(named.interfaces.size() == 1);
  CHECK(named.interfaces[0].name == p2.host_if);
  CHECK(named.interfaces[0].packets == 7);
  std::vector<std::string> names;
  for (const auto& i : both.interfaces) names.push_back(i.name);
  std::sort(names.begin(), names.end());
  std::vector<std::string> want = {p0.host_if, p3.host_if};
  std::sort(want.begin(), want.end());
  CHECK(names == want);
  CHECK(iface(both, p3.host_if).packets == 7);
  CHECK(iface(both, p0.host_if).packets == 0);
  // A name that matches nothing is refused like a selector that matches nothing.
  auto none = capture::parse_request_json(
      R"({"name":"nobody","spec":{"captureConfiguration":{"captureTarget":{"podNames":["ghost"]}}}})");
  REQUIRE(none);
  auto refused = f.manager->start(std::move(*none));
  REQUIRE_FALSE(refused);
  CHECK_THAT(refused.error().message, Catch::Contains("match no pod"));
}

TEST_CASE("capture: two captures at once do not interfere", "[capture][privileged]") {
  RETINA_REQUIRE_PRIVILEGED();
  Fixture f;
  const auto& p0 = f.node.pod(0);
  const auto& p1 = f.node.pod(1);
  const std::string target = R"("captureTarget":{"podSelector":{"matchLabels":{"capture":"yes"}}},"captureOption":{"duration":"60s"})";
  f.start("first", target + R"(,"tcpdumpFilter":"udp dst port 6001")");
  f.start("second", target + R"(,"tcpdumpFilter":"udp dst port 6002")");
  REQUIRE(test::udp_send(p0, p1, false, 6001, 20, 80) == 20);
  REQUIRE(test::udp_send(p1, p0, false, 6002, 30, 90) == 30);
  f.node.wait_quiet(700ms);
  const auto a = f.finish("first", true);
  const auto b = f.finish("second", true);
  CHECK(a.bundle != b.bundle);
  auto ua = unpack(a);
  auto ub = unpack(b);
  for (const auto* pod : {&p0, &p1}) {
    const auto ta = test::tshark_tally(ua->path(pod->host_if + ".pcap"));
    const auto tb = test::tshark_tally(ub->path(pod->host_if + ".pcap"));
    REQUIRE(ta.size() == 1);
    REQUIRE(tb.size() == 1);
    CHECK(ta.at(udp_key(ta, p0.ipv4, p1.ipv4, 6001)).packets == 20);
    CHECK(tb.at(udp_key(tb, p1.ipv4, p0.ipv4, 6002)).packets == 30);
  }
}

TEST_CASE("capture: pcapng records the interface name, node capture of a named interface",
          "[capture][privileged]") {
  RETINA_REQUIRE_PRIVILEGED();
  Fixture f;
  const auto& p2 = f.node.pod(2);
  const auto& p3 = f.node.pod(3);
  f.start("ng", fmt::format(R"("captureTarget":{{}},"captureOption":{{"duration":"60s","format":"pcapng","interfaces":["{}"]}})",
                            p3.host_if));
  REQUIRE(test::udp_send(p2, p3, false, 7001, 15, 200) == 15);
  f.node.wait_quiet(700ms);
  const auto st = f.finish("ng", true);
  auto u = unpack(st);
  const std::string file = u->path(p3.host_if + ".pcapng");
  const auto names = test::tshark_field(file, "frame.interface_name");
  REQUIRE(names.size() == 15);
  for (const auto& n : names) CHECK(n == p3.host_if);
  const auto t = test::tshark_tally(file);
  CHECK(t.at(udp_key(t, p2.ipv4, p3.ipv4, 7001)).bytes == 15 * (200 + kUdpHeaders));
}

// ------------------------------------------------------------ the agent

namespace {

test::HttpResponse agent_request(const test::AgentProcess& agent, std::string_view method, std::string_view target,
                                 std::string_view body = {}) {
  const std::string req = fmt::format(
      "{} {} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Type: application/json\r\n"
      "Content-Length: {}\r\n\r\n{}",
      method, target, body.size(), body);
  return test::http_raw("127.0.0.1", agent.port(), req, 30s);
}

}  // namespace

TEST_CASE("capture: through the agent's HTTP API, from POST to download", "[capture][privileged][agent]") {
  RETINA_REQUIRE_PRIVILEGED();
  test::Node node({.pods = 4, .isolated = true});
  test::AgentProcess agent;
  agent.write_file("endpoints.yaml", endpoints_yaml(node));
  const uint16_t port = test::free_port(node.node_ns());
  agent.start({.config = fmt::format("apiServer:\n  host: 127.0.0.1\n  port: {}\nenabledPlugin: [linuxutil]\n"
                                     "endpointsFile: {}\nnodeName: {}\nenableCapture: true\ncaptureOutputRoot: {}\n"
                                     "captureMaxDuration: 10m\n",
                                     port, agent.path("endpoints.yaml"), node_name(), agent.path("out")),
               .netns = node.node_ns(),
               .port = port});
  agent.wait_ready();
  INFO(agent.log_tail());
  REQUIRE(agent.wait_log("msg=\"endpoints file applied\""));
  // The pods' MLD reports for their IPv6 addresses come up to ~2 s after
  // the addresses, spaced up to a second apart: quiet for 1.5 s means done.
  node.wait_quiet(1500ms);

  // Bad input: 400 with the reason.
  auto bad = agent_request(agent, "POST", "/captures",
                           R"({"name":"bad","spec":{"captureConfiguration":{"tcpdumpFilter":"udp port x"}}})");
  CHECK(bad.status == 400);
  CHECK_THAT(bad.body, Catch::Contains("does not compile"));
  auto too_long = agent_request(agent, "POST", "/captures",
                                R"({"name":"long","spec":{"captureConfiguration":{"captureOption":{"duration":"11m"}}}})");
  CHECK(too_long.status == 400);
  CHECK_THAT(too_long.body, Catch::Contains("above the maximum"));

  auto created = agent_request(agent, "POST", "/captures",
                               R"({"name":"api","spec":{"captureConfiguration":{"captureTarget":{"podSelector":{"matchLabels":{"app":"app1"}}},"captureOption":{"duration":"60s"}}}})");
  INFO(created.body);
  REQUIRE(created.status == 201);
  CHECK_THAT(created.body, Catch::Contains("\"state\":\"Running\""));
  const auto& p0 = node.pod(0);
  const auto& p1 = node.pod(1);
  REQUIRE(test::udp_send(p0, p1, false, 8001, 21, 150) == 21);
  node.wait_quiet(700ms);
  CHECK(agent_request(agent, "GET", "/captures").body.find("\"name\":\"api\"") != std::string::npos);
  REQUIRE(agent_request(agent, "DELETE", "/captures/api").status == 202);
  std::string state;
  for (int i = 0; i < 100 && state.find("Cancelled") == std::string::npos; ++i) {
    std::this_thread::sleep_for(100ms);
    state = agent_request(agent, "GET", "/captures/api").body;
  }
  CHECK_THAT(state, Catch::Contains("\"state\":\"Cancelled\""));
  CHECK_THAT(state, Catch::Contains("\"packets\":21"));

  auto dl = agent_request(agent, "GET", "/captures/api/download");
  REQUIRE(dl.status == 200);
  CHECK(dl.header("Content-Type") == "application/gzip");
  CHECK_THAT(dl.header("Content-Disposition"), Catch::Contains(fmt::format("api-{}-", node_name())));
  test::TempDir tmp;
  const std::string file = tmp.path() + "/bundle.tar.gz";
  { std::ofstream(file, std::ios::binary) << dl.body; }
  const auto members = test::untar(file, tmp.path() + "/x");
  CHECK(std::find(members.begin(), members.end(), "agent-config.yaml") != members.end());
  const auto t = test::tshark_tally(tmp.path() + "/x/" + p1.host_if + ".pcap");
  REQUIRE(t.size() == 1);
  CHECK(t.begin()->second.packets == 21);
  CHECK(t.begin()->second.bytes == 21 * (150 + kUdpHeaders));
  // The bundle stays on the node under the output root.
  CHECK(test::sh("ls " + agent.path("out/captures")).find(".tar.gz") != std::string::npos);
  // Metrics count what was written.
  CHECK_THAT(agent.metrics_text(), Catch::Contains("retina_capture_packets_total 21"));
  CHECK(agent.stop() == 0);
}

// ------------------------------------------------- Capture objects (CRD)

namespace {

std::string capture_object(const std::string& name, const std::string& node_label, const std::string& iface,
                           const std::string& duration, const std::string& output = "") {
  return fmt::format(
      R"({{"apiVersion":"retina.sh/v1alpha1","kind":"Capture","metadata":{{"name":"{}","namespace":"ops","uid":"uid-{}"}},)"
      R"("spec":{{"captureConfiguration":{{"captureTarget":{{"nodeSelector":{{"matchLabels":{{"capture":"{}"}}}}}},)"
      R"("captureOption":{{"duration":"{}","interfaces":["{}"]}},"tcpdumpFilter":"udp"}}{}}}}})",
      name, name, node_label, duration, iface, output.empty() ? "" : ",\"outputConfiguration\":{" + output + "}");
}

// The last status patch the fake API server received for "ns/name".
std::string last_patch(const test::FakeApiServer& api, const std::string& key) {
  std::string body;
  for (const auto& [k, b] : api.patches("captures")) {
    if (k == key) body = b;
  }
  return body;
}

struct CrdFixture : Fixture {
  test::FakeApiServer api{test::FakeApiServer::Options{.tls = false}};
  std::unique_ptr<capture::CrdRunner> runner;

  CrdFixture() {
    api.upsert("nodes", test::k8sjson::node(node_name(), {"10.0.0.1"}, "zone-a",
                                            {{"kubernetes.io/hostname", node_name()}, {"capture", "allowed"}}));
  }
  void start_runner() {
    capture::CrdOptions o;
    o.client.server = api.url();
    o.node_name = node_name();
    auto r = capture::CrdRunner::start(*manager, o);
    REQUIRE(r);
    runner = std::move(*r);
  }
  std::string patch_of(const std::string& key) const { return last_patch(api, key); }
};

}  // namespace

TEST_CASE("capture: Capture objects run on the node they select and get its status", "[capture][privileged][crd]") {
  RETINA_REQUIRE_PRIVILEGED();
  CrdFixture f;
  const auto& p0 = f.node.pod(0);
  const auto& p1 = f.node.pod(1);
  f.api.upsert("captures", capture_object("mine", "allowed", p0.host_if, "3s"));
  f.api.upsert("captures", capture_object("elsewhere", "denied", p0.host_if, "3s"));
  f.start_runner();

  REQUIRE(test::wait_until([&] { return f.patch_of("ops/mine").find("Running") != std::string::npos; }, 10s));
  REQUIRE(test::udp_send(p0, p1, false, 9001, 12, 100) == 12);
  REQUIRE(test::wait_until([&] { return f.patch_of("ops/mine").find("Completed") != std::string::npos; }, 15s));
  const std::string status = f.patch_of("ops/mine");
  INFO(status);
  CHECK_THAT(status, Catch::StartsWith(fmt::format(R"({{"status":{{"nodes":{{"{}":{{"name":"mine")", node_name())));
  CHECK_THAT(status, Catch::Contains("\"stopReason\":\"duration\""));
  CHECK_THAT(status, Catch::Contains("\"packets\":12"));
  CHECK_THAT(status, Catch::Contains(fmt::format("\"bundle\":\"mine-{}-", node_name())));
  // The object selecting another node was left alone.
  CHECK(f.patch_of("ops/elsewhere").empty());
  CHECK_FALSE(f.manager->get("elsewhere"));

  // Objects are watched, not listed again: a new one arrives as a watch event.
  REQUIRE(test::wait_until([&] { return f.api.open_watches("captures") == 1; }, 10s));
  const size_t lists = f.api.list_requests("captures");
  CHECK(lists == 1);
  f.api.upsert("captures",
               R"({"apiVersion":"retina.sh/v1alpha1","kind":"Capture","metadata":{"name":"broken","namespace":"ops","uid":"uid-broken"},"spec":{"captureConfiguration":{"tcpdumpFilter":"udp port what"}}})");
  REQUIRE(test::wait_until([&] { return !f.patch_of("ops/broken").empty(); }, 10s));
  CHECK_THAT(f.patch_of("ops/broken"), Catch::Contains("\"state\":\"Failed\""));
  CHECK_THAT(f.patch_of("ops/broken"), Catch::Contains("does not compile"));
  CHECK(f.api.list_requests("captures") == lists);
  // Its own status patches (MODIFIED events) start nothing twice.
  std::this_thread::sleep_for(300ms);
  CHECK(f.manager->list().size() == 1);
}

TEST_CASE("capture: deleting a Capture object cancels its running capture", "[capture][privileged][crd]") {
  RETINA_REQUIRE_PRIVILEGED();
  CrdFixture f;
  const auto& p0 = f.node.pod(0);
  f.start_runner();
  REQUIRE(test::wait_until([&] { return f.api.open_watches("captures") == 1; }, 10s));
  f.api.upsert("captures", capture_object("long", "allowed", p0.host_if, "5m"));
  REQUIRE(test::wait_until([&] { return f.patch_of("ops/long").find("Running") != std::string::npos; }, 10s));
  const auto started = std::chrono::steady_clock::now();
  f.api.remove("captures", "ops", "long");
  auto st = f.manager->wait("long", 20s);
  REQUIRE(st);
  CHECK(st->state == capture::State::kCancelled);
  CHECK(st->stop_reason == "cancelled");
  CHECK(std::chrono::steady_clock::now() - started < 20s);
  CHECK_FALSE(st->bundle_path.empty());
}

TEST_CASE("capture: upload credentials come from the Secrets a Capture object names", "[capture][privileged][crd]") {
  RETINA_REQUIRE_PRIVILEGED();
  CrdFixture f;
  const auto& p0 = f.node.pod(0);
  const auto& p1 = f.node.pod(1);
  const std::string key_id = "AKIDSECRETEXAMPLE";
  const std::string secret_key = "cHJpdmF0ZS9rZXkrd2l0aC9zbGFzaGVz+EXAMPLE";
  test::FakeS3 s3(key_id, secret_key, "eu-west-1");
  // As `kubectl create secret generic --from-literal` stores them; a trailing newline (echo) is dropped.
  f.api.upsert("secrets", test::k8sjson::secret("ops", "s3-creds",
                                                {{"s3-access-key-id", key_id}, {"s3-secret-access-key", secret_key + "\n"}}));
  f.api.upsert("secrets", test::k8sjson::secret("ops", "blob-url", {{"blob-upload-url", s3.url() + "/blobs?sv=2022&sig=fakesig"}}));
  f.api.upsert("secrets", test::k8sjson::secret("ops", "partial", {{"s3-access-key-id", key_id}}));
  f.start_runner();
  f.api.upsert("captures", capture_object("to-s3", "allowed", p0.host_if, "2s",
                                          fmt::format(R"("s3Upload":{{"bucket":"b","region":"eu-west-1","endpoint":"{}","path":"team","secretName":"s3-creds"}},"blobUpload":"blob-url")",
                                                      s3.url())));
  f.api.upsert("captures", capture_object("no-secret", "allowed", p0.host_if, "2s",
                                          R"("s3Upload":{"bucket":"b","secretName":"nope"})"));
  f.api.upsert("captures", capture_object("no-key", "allowed", p0.host_if, "2s",
                                          R"("s3Upload":{"bucket":"b","secretName":"partial"})"));
  REQUIRE(test::wait_until([&] { return f.patch_of("ops/to-s3").find("Running") != std::string::npos; }, 10s));
  REQUIRE(test::udp_send(p0, p1, false, 9002, 5, 64) == 5);
  REQUIRE(test::wait_until([&] { return f.patch_of("ops/to-s3").find("Completed") != std::string::npos; }, 20s));
  const std::string status = f.patch_of("ops/to-s3");
  INFO(status);
  auto objs = s3.objects();
  REQUIRE(objs.size() == 2);
  std::sort(objs.begin(), objs.end(), [](const auto& a, const auto& b) { return a.path < b.path; });
  // The blob PUT with the SAS URL from its Secret; the S3 PUT signed with the Secret's keys.
  CHECK(objs[0].path.starts_with("/b/team/to-s3-" + node_name()));
  INFO(objs[0].problem);
  CHECK(objs[0].signature_ok);
  CHECK(objs[1].path.starts_with("/blobs/to-s3-" + node_name()));
  CHECK(objs[1].signature_ok);
  // Neither the keys nor the SAS token reach the status or metadata.json.
  CHECK(status.find(secret_key) == std::string::npos);
  CHECK(status.find("fakesig") == std::string::npos);
  auto st = f.manager->get("to-s3");
  REQUIRE(st);
  auto u = unpack(*st);
  const std::string meta = test::sh("cat " + u->path("metadata.json"));
  CHECK(meta.find(secret_key) == std::string::npos);
  CHECK(meta.find(key_id) == std::string::npos);
  CHECK(meta.find("fakesig") == std::string::npos);
  CHECK_THAT(meta, Catch::Contains("\"secretName\":\"s3-creds\""));

  REQUIRE(test::wait_until([&] { return !f.patch_of("ops/no-secret").empty() && !f.patch_of("ops/no-key").empty(); }, 10s));
  CHECK_THAT(f.patch_of("ops/no-secret"), Catch::Contains("\"state\":\"Failed\""));
  CHECK_THAT(f.patch_of("ops/no-secret"), Catch::Contains("Secret ops/nope not found"));
  CHECK_THAT(f.patch_of("ops/no-key"), Catch::Contains("Secret partial has no s3-secret-access-key key"));
  CHECK_FALSE(f.manager->get("no-secret"));
}

TEST_CASE("capture: a full disk is refused up front, and a disk filling up fails the capture with the reason",
          "[capture][privileged]") {
  RETINA_REQUIRE_PRIVILEGED();
  test::Node node({.pods = 2, .isolated = true});
  test::TempDir root;
  test::sh(fmt::format("mount -t tmpfs -o size=4m retina-capture-test '{}'", root.path()));
  test::Cleanup unmount;
  unmount.add([&] { (void)test::sh_status(fmt::format("umount '{}'", root.path())); });
  capture::ManagerOptions o;
  o.node_name = node_name();
  o.output_root = root.path();
  o.limits.min_free_bytes = 64 << 10;
  auto m = capture::Manager::create(std::move(o));
  REQUIRE(m);
  auto& manager = **m;
  const auto& p0 = node.pod(0);
  const auto& p1 = node.pod(1);
  const std::string target = fmt::format(R"("captureOption":{{"interfaces":["{}"],"duration":"60s")", p0.host_if);

  // 100 MB (the default) cannot fit in 4 MB.
  auto spec = capture::parse_request_json(R"({"name":"big","spec":{"captureConfiguration":{)" + target + "}}}}");
  REQUIRE(spec);
  auto refused = manager.start(*spec);
  REQUIRE_FALSE(refused);
  CHECK(refused.error().kind == Error::Kind::kInvalidArgument);
  CHECK_THAT(refused.error().message, Catch::Contains("not enough free space"));

  spec = capture::parse_request_json(R"({"name":"fills","spec":{"captureConfiguration":{)" + target +
                                     R"(,"maxCaptureBytes":1048576}}}})");
  REQUIRE(spec);
  REQUIRE(manager.start(*spec));
  // Something else fills the disk while the capture runs.
  (void)test::sh_status(fmt::format("dd if=/dev/zero of='{}/filler' bs=64k 2>/dev/null", root.path()));
  REQUIRE(test::udp_send(p0, p1, false, 5001, 300, 1000) == 300);
  node.wait_quiet(500ms);
  (void)manager.cancel("fills");
  auto st = manager.wait("fills", 30s);
  REQUIRE(st);
  INFO(st->message);
  CHECK(st->state == capture::State::kFailed);
  CHECK_THAT(st->message, Catch::Contains("disk full"));
  // Nothing half-written is left behind: no partial bundle, no staging files.
  for (const auto& e : std::filesystem::recursive_directory_iterator(root.path())) {
    if (e.is_regular_file()) CHECK(e.path().filename() == "filler");
  }
}
