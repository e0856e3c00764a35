// dropreason on real drops between pod namespaces: nftables DROP rules on
// input and output, a closed UDP port, and expected frees. Every test
// counts drops of its own namespaces only (Options::netns_inode), so other
// traffic on the machine cannot move the numbers, and asserts them exactly:
// the in-kernel counts, the exported metrics, the flows through the
// pipeline, and with a low event rate that events plus rate-limited drops
// add up to what was sent.
#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "loader/fd.hpp"
#include "plugins/dropreason/dropreason.hpp"
#include "plugins/services.hpp"
#include "retina/features.hpp"
#include "retina/metrics/names.hpp"
#include "retina/metrics/registry.hpp"
#include "retina/pipeline.hpp"
#include "support/netns.hpp"
#include "support/privileged.hpp"
#include "support/prom_text.hpp"

using namespace retina;
using namespace std::chrono_literals;
using loader::UniqueFd;

namespace {

uint32_t netns_inode(const std::string& ns) {
  struct stat st {};
  const std::string path = "/run/netns/" + ns;
  REQUIRE(::stat(path.c_str(), &st) == 0);
  return static_cast<uint32_t>(st.st_ino);
}

template <class Pred>
bool wait_for(Pred pred, std::chrono::milliseconds timeout = 5s) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(20ms);
  }
  return pred();
}

sockaddr_storage addr_of(const std::string& ip, uint16_t port, socklen_t* len) {
  sockaddr_storage ss{};
  if (ip.find(':') != std::string::npos) {
    auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
    a->sin6_family = AF_INET6;
    a->sin6_port = htons(port);
    REQUIRE(::inet_pton(AF_INET6, ip.c_str(), &a->sin6_addr) == 1);
    *len = sizeof(sockaddr_in6);
  } else {
    auto* a = reinterpret_cast<sockaddr_in*>(&ss);
    a->sin_family = AF_INET;
    a->sin_port = htons(port);
    REQUIRE(::inet_pton(AF_INET, ip.c_str(), &a->sin_addr) == 1);
    *len = sizeof(sockaddr_in);
  }
  return ss;
}

// `count` datagrams of `payload` bytes from namespace `ns`, from source
// port `sport` (0: any), to ip:port.
void udp_blast(const std::string& ns, const std::string& ip, uint16_t port, size_t count, size_t payload,
               uint16_t sport = 0) {
  test::in_netns(ns, [&] {
    const bool v6 = ip.find(':') != std::string::npos;
    UniqueFd s(::socket(v6 ? AF_INET6 : AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    REQUIRE(s);
    if (sport) {
      socklen_t blen;
      auto b = addr_of(v6 ? "::" : "0.0.0.0", sport, &blen);
      REQUIRE(::bind(s.get(), reinterpret_cast<sockaddr*>(&b), blen) == 0);
    }
    socklen_t len;
    auto a = addr_of(ip, port, &len);
    std::vector<char> buf(payload, 'd');
    for (size_t i = 0; i < count; ++i) {
      const ssize_t n = ::sendto(s.get(), buf.data(), buf.size(), 0, reinterpret_cast<sockaddr*>(&a), len);
      // A drop on the way out (OUTPUT hook) fails the send with EPERM.
      if (n < 0) REQUIRE(errno == EPERM);
      else REQUIRE(n == static_cast<ssize_t>(payload));
    }
  });
}

// `count` TCP SYNs: non-blocking connects, each socket closed right after
// its SYN left, so no SYN is ever retransmitted.
void syn_blast(const std::string& ns, const std::string& ip, uint16_t port, size_t count) {
  test::in_netns(ns, [&] {
    for (size_t i = 0; i < count; ++i) {
      UniqueFd s(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
      REQUIRE(s);
      socklen_t len;
      auto a = addr_of(ip, port, &len);
      REQUIRE(::connect(s.get(), reinterpret_cast<sockaddr*>(&a), len) < 0);
      REQUIRE(errno == EINPROGRESS);
    }
  });
}

class Without final : public FeatureDetector {
 public:
  explicit Without(std::vector<KernelFeature> missing) : missing_(std::move(missing)) {}
  Status probe(KernelFeature f) override {
    for (auto m : missing_)
      if (m == f) return unexpected(Error::unsupported(std::string("test kernel lacks ") + to_string(f)));
    return ok();
  }

 private:
  std::vector<KernelFeature> missing_;
};

struct Harness {
  metrics::Registry registry;
  Pipeline pipeline{nullptr, &registry};
  std::shared_ptr<Subscription> flows = pipeline.subscribe("test", 1 << 16);
  Config cfg;
  PluginServices services;  // outlives the plugin
  std::unique_ptr<DropReasonPlugin> plugin;

  // kernel_reasons: kernelDropReasons (ours) instead of Retina's labels.
  Harness(uint32_t netns, uint32_t events_per_second, bool include_expected = false,
          FeatureDetector* features = nullptr, bool kernel_reasons = false) {
    cfg.drop_events_per_second = events_per_second;
    cfg.drop_include_expected = include_expected;
    cfg.kernel_drop_reasons = kernel_reasons;
    plugin = std::make_unique<DropReasonPlugin>(DropReasonPlugin::Options{netns});
    PluginContext ctx;
    ctx.config = &cfg;
    ctx.registry = &registry;
    ctx.pipeline = &pipeline;
    ctx.features = features;
    REQUIRE(services.provide(DropReasonPlugin::kNeeds, ctx));
    auto st = plugin->init(ctx);
    INFO((st ? "" : st.error().message));
    REQUIRE(st);
    REQUIRE(plugin->start());
  }

  // Ring buffer -> pipeline -> subscription.
  std::vector<OwnedFlow> pump() {
    auto fn = [](void* user, std::span<const std::byte> rec) {
      static_cast<Pipeline*>(user)->process(rec, "dropreason");
    };
    for (auto* src : plugin->event_sources())
      while (src->drain(fn, &pipeline, 4096)) {
      }
    pipeline.end_batch();
    std::vector<OwnedFlow> out;
    OwnedFlow f;
    while (flows->try_pop(f)) out.push_back(f);
    return out;
  }

  DropReasonPlugin::Count count_of(std::string_view reason, uint8_t direction) {
    auto v = plugin->reasons()->value(reason);
    REQUIRE(v);
    auto counts = plugin->counts();
    REQUIRE(counts);
    for (const auto& c : *counts)
      if (c.reason == *v && c.direction == direction) return c;
    return DropReasonPlugin::Count{*v, direction, 0, 0};
  }

  // "NAME/dir=packets ..." of every count, for failure messages.
  std::string describe() {
    std::string out;
    auto counts = plugin->counts();
    if (!counts) return counts.error().message;
    for (const auto& c : *counts)
      out += fmt::format("{}/{}={} ", plugin->reasons()->name(c.reason), int(c.direction), c.packets);
    return out;
  }

  uint64_t total_packets() {
    auto counts = plugin->counts();
    REQUIRE(counts);
    uint64_t n = 0;
    for (const auto& c : *counts) n += c.packets;
    return n;
  }

  test::PromText scrape() {
    auto p = test::parse_prom_text(registry.expose());
    INFO(p.error);
    REQUIRE(p.error.empty());
    return p;
  }
};

// A table with one base chain on `hook` that drops what each match selects.
void nft_drop_rules(const std::string& ns, const std::string& hook, const std::vector<std::string>& matches) {
  test::sh(fmt::format("ip netns exec {} nft add table inet retina_test", ns));
  test::sh(fmt::format("ip netns exec {} nft 'add chain inet retina_test c {{ type filter hook {} priority 0; policy "
                       "accept; }}'",
                       ns, hook));
  for (const auto& m : matches)
    test::sh(fmt::format("ip netns exec {} nft add rule inet retina_test c {} drop", ns, m));
}

}  // namespace

TEST_CASE("dropreason counts nftables drops exactly, by direction, with flows", "[priv][dropreason]") {
  RETINA_REQUIRE_PRIVILEGED();
  test::Node node({.pods = 2, .isolated = true});
  const auto& a = node.pod(0);
  const auto& b = node.pod(1);
  nft_drop_rules(b.ns, "input", {"udp dport 7001", "tcp dport 7002"});
  nft_drop_rules(a.ns, "output", {"udp dport 7003"});
  node.wait_quiet();

  // Both entry points: tp_btf where the kernel has it, and raw_tp.
  const bool force_raw = GENERATE(false, true);
  Without no_tp_btf({KernelFeature::kTpBtf});
  FeatureDetector* features = force_raw ? &no_tp_btf : nullptr;
  Harness in(netns_inode(b.ns), 1'000'000, false, features);   // drops inside b
  Harness out(netns_inode(a.ns), 1'000'000, false, features);  // drops inside a
  Harness in_kernel(netns_inode(b.ns), 1'000'000, false, features, true);  // kernelDropReasons
  INFO("program: " << (in.plugin->uses_tp_btf() ? "tp_btf" : "raw_tp"));
  if (force_raw) CHECK_FALSE(in.plugin->uses_tp_btf());

  constexpr size_t kUdp4 = 150, kUdp6 = 70, kSyn = 40, kOut = 60;
  constexpr size_t kPayload = 100;
  udp_blast(a.ns, b.ipv4, 7001, kUdp4, kPayload);
  udp_blast(a.ns, b.ipv6, 7001, kUdp6, kPayload);
  syn_blast(a.ns, b.ipv4, 7002, kSyn);
  udp_blast(a.ns, b.ipv4, 7003, kOut, kPayload);

  constexpr size_t kIn = kUdp4 + kUdp6 + kSyn;
  REQUIRE(wait_for([&] { return in.count_of("NETFILTER_DROP", RETINA_DROP_DIR_INGRESS).packets >= kIn; }));
  REQUIRE(wait_for([&] { return out.count_of("NETFILTER_DROP", RETINA_DROP_DIR_EGRESS).packets >= kOut; }));
  std::this_thread::sleep_for(300ms);  // nothing more arrives

  // skb->len at the hook: the IP packet. A Linux SYN carries 20 bytes of
  // options (MSS, SACK permitted, timestamps, window scale).
  const uint64_t in_bytes = kUdp4 * (20 + 8 + kPayload) + kUdp6 * (40 + 8 + kPayload) + kSyn * (20 + 40);
  const auto ci = in.count_of("NETFILTER_DROP", RETINA_DROP_DIR_INGRESS);
  CHECK(ci.packets == kIn);
  CHECK(ci.bytes == in_bytes);
  CHECK(in.count_of("NETFILTER_DROP", RETINA_DROP_DIR_EGRESS).packets == 0);
  CHECK(in.total_packets() == kIn);  // nothing else dropped in b
  const auto co = out.count_of("NETFILTER_DROP", RETINA_DROP_DIR_EGRESS);
  CHECK(co.packets == kOut);
  CHECK(co.bytes == kOut * (20 + 8 + kPayload));
  CHECK(out.count_of("NETFILTER_DROP", RETINA_DROP_DIR_INGRESS).packets == 0);

  // Metrics, Retina's labels: its reason, direction "unknown" (Retina knows
  // a direction only for failed connects and accepts), no other label.
  auto p = in.scrape();
  const std::map<std::string, std::string> retina_labels = {{"reason", "IPTABLE_RULE_DROP"}, {"direction", "unknown"}};
  CHECK(p.value(metrics::names::kDropCount, retina_labels) == double(kIn));
  CHECK(p.value(metrics::names::kDropBytes, retina_labels) == double(in_bytes));
  REQUIRE(p.family(metrics::names::kDropCount)->samples.size() == 1);
  CHECK(p.family(metrics::names::kDropCount)->samples[0].labels.size() == 2);
  CHECK(p.family(metrics::names::kDropCount)->type == "counter");
  // kernelDropReasons: Retina's reason, the observed direction, our kernel_reason.
  REQUIRE(wait_for([&] { return in_kernel.count_of("NETFILTER_DROP", RETINA_DROP_DIR_INGRESS).packets >= kIn; }));
  auto pk = in_kernel.scrape();
  const std::map<std::string, std::string> in_labels = {
      {"reason", "IPTABLE_RULE_DROP"}, {"direction", "ingress"}, {"kernel_reason", "NETFILTER_DROP"}};
  CHECK(pk.value(metrics::names::kDropCount, in_labels) == double(kIn));
  CHECK(pk.value(metrics::names::kDropBytes, in_labels) == double(in_bytes));
  CHECK(p.value(metrics::names::kLostEvents, {{"type", "kernel"}, {"reason", "dropreason"}}) == 0.0);
  CHECK(p.value("controlplane_networkobservability_bpf_events_total", {{"plugin", "dropreason"}, {"stat", "reports"}}) ==
        double(kIn));
  auto po = out.scrape();
  CHECK(po.value(metrics::names::kDropCount, retina_labels) == double(kOut));

  // Flows: one per drop, with the 5-tuple and the kernel's reason.
  auto flows = in.pump();
  REQUIRE(flows.size() == kIn);
  std::map<std::tuple<IpVersion, L4Protocol, uint16_t>, size_t> seen;
  for (const auto& of : flows) {
    const Flow& f = of.flow();
    CHECK(f.verdict == Verdict::DROPPED);
    CHECK(f.drop_reason_desc == "NETFILTER_DROP");
    CHECK(f.direction == TrafficDirection::INGRESS);
    CHECK(f.suppressed == 0);
    CHECK(f.ifindex != 0);
    if (f.ip_version == IpVersion::IPv4) {
      CHECK(f.src == *IpAddr::parse(a.ipv4));
      CHECK(f.dst == *IpAddr::parse(b.ipv4));
      CHECK(f.bytes == (f.proto == L4Protocol::kTCP ? 60u : 20u + 8u + kPayload));
    } else {
      CHECK(f.src == *IpAddr::parse(a.ipv6));
      CHECK(f.dst == *IpAddr::parse(b.ipv6));
      CHECK(f.bytes == 40u + 8u + kPayload);
    }
    CHECK(f.src_port != 0);
    seen[{f.ip_version, f.proto, f.dst_port}]++;
  }
  CHECK(seen[{IpVersion::IPv4, L4Protocol::kUDP, 7001}] == kUdp4);
  CHECK(seen[{IpVersion::IPv6, L4Protocol::kUDP, 7001}] == kUdp6);
  CHECK(seen[{IpVersion::IPv4, L4Protocol::kTCP, 7002}] == kSyn);
  auto oflows = out.pump();
  REQUIRE(oflows.size() == kOut);
  for (const auto& of : oflows) {
    CHECK(of.flow().direction == TrafficDirection::EGRESS);
    CHECK(of.flow().dst_port == 7003);
    CHECK(of.flow().drop_reason_desc == "NETFILTER_DROP");
  }

  auto st = in.plugin->stats();
  REQUIRE(st);
  CHECK((*st)[RETINA_STAT_RATE_LIMITED] == 0);
  CHECK((*st)[RETINA_STAT_RINGBUF_FULL] == 0);
  CHECK((*st)[RETINA_STAT_REPORTS] == kIn);
  CHECK(*in.plugin->missed() == 0);

  // Stopped: the tracepoint no longer runs the program.
  in.plugin->stop();
  out.plugin->stop();
  udp_blast(a.ns, b.ipv4, 7001, 10, kPayload);
  std::this_thread::sleep_for(300ms);
  CHECK(in.count_of("NETFILTER_DROP", RETINA_DROP_DIR_INGRESS).packets == kIn);
}

TEST_CASE("dropreason: an iptables DROP is Retina's IPTABLE_RULE_DROP, direction unknown", "[priv][dropreason]") {
  RETINA_REQUIRE_PRIVILEGED();
  test::Node node({.pods = 2, .isolated = true});
  const auto& a = node.pod(0);
  const auto& b = node.pod(1);
  // iptables (Debian's iptables-nft) in b's own namespace: gone with it.
  test::sh(fmt::format("ip netns exec {} iptables -A INPUT -p udp --dport 7401 -j DROP", b.ns));
  test::sh(fmt::format("ip netns exec {} ip6tables -A INPUT -p udp --dport 7401 -j DROP", b.ns));
  node.wait_quiet();
  Harness h(netns_inode(b.ns), 1'000'000);
  const std::map<std::string, std::string> labels = {{"reason", "IPTABLE_RULE_DROP"}, {"direction", "unknown"}};
  const double before = h.scrape().value(metrics::names::kDropCount, labels).value_or(0);
  CHECK(before == 0);
  constexpr size_t kUdp4 = 90, kUdp6 = 35, kPayload = 50;
  udp_blast(a.ns, b.ipv4, 7401, kUdp4, kPayload);
  udp_blast(a.ns, b.ipv6, 7401, kUdp6, kPayload);
  REQUIRE(wait_for([&] { return h.total_packets() >= kUdp4 + kUdp6; }));
  std::this_thread::sleep_for(300ms);
  auto p = h.scrape();
  CHECK(p.value(metrics::names::kDropCount, labels) == double(kUdp4 + kUdp6));
  CHECK(p.value(metrics::names::kDropBytes, labels) == double(kUdp4 * (20 + 8 + kPayload) + kUdp6 * (40 + 8 + kPayload)));
  REQUIRE(p.family(metrics::names::kDropCount)->samples.size() == 1);
  CHECK(p.family(metrics::names::kDropCount)->samples[0].labels == labels);  // no label of ours
}

TEST_CASE("dropreason: a low event rate keeps the counts exact", "[priv][dropreason]") {
  RETINA_REQUIRE_PRIVILEGED();
  test::Node node({.pods = 2, .isolated = true});
  const auto& a = node.pod(0);
  const auto& b = node.pod(1);
  nft_drop_rules(b.ns, "input", {"udp dport 7101"});
  node.wait_quiet();

  Harness h(netns_inode(b.ns), 4);  // a couple of events per CPU and second
  constexpr size_t kBurst = 400;
  constexpr uint16_t kSport = 40123;  // one flow
  udp_blast(a.ns, b.ipv4, 7101, kBurst, 64, kSport);
  REQUIRE(wait_for([&] { return h.total_packets() >= kBurst; }));
  // A token for every CPU again; the flow's next drop carries its tally.
  std::this_thread::sleep_for(1200ms);
  udp_blast(a.ns, b.ipv4, 7101, 1, 64, kSport);
  constexpr size_t kSent = kBurst + 1;
  REQUIRE(wait_for([&] { return h.total_packets() >= kSent; }));
  std::this_thread::sleep_for(200ms);

  const auto c = h.count_of("NETFILTER_DROP", RETINA_DROP_DIR_INGRESS);
  CHECK(c.packets == kSent);
  CHECK(c.bytes == kSent * (20 + 8 + 64));
  auto flows = h.pump();
  auto st = h.plugin->stats();
  REQUIRE(st);
  const uint64_t limited = (*st)[RETINA_STAT_RATE_LIMITED];
  uint64_t suppressed = 0;
  for (const auto& f : flows) suppressed += f.flow().suppressed;
  INFO("events " << flows.size() << ", rate limited " << limited << ", suppressed " << suppressed);
  CHECK(flows.size() + limited == kSent);
  CHECK((*st)[RETINA_STAT_RINGBUF_FULL] == 0);
  CHECK(flows.size() < 20);
  CHECK(limited > 0);
  // The last event came after every suppressed drop of the one flow.
  CHECK(suppressed == limited);
  REQUIRE_FALSE(flows.empty());
  CHECK(flows.back().flow().suppressed > 0);
  auto p = h.scrape();
  CHECK(p.value(metrics::names::kDropCount, {{"reason", "IPTABLE_RULE_DROP"}, {"direction", "unknown"}}) ==
        double(kSent));
  CHECK(p.value("controlplane_networkobservability_bpf_events_total",
                {{"plugin", "dropreason"}, {"stat", "rate_limited"}}) == double(limited));
}

TEST_CASE("dropreason: UDP to a closed port is NO_SOCKET", "[priv][dropreason]") {
  RETINA_REQUIRE_PRIVILEGED();
  test::Node node({.pods = 2, .isolated = true});
  const auto& a = node.pod(0);
  const auto& b = node.pod(1);
  node.wait_quiet();
  Harness h(netns_inode(b.ns), 1'000'000, false, nullptr, true);  // kernelDropReasons
  Harness retina_labels(netns_inode(b.ns), 1'000'000);
  constexpr size_t kN = 25;
  udp_blast(a.ns, b.ipv4, 7201, kN, 10);
  udp_blast(a.ns, b.ipv6, 7201, kN, 10);
  REQUIRE(wait_for([&] { return h.count_of("NO_SOCKET", RETINA_DROP_DIR_INGRESS).packets >= 2 * kN; }));
  std::this_thread::sleep_for(300ms);
  const auto c = h.count_of("NO_SOCKET", RETINA_DROP_DIR_INGRESS);
  CHECK(c.packets == 2 * kN);
  // The drop happens after the UDP header was pulled: skb->len at that
  // point is reported as the kernel has it.
  CHECK(c.bytes > 0);
  CHECK(h.total_packets() == 2 * kN);
  auto p = h.scrape();
  // No Retina reason corresponds: with kernelDropReasons the kernel's name
  // in both labels; Retina's labels say UNKNOWN_DROP.
  CHECK(p.value(metrics::names::kDropCount,
                {{"reason", "NO_SOCKET"}, {"direction", "ingress"}, {"kernel_reason", "NO_SOCKET"}}) ==
        double(2 * kN));
  REQUIRE(wait_for([&] { return retina_labels.total_packets() >= 2 * kN; }));
  CHECK(retina_labels.scrape().value(metrics::names::kDropCount,
                                     {{"reason", "UNKNOWN_DROP"}, {"direction", "unknown"}}) == double(2 * kN));
  auto flows = h.pump();
  REQUIRE(flows.size() == 2 * kN);
  for (const auto& f : flows) {
    CHECK(f.flow().drop_reason_desc == "NO_SOCKET");
    CHECK(f.flow().dst_port == 7201);
    CHECK(f.flow().proto == L4Protocol::kUDP);
  }
}

TEST_CASE("dropreason: expected frees are left out unless asked for", "[priv][dropreason]") {
  RETINA_REQUIRE_PRIVILEGED();
  test::NetNs ns("retina-dr-exp-" + test::unique_tag());
  const uint32_t inode = netns_inode(ns.name());
  test::sh(fmt::format("ip -n {} link set lo up", ns.name()));
  // A raw IPv4 packet whose header claims more bytes than were written:
  // the kernel frees the new skb without a reason (NOT_SPECIFIED) and
  // sendto fails with EINVAL, once per send.
  auto frees = [&](size_t n) {
    test::in_netns(ns.name(), [&] {
      UniqueFd s(::socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_RAW));
      REQUIRE(s);
      socklen_t len;
      auto dst = addr_of("127.0.0.1", 0, &len);
      uint8_t pkt[20] = {0x4f};  // version 4, header length 60
      for (size_t i = 0; i < n; ++i) {
        REQUIRE(::sendto(s.get(), pkt, sizeof pkt, 0, reinterpret_cast<sockaddr*>(&dst), len) < 0);
        REQUIRE(errno == EINVAL);
      }
    });
  };
  constexpr size_t kN = 30;

  Harness without(inode, 1000, false);
  Harness with(inode, 1000, true);
  Harness with_kernel(inode, 1000, true, nullptr, true);
  frees(kN);
  INFO("counts: " << with.describe());
  REQUIRE(wait_for([&] { return with.count_of("NOT_SPECIFIED", RETINA_DROP_DIR_EGRESS).packets >= kN; }));
  std::this_thread::sleep_for(200ms);
  CHECK(with.count_of("NOT_SPECIFIED", RETINA_DROP_DIR_EGRESS).packets == kN);
  CHECK(without.total_packets() == 0);
  auto p = with.scrape();
  CHECK(p.value(metrics::names::kDropCount, {{"reason", "UNKNOWN_DROP"}, {"direction", "unknown"}}) == double(kN));
  REQUIRE(wait_for([&] { return with_kernel.count_of("NOT_SPECIFIED", RETINA_DROP_DIR_EGRESS).packets >= kN; }));
  CHECK(with_kernel.scrape().value(metrics::names::kDropCount, {{"reason", "UNKNOWN_DROP"},
                                                               {"direction", "egress"},
                                                               {"kernel_reason", "NOT_SPECIFIED"}}) == double(kN));
  auto flows = with.pump();
  REQUIRE(flows.size() == kN);
  for (const auto& f : flows) {
    CHECK(f.flow().drop_reason_desc == "NOT_SPECIFIED");
    CHECK(f.flow().ip_version == IpVersion::IP_NOT_USED);  // not an IP packet
  }
  CHECK(without.pump().empty());
}


TEST_CASE("dropreason: a kernel that cannot attach disables the plugin with a reason", "[priv][dropreason]") {
  RETINA_REQUIRE_PRIVILEGED();
  Config cfg;
  for (auto missing : {std::vector<KernelFeature>{KernelFeature::kTpBtf, KernelFeature::kRawTp},
                       std::vector<KernelFeature>{KernelFeature::kRingBuf},
                       std::vector<KernelFeature>{KernelFeature::kBtf}}) {
    Without features(missing);
    PluginContext ctx;
    ctx.config = &cfg;
    ctx.features = &features;
    DropReasonPlugin p;
    auto st = p.init(ctx);
    REQUIRE_FALSE(st);
    CHECK(st.error().kind == Error::Kind::kUnsupported);
    CHECK(st.error().message.find("dropreason") != std::string::npos);
  }
  // Only raw tracepoints: the raw_tp program is used.
  Without features({KernelFeature::kTpBtf});
  PluginContext ctx;
  ctx.config = &cfg;
  ctx.features = &features;
  DropReasonPlugin p;
  REQUIRE(p.init(ctx));
  CHECK_FALSE(p.uses_tp_btf());
  REQUIRE(p.start());
  p.stop();
}
