// packetparser's programs driven with BPF_PROG_TEST_RUN and crafted
// packets: parsing (IPv4 with options, IPv6 with extension headers, VLAN,
// TCP/UDP/ICMP, fragments, truncation), the records and statistics each
// packet produces, and the in-kernel conntrack of aggregation high.
#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <poll.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <atomic>
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <thread>
#include <vector>

#include "plugins/packetparser/packetparser.hpp"
#include "retina/decoder.hpp"
#include "plugins/services.hpp"
#include "retina/metrics/registry.hpp"
#include "support/packet_events.hpp"
#include "support/privileged.hpp"
#include "support/prom_text.hpp"

using namespace retina;

namespace {

using Bytes = std::vector<uint8_t>;

void put16(Bytes& b, size_t off, uint16_t v) {
  b[off] = static_cast<uint8_t>(v >> 8);
  b[off + 1] = static_cast<uint8_t>(v);
}
void put32(Bytes& b, size_t off, uint32_t v) {
  for (int i = 0; i < 4; ++i) b[off + i] = static_cast<uint8_t>(v >> (24 - 8 * i));
}
void append(Bytes& b, const Bytes& more) { b.insert(b.end(), more.begin(), more.end()); }

Bytes ether(uint16_t proto, bool vlan = false) {
  Bytes b = {0x02, 0, 0, 0, 0, 0x02, 0x02, 0, 0, 0, 0, 0x01};
  if (vlan) {
    b.resize(18);
    put16(b, 12, 0x8100);
    put16(b, 14, 0x0064);  // VLAN 100
    put16(b, 16, proto);
    return b;
  }
  b.resize(14);
  put16(b, 12, proto);
  return b;
}

Bytes tcp(uint16_t sport, uint16_t dport, uint16_t flags, std::optional<uint32_t> tsval, size_t payload = 0) {
  Bytes opts;
  if (tsval) {
    if (flags & RETINA_TCP_SYN) {
      // MSS, SACK permitted, timestamps, NOP, window scale (Linux SYN layout).
      opts = {2, 4, 0x05, 0xb4, 4, 2, 8, 10, 0, 0, 0, 0, 0, 0, 0, 0, 1, 3, 3, 7};
      put32(opts, 8, *tsval);
    } else {
      opts = {1, 1, 8, 10, 0, 0, 0, 0, 0, 0, 0, 0};
      put32(opts, 4, *tsval);
    }
  }
  Bytes t(20, 0);
  put16(t, 0, sport);
  put16(t, 2, dport);
  t[12] = static_cast<uint8_t>(((20 + opts.size()) / 4) << 4) | ((flags & RETINA_TCP_NS) ? 1 : 0);
  t[13] = static_cast<uint8_t>(flags & 0xff);
  append(t, opts);
  t.resize(t.size() + payload, 0xab);
  return t;
}

Bytes udp(uint16_t sport, uint16_t dport, size_t payload) {
  Bytes u(8, 0);
  put16(u, 0, sport);
  put16(u, 2, dport);
  put16(u, 4, static_cast<uint16_t>(8 + payload));
  u.resize(8 + payload, 0xcd);
  return u;
}

Bytes icmp(uint8_t type, uint8_t code) { return Bytes{type, code, 0, 0, 0, 1, 0, 1}; }

Bytes ipv4(const char* src, const char* dst, uint8_t proto, const Bytes& l4, size_t opt_len = 0, uint16_t frag = 0,
           bool vlan = false) {
  Bytes p = ether(0x0800, vlan);
  Bytes ip(20 + opt_len, 0);
  ip[0] = static_cast<uint8_t>(0x40 | ((20 + opt_len) / 4));
  put16(ip, 2, static_cast<uint16_t>(ip.size() + l4.size()));
  put16(ip, 6, frag);
  ip[8] = 64;
  ip[9] = proto;
  inet_pton(AF_INET, src, &ip[12]);
  inet_pton(AF_INET, dst, &ip[16]);
  for (size_t i = 20; i < ip.size(); ++i) ip[i] = 1;  // NOP options
  append(p, ip);
  append(p, l4);
  return p;
}

// ext: extension headers to insert, each {nexthdr value, bytes}.
Bytes ipv6(const char* src, const char* dst, uint8_t proto, const Bytes& l4, bool hop_by_hop = false,
           std::optional<uint16_t> frag_offset = std::nullopt) {
  Bytes p = ether(0x86DD);
  Bytes ext;
  uint8_t first = proto;
  if (frag_offset) {
    Bytes f(8, 0);
    f[0] = proto;
    put16(f, 2, static_cast<uint16_t>(*frag_offset << 3));
    ext = f;
    first = 44;
  }
  if (hop_by_hop) {
    Bytes h = {first, 0, 1, 4, 0, 0, 0, 0};  // PadN
    append(h, ext);
    ext = h;
    first = 0;
  }
  Bytes ip(40, 0);
  ip[0] = 0x60;
  put16(ip, 4, static_cast<uint16_t>(ext.size() + l4.size()));
  ip[6] = first;
  ip[7] = 64;
  inet_pton(AF_INET6, src, &ip[8]);
  inet_pton(AF_INET6, dst, &ip[24]);
  append(p, ip);
  append(p, ext);
  append(p, l4);
  return p;
}

IpAddr addr(const char* s) { return *IpAddr::parse(s); }
IpAddr ev_saddr(const retina_packet_event& e) {
  IpAddr a;
  std::memcpy(a.bytes.data(), e.tuple.saddr, 16);
  return a;
}
IpAddr ev_daddr(const retina_packet_event& e) {
  IpAddr a;
  std::memcpy(a.bytes.data(), e.tuple.daddr, 16);
  return a;
}

struct Harness {
  Config cfg;
  PluginServices services;  // outlives the plugin
  PacketParserPlugin pp;
  std::array<uint64_t, RETINA_STAT_MAX> base{};

  // `features`, when set, answers the plugin's kernel probes.
  explicit Harness(Config c, FeatureDetector* features = nullptr) : cfg(std::move(c)) {
    cfg.host_interfaces.clear();
    PluginContext ctx;
    ctx.config = &cfg;
    ctx.features = features;
    REQUIRE(services.provide(PacketParserPlugin::kNeeds, ctx));
    auto st = pp.init(ctx);
    if (!st) FAIL("init: " << st.error().message);
    base = *pp.stats();
  }

  // Runs the ingress (or egress) program on `pkt` and checks it left the
  // packet alone and returned TC_ACT_UNSPEC.
  void run(const Bytes& pkt, bool egress = false, int repeat = 1) {
    Bytes out(pkt.size() + 256);
    LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = pkt.data(), .data_out = out.data(),
                .data_size_in = static_cast<uint32_t>(pkt.size()), .data_size_out = static_cast<uint32_t>(out.size()),
                .repeat = repeat);
    int fd = egress ? pp.egress_prog_fd() : pp.ingress_prog_fd();
    INFO("packet of " << pkt.size() << " bytes");
    REQUIRE(bpf_prog_test_run_opts(fd, &o) == 0);
    CHECK(static_cast<int32_t>(o.retval) == -1);
    REQUIRE(o.data_size_out == pkt.size());
    CHECK(std::memcmp(out.data(), pkt.data(), pkt.size()) == 0);
  }

  std::vector<retina_packet_event> drain() { return test::drain_packet_events(pp); }

  uint64_t stat(retina_stat s) { return (*pp.stats())[s] - base[s]; }
};

Config low_config() {
  Config c;
  c.data_aggregation_level = AggregationLevel::kLow;
  c.packet_parser_ring_buffer_size = 1 << 20;
  return c;
}

Config high_config() {
  Config c;
  c.data_aggregation_level = AggregationLevel::kHigh;
  c.packet_parser_ring_buffer_size = 1 << 20;
  c.conntrack_max_entries = 1024;
  return c;
}

void check_header(const retina_packet_event& e) {
  CHECK(e.hdr.type == RETINA_EV_PACKET);
  CHECK(e.hdr.version == RETINA_PACKET_EVENT_VERSION);
  CHECK(e.hdr.len == sizeof(retina_packet_event));
  CHECK(e.hdr.ts_ns > 0);
}

// Counting rule: prev_packets + (NO_PACKET ? 0 : 1), bytes + prev_bytes.
std::pair<uint64_t, uint64_t> totals(const std::vector<retina_packet_event>& evs) {
  uint64_t p = 0, b = 0;
  for (const auto& e : evs) {
    p += e.prev_packets + ((e.flags & RETINA_PKT_F_NO_PACKET) ? 0 : 1);
    b += e.bytes + e.prev_bytes;
  }
  return {p, b};
}

}  // namespace

TEST_CASE("packetparser parses IPv4 TCP with options and the timestamp", "[priv][packetparser]") {
  RETINA_REQUIRE_PRIVILEGED();
  Harness h(low_config());
  Bytes pkt = ipv4("10.1.2.3", "10.4.5.6", IPPROTO_TCP, tcp(40000, 443, RETINA_TCP_SYN, 0x11223344u));
  h.run(pkt);
  auto evs = h.drain();
  REQUIRE(evs.size() == 1);
  const auto& e = evs[0];
  check_header(e);
  CHECK(ev_saddr(e) == addr("10.1.2.3"));
  CHECK(ev_daddr(e) == addr("10.4.5.6"));
  CHECK(e.tuple.sport == 40000);
  CHECK(e.tuple.dport == 443);
  CHECK(e.tuple.proto == IPPROTO_TCP);
  CHECK(e.tuple.family == 4);
  CHECK(e.tcp_flags == RETINA_TCP_SYN);
  CHECK(e.tcp_id == 0x11223344u);
  CHECK(e.bytes == pkt.size());
  CHECK(e.ifindex == 1);
  CHECK(e.obs_point == RETINA_OBS_FROM_ENDPOINT);
  CHECK(e.report_reason == RETINA_REPORT_PACKET);
  CHECK(e.flags == 0);
  CHECK(e.prev_packets == 0);
  CHECK(e.prev_bytes == 0);
  CHECK(h.stat(RETINA_STAT_REPORTS) == 1);
  CHECK(h.stat(RETINA_STAT_TRUNCATED) == 0);
  CHECK(h.stat(RETINA_STAT_RINGBUF_FULL) == 0);
}

TEST_CASE("packetparser skips IPv4 options using the header length", "[priv][packetparser]") {
  RETINA_REQUIRE_PRIVILEGED();
  Harness h(low_config());
  for (size_t opts : {4u, 20u, 40u}) {
    Bytes pkt = ipv4("192.168.0.1", "192.168.0.2", IPPROTO_UDP, udp(5353, 53, 30), opts);
    h.run(pkt, /*egress=*/true);
    auto evs = h.drain();
    REQUIRE(evs.size() == 1);
    CHECK(evs[0].tuple.sport == 5353);
    CHECK(evs[0].tuple.dport == 53);
    CHECK(evs[0].tuple.proto == IPPROTO_UDP);
    CHECK(evs[0].obs_point == RETINA_OBS_TO_ENDPOINT);
    CHECK(evs[0].bytes == pkt.size());
  }
  CHECK(h.stat(RETINA_STAT_REPORTS) == 3);
}

TEST_CASE("packetparser walks IPv6 extension headers", "[priv][packetparser]") {
  RETINA_REQUIRE_PRIVILEGED();
  Harness h(low_config());
  Bytes pkt = ipv6("fd00::1", "fd00::2", IPPROTO_TCP,
                   tcp(33000, 8080, RETINA_TCP_ACK | RETINA_TCP_PSH | RETINA_TCP_NS, 0xdeadbeefu, 100),
                   /*hop_by_hop=*/true);
  h.run(pkt);
  Bytes frag = ipv6("fd00::1", "fd00::2", IPPROTO_UDP, udp(1, 2, 16), true, uint16_t{0});
  h.run(frag);
  Bytes later_frag = ipv6("fd00::1", "fd00::2", IPPROTO_UDP, udp(1, 2, 16), false, uint16_t{100});
  h.run(later_frag);
  Bytes ping6 = ipv6("fd00::1", "fd00::2", IPPROTO_ICMPV6, icmp(128, 0));
  h.run(ping6);
  auto evs = h.drain();
  REQUIRE(evs.size() == 4);
  CHECK(evs[0].tuple.family == 6);
  CHECK(ev_saddr(evs[0]) == addr("fd00::1"));
  CHECK(ev_daddr(evs[0]) == addr("fd00::2"));
  CHECK(evs[0].tuple.proto == IPPROTO_TCP);
  CHECK(evs[0].tuple.sport == 33000);
  CHECK(evs[0].tuple.dport == 8080);
  CHECK(evs[0].tcp_flags == (RETINA_TCP_ACK | RETINA_TCP_PSH | RETINA_TCP_NS));
  CHECK(evs[0].tcp_id == 0xdeadbeefu);
  CHECK(evs[0].bytes == pkt.size());
  // Hop-by-hop then a first fragment: the UDP header is there.
  CHECK(evs[1].tuple.proto == IPPROTO_UDP);
  CHECK(evs[1].tuple.sport == 1);
  CHECK(evs[1].tuple.dport == 2);
  // A later fragment has no transport header.
  CHECK(evs[2].tuple.proto == IPPROTO_UDP);
  CHECK(evs[2].tuple.sport == 0);
  CHECK(evs[2].tuple.dport == 0);
  CHECK(evs[3].tuple.proto == IPPROTO_ICMPV6);
  CHECK(evs[3].tuple.sport == 128);
  CHECK(evs[3].tuple.dport == 0);
  CHECK(h.stat(RETINA_STAT_TRUNCATED) == 0);
}

TEST_CASE("packetparser handles VLAN tags, ICMP and IPv4 fragments", "[priv][packetparser]") {
  RETINA_REQUIRE_PRIVILEGED();
  Harness h(low_config());
  h.run(ipv4("10.0.0.1", "10.0.0.2", IPPROTO_UDP, udp(1000, 2000, 10), 0, 0, /*vlan=*/true));
  h.run(ipv4("10.0.0.1", "10.0.0.2", IPPROTO_ICMP, icmp(8, 0)));
  h.run(ipv4("10.0.0.1", "10.0.0.2", IPPROTO_UDP, udp(1000, 2000, 10), 0, /*frag offset*/ 0x00b9));
  h.run(ipv4("10.0.0.1", "10.0.0.2", 47 /* GRE */, Bytes(8, 0)));
  h.run(ipv4("10.0.0.1", "10.0.0.2", IPPROTO_TCP, tcp(1, 2, RETINA_TCP_ACK, std::nullopt)));
  auto evs = h.drain();
  REQUIRE(evs.size() == 4);
  CHECK(evs[0].tuple.sport == 1000);
  CHECK(evs[0].tuple.dport == 2000);
  CHECK(evs[1].tuple.proto == IPPROTO_ICMP);
  CHECK(evs[1].tuple.sport == 8);
  CHECK(evs[2].tuple.sport == 0);  // not the first fragment
  CHECK(evs[3].tcp_id == 0);       // no timestamp option
  CHECK(evs[3].tcp_flags == RETINA_TCP_ACK);
  CHECK(h.stat(RETINA_STAT_REPORTS) == 4);
  CHECK(h.stat(RETINA_STAT_OTHER_PROTO) == 1);  // GRE is counted, not reported
  CHECK(h.stat(RETINA_STAT_TRUNCATED) == 0);
  CHECK(h.stat(RETINA_STAT_NOT_IP) == 0);
}

TEST_CASE("packetparser counts non-IP and truncated packets exactly", "[priv][packetparser]") {
  RETINA_REQUIRE_PRIVILEGED();
  Harness h(low_config());
  Bytes arp = ether(0x0806);
  arp.resize(42, 0);
  h.run(arp);
  // (Packets shorter than a bare IPv4 or IPv6 header cannot be test-run:
  // the kernel rejects them with EINVAL before the program sees them.)
  Bytes short_opts = ipv4("10.0.0.1", "10.0.0.2", IPPROTO_UDP, {}, 0);
  short_opts[14] = 0x4f;  // claims 60 bytes of IPv4 header, has 20
  h.run(short_opts);
  Bytes cut_tcp = ipv4("10.0.0.1", "10.0.0.2", IPPROTO_TCP, tcp(1, 2, RETINA_TCP_SYN, 7u));
  cut_tcp.resize(14 + 20 + 10);  // transport header cut short: still reported
  h.run(cut_tcp);
  Bytes cut_ext = ipv6("fd00::1", "fd00::2", IPPROTO_UDP, udp(1, 2, 0), true);
  cut_ext.resize(14 + 40 + 1);  // extension header cut short
  h.run(cut_ext);

  auto evs = h.drain();
  CHECK(h.stat(RETINA_STAT_NOT_IP) == 1);
  CHECK(h.stat(RETINA_STAT_TRUNCATED) == 3);
  CHECK(h.stat(RETINA_STAT_OTHER_PROTO) == 0);
  // The cut TCP header is reported (its protocol is known); the cut IPv6
  // extension header leaves no transport protocol, so only its count stays.
  REQUIRE(evs.size() == 1);
  CHECK(evs[0].tuple.family == 4);
  CHECK(evs[0].tuple.proto == IPPROTO_TCP);
  CHECK(evs[0].tuple.sport == 0);
  CHECK(evs[0].bytes == cut_tcp.size());
  CHECK(h.stat(RETINA_STAT_REPORTS) == 1);
}

TEST_CASE("packetparser observation point follows the interface role", "[priv][packetparser]") {
  RETINA_REQUIRE_PRIVILEGED();
  Harness h(low_config());
  uint32_t lo = 1, host = RETINA_IF_ROLE_HOST;
  REQUIRE(bpf_map_update_elem(h.pp.interface_role_map_fd(), &lo, &host, BPF_ANY) == 0);
  Bytes pkt = ipv4("10.0.0.1", "10.0.0.2", IPPROTO_UDP, udp(1, 2, 3));
  h.run(pkt, false);
  h.run(pkt, true);
  auto evs = h.drain();
  REQUIRE(evs.size() == 2);
  CHECK(evs[0].obs_point == RETINA_OBS_FROM_NETWORK);
  CHECK(evs[1].obs_point == RETINA_OBS_TO_NETWORK);
}

TEST_CASE("packetparser samples 1 in N at aggregation low", "[priv][packetparser]") {
  RETINA_REQUIRE_PRIVILEGED();
  Config c = low_config();
  c.data_sampling_rate = 4;
  Harness h(c);
  h.run(ipv4("10.0.0.1", "10.0.0.2", IPPROTO_UDP, udp(1, 2, 3)), false, 4000);
  auto evs = h.drain();
  CHECK(evs.size() + h.stat(RETINA_STAT_SAMPLED_OUT) == 4000);
  CHECK(evs.size() == h.stat(RETINA_STAT_REPORTS));
  // Binomial(4000, 1/4): mean 1000, sd about 27.
  CHECK(evs.size() > 850);
  CHECK(evs.size() < 1150);
}

// Ring records as they come: (batch size or 0 for a lone record).
std::vector<size_t> record_shapes(PacketParserPlugin& pp) {
  std::vector<size_t> shapes;
  auto fn = [](void* user, std::span<const std::byte> rec) {
    auto* v = static_cast<std::vector<size_t>*>(user);
    if (!is_batch(rec)) return v->push_back(0);
    auto batch = split_batch(rec);
    REQUIRE(batch);
    v->push_back(batch->count);
  };
  for (auto* src : pp.event_sources())
    while (src->drain(fn, &shapes, 1024)) {
    }
  return shapes;
}

TEST_CASE("packetparser at aggregation low sends packets in batches and counts each", "[priv][packetparser][batch]") {
  RETINA_REQUIRE_PRIVILEGED();
  Harness h(low_config());
  REQUIRE(h.pp.batched());
  const Bytes pkt = ipv4("10.0.0.1", "10.0.0.2", IPPROTO_UDP, udp(1, 2, 3));

  // Full batches go at once; the last, partial one when its timer fires.
  const uint32_t packets = 5 * RETINA_BATCH_MAX + 3;
  h.run(pkt, false, packets);
  REQUIRE(h.pp.wait_batches_sent() == 0);
  CHECK(h.stat(RETINA_STAT_REPORTS) == packets);
  CHECK(h.stat(RETINA_STAT_RINGBUF_FULL) == 0);
  auto shapes = record_shapes(h.pp);
  size_t total = 0;
  for (size_t n : shapes) {
    CHECK(n >= 1);  // never a lone record while batching
    CHECK(n <= RETINA_BATCH_MAX);
    total += n;
  }
  CHECK(total == packets);
  CHECK(shapes.size() >= 6);
  CHECK(shapes.size() <= 8);  // a timer may cut one batch short during the run

  // A single packet is not left waiting: its batch goes within a millisecond.
  h.run(pkt);
  const auto t0 = std::chrono::steady_clock::now();
  REQUIRE(h.pp.wait_batches_sent(std::chrono::milliseconds(500)) == 0);
  CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::milliseconds(250));
  CHECK(record_shapes(h.pp) == std::vector<size_t>{1});
  CHECK(h.stat(RETINA_STAT_REPORTS) == packets + 1);
}

TEST_CASE("packetparser at aggregation low counts whole batches lost when the ring is full", "[priv][packetparser][batch]") {
  RETINA_REQUIRE_PRIVILEGED();
  Config c = low_config();
  c.packet_parser_ring_buffer_size = 1 << 16;  // 64 KiB: 31 full batches (2080 bytes each)
  Harness h(c);
  const uint32_t packets = 100 * RETINA_BATCH_MAX;
  h.run(ipv4("10.0.0.1", "10.0.0.2", IPPROTO_UDP, udp(1, 2, 3)), false, packets);
  REQUIRE(h.pp.wait_batches_sent() == 0);
  const uint64_t sent = h.stat(RETINA_STAT_REPORTS), lost = h.stat(RETINA_STAT_RINGBUF_FULL);
  CHECK(sent + lost == packets);
  CHECK(lost > 0);
  size_t total = 0;
  for (size_t n : record_shapes(h.pp)) total += n;
  CHECK(total == sent);
}

TEST_CASE("packetparser without bpf_timer sends one record per packet", "[priv][packetparser][batch]") {
  RETINA_REQUIRE_PRIVILEGED();
  // The kernel's answers, except that it lacks bpf_timer (read when probed).
  ::setenv("RETINA_KERNEL_FEATURES_OFF", "bpf_timer", 1);
  auto features = make_kernel_feature_detector();
  Harness h(low_config(), features.get());
  ::unsetenv("RETINA_KERNEL_FEATURES_OFF");
  CHECK_FALSE(h.pp.batched());
  h.run(ipv4("10.0.0.1", "10.0.0.2", IPPROTO_UDP, udp(1, 2, 3)), false, 40);
  CHECK(record_shapes(h.pp) == std::vector<size_t>(40, 0));
  CHECK(h.stat(RETINA_STAT_REPORTS) == 40);
}

TEST_CASE("packetparser reports only IPs of interest unless bypassed", "[priv][packetparser]") {
  RETINA_REQUIRE_PRIVILEGED();
  Config c = low_config();
  c.bypass_lookup_ip_of_interest = false;
  c.filter_map_max_entries = 4;
  Harness h(c);
  Bytes a = ipv4("10.0.0.1", "10.0.0.2", IPPROTO_UDP, udp(1, 2, 3));
  Bytes b = ipv4("10.0.0.9", "10.0.0.8", IPPROTO_UDP, udp(1, 2, 3));
  Bytes v6 = ipv6("fd00::9", "fd00::1", IPPROTO_UDP, udp(1, 2, 3));
  h.run(a);
  CHECK(h.drain().empty());  // empty set: nothing is of interest

  std::vector<IpAddr> ips = {addr("10.0.0.2"), addr("fd00::1")};
  REQUIRE(h.pp.set_ips_of_interest(ips));
  h.run(a);
  h.run(b);
  h.run(v6);
  auto evs = h.drain();
  REQUIRE(evs.size() == 2);
  CHECK(ev_daddr(evs[0]) == addr("10.0.0.2"));
  CHECK(ev_daddr(evs[1]) == addr("fd00::1"));

  std::vector<IpAddr> only_b = {addr("10.0.0.9")};
  REQUIRE(h.pp.set_ips_of_interest(only_b));
  h.run(a);
  h.run(b);
  evs = h.drain();
  REQUIRE(evs.size() == 1);
  CHECK(ev_saddr(evs[0]) == addr("10.0.0.9"));

  std::vector<IpAddr> too_many = {addr("1.1.1.1"), addr("1.1.1.2"), addr("1.1.1.3"), addr("1.1.1.4"),
                                  addr("1.1.1.5")};
  auto st = h.pp.set_ips_of_interest(too_many);
  REQUIRE_FALSE(st.has_value());
  CHECK(st.error().kind == Error::Kind::kInvalidArgument);
}

TEST_CASE("conntrack reports a TCP connection with exact counts", "[priv][packetparser][conntrack]") {
  RETINA_REQUIRE_PRIVILEGED();
  Harness h(high_config());
  const char* c = "10.9.0.1";
  const char* s = "10.9.0.2";
  auto c2s = [&](uint16_t flags, size_t payload = 0) {
    return ipv4(c, s, IPPROTO_TCP, tcp(40000, 80, flags, 1000u, payload));
  };
  auto s2c = [&](uint16_t flags, size_t payload = 0) {
    return ipv4(s, c, IPPROTO_TCP, tcp(80, 40000, flags, 2000u, payload));
  };
  const uint16_t kAck = RETINA_TCP_ACK, kSyn = RETINA_TCP_SYN, kFin = RETINA_TCP_FIN, kPsh = RETINA_TCP_PSH;
  std::vector<Bytes> pkts = {
      c2s(kSyn),               // 0 NEW
      s2c(kSyn | kAck),        // 1 FLAGS, reply
      c2s(kAck),               // 2 pending
      c2s(kPsh | kAck, 100),   // 3 FLAGS (PSH is new) carrying packet 2
      s2c(kAck),               // 4 pending
      s2c(kAck, 1000),         // 5 pending
      c2s(kFin | kAck),        // 6 FLAGS carrying 4 and 5
      s2c(kFin | kAck),        // 7 FLAGS, reply; both FINs seen
      c2s(kAck),               // 8 final ACK: pending, connection closes now
      c2s(kSyn),               // 9 reuses the tuple: TIMEOUT flush of 8, then NEW
  };
  uint64_t bytes = 0;
  for (const auto& p : pkts) {
    h.run(p);
    bytes += p.size();
  }
  auto evs = h.drain();
  REQUIRE(evs.size() == 7);
  for (const auto& e : evs) {
    check_header(e);
    CHECK((e.flags & RETINA_PKT_F_CT_REPORT) != 0);
    CHECK(e.obs_point == RETINA_OBS_FROM_ENDPOINT);
  }
  CHECK(evs[0].report_reason == RETINA_REPORT_NEW);
  CHECK(evs[0].flags == RETINA_PKT_F_CT_REPORT);
  CHECK(evs[0].tcp_flags == kSyn);
  CHECK(evs[0].tcp_id == 1000);
  CHECK(evs[1].report_reason == RETINA_REPORT_FLAGS);
  CHECK(evs[1].flags == (RETINA_PKT_F_CT_REPORT | RETINA_PKT_F_REPLY));
  CHECK(ev_saddr(evs[1]) == addr(s));
  CHECK(evs[2].report_reason == RETINA_REPORT_FLAGS);
  CHECK(evs[2].tcp_flags == (kPsh | kAck));
  CHECK(evs[2].prev_packets == 1);
  CHECK(evs[2].prev_bytes == pkts[2].size());
  CHECK(evs[2].prev_flag_counts[RETINA_FLAG_IDX_ACK] == 1);
  CHECK(evs[2].bytes == pkts[3].size());
  CHECK(evs[3].tcp_flags == (kFin | kAck));
  CHECK(evs[3].prev_packets == 2);
  CHECK(evs[3].prev_bytes == pkts[4].size() + pkts[5].size());
  CHECK(evs[3].prev_flag_counts[RETINA_FLAG_IDX_ACK] == 2);
  CHECK(evs[3].prev_flag_counts[RETINA_FLAG_IDX_SYN] == 0);
  CHECK(evs[4].flags == (RETINA_PKT_F_CT_REPORT | RETINA_PKT_F_REPLY));
  CHECK(evs[4].prev_packets == 0);
  // The final ACK's count comes back as a flush when the tuple is reused.
  CHECK(evs[5].report_reason == RETINA_REPORT_TIMEOUT);
  CHECK(evs[5].flags == (RETINA_PKT_F_CT_REPORT | RETINA_PKT_F_NO_PACKET));
  CHECK(evs[5].prev_packets == 1);
  CHECK(evs[5].prev_bytes == pkts[8].size());
  CHECK(evs[5].prev_flag_counts[RETINA_FLAG_IDX_ACK] == 1);
  CHECK(evs[5].bytes == 0);
  CHECK(ev_saddr(evs[5]) == addr(c));
  CHECK(evs[5].tuple.sport == 40000);
  CHECK(evs[5].tuple.dport == 80);
  CHECK(evs[5].tuple.family == 4);
  CHECK(evs[6].report_reason == RETINA_REPORT_NEW);
  CHECK(evs[6].prev_packets == 0);

  auto [packets, total_bytes] = totals(evs);
  CHECK(packets == pkts.size());
  CHECK(total_bytes == bytes);
  CHECK(h.stat(RETINA_STAT_REPORTS) == evs.size());
  CHECK(h.stat(RETINA_STAT_RINGBUF_FULL) == 0);
  CHECK(h.stat(RETINA_STAT_CT_FULL) == 0);
}

TEST_CASE("conntrack keeps idle counts pending until the sweeper flushes them", "[priv][packetparser][conntrack]") {
  RETINA_REQUIRE_PRIVILEGED();
  Harness h(high_config());
  Bytes c2s = ipv6("fd00:9::1", "fd00:9::2", IPPROTO_UDP, udp(5000, 53, 40));
  Bytes s2c = ipv6("fd00:9::2", "fd00:9::1", IPPROTO_UDP, udp(53, 5000, 200));
  for (int i = 0; i < 3; ++i) h.run(c2s, /*egress=*/false);
  for (int i = 0; i < 2; ++i) h.run(s2c, /*egress=*/true);
  auto evs = h.drain();
  REQUIRE(evs.size() == 2);
  CHECK(evs[0].report_reason == RETINA_REPORT_NEW);
  CHECK(evs[0].obs_point == RETINA_OBS_FROM_ENDPOINT);
  // First packet on the other hook: its interval has never started.
  CHECK(evs[1].report_reason == RETINA_REPORT_INTERVAL);
  CHECK(evs[1].flags == (RETINA_PKT_F_CT_REPORT | RETINA_PKT_F_REPLY));
  CHECK(evs[1].obs_point == RETINA_OBS_TO_ENDPOINT);

  REQUIRE(h.pp.sweep(false));
  CHECK(h.drain().empty());  // 30 s interval: nothing due yet
  auto g = h.pp.conntrack_gauges();
  REQUIRE(g);
  CHECK(g->connections == 1);
  CHECK(g->packets_tx == 3);
  CHECK(g->packets_rx == 2);
  CHECK(g->bytes_tx == 3 * c2s.size());
  CHECK(g->bytes_rx == 2 * s2c.size());
  CHECK(g->sweep_ns > 0);

  REQUIRE(h.pp.sweep(true));
  auto flushed = h.drain();
  REQUIRE(flushed.size() == 2);
  for (const auto& e : flushed) {
    CHECK(e.report_reason == RETINA_REPORT_INTERVAL);
    CHECK((e.flags & RETINA_PKT_F_NO_PACKET) != 0);
    CHECK(e.bytes == 0);
    CHECK(e.tuple.family == 6);
    CHECK(e.tuple.proto == IPPROTO_UDP);
  }
  CHECK(flushed[0].obs_point == RETINA_OBS_FROM_ENDPOINT);
  CHECK(flushed[0].prev_packets == 2);
  CHECK(ev_saddr(flushed[0]) == addr("fd00:9::1"));
  CHECK(flushed[0].tuple.sport == 5000);
  CHECK(flushed[1].obs_point == RETINA_OBS_TO_ENDPOINT);
  CHECK(flushed[1].prev_packets == 1);
  CHECK((flushed[1].flags & RETINA_PKT_F_REPLY) != 0);
  CHECK(ev_saddr(flushed[1]) == addr("fd00:9::2"));

  evs.insert(evs.end(), flushed.begin(), flushed.end());
  auto [packets, bytes] = totals(evs);
  CHECK(packets == 5);
  CHECK(bytes == 3 * c2s.size() + 2 * s2c.size());
  REQUIRE(h.pp.sweep(true));
  CHECK(h.drain().empty());  // nothing left
}

TEST_CASE("conntrack closes on RST and the sweeper deletes the entry after its grace", "[priv][packetparser][conntrack]") {
  RETINA_REQUIRE_PRIVILEGED();
  Harness h(high_config());
  Bytes syn = ipv4("10.8.0.1", "10.8.0.2", IPPROTO_TCP, tcp(1234, 22, RETINA_TCP_SYN, std::nullopt));
  Bytes rst = ipv4("10.8.0.2", "10.8.0.1", IPPROTO_TCP, tcp(22, 1234, RETINA_TCP_RST | RETINA_TCP_ACK, std::nullopt));
  h.run(syn);
  h.run(rst);
  auto evs = h.drain();
  REQUIRE(evs.size() == 2);
  CHECK(evs[1].report_reason == RETINA_REPORT_FLAGS);
  REQUIRE(h.pp.sweep(false));
  CHECK(h.stat(RETINA_STAT_CT_EXPIRED) == 0);  // still within the grace period
  CHECK(h.pp.conntrack_gauges()->connections == 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(1200));
  REQUIRE(h.pp.sweep(false));
  CHECK(h.stat(RETINA_STAT_CT_EXPIRED) == 1);
  CHECK(h.drain().empty());  // nothing was pending
  h.run(syn);
  evs = h.drain();
  REQUIRE(evs.size() == 1);
  CHECK(evs[0].report_reason == RETINA_REPORT_NEW);
}

TEST_CASE("conntrack guesses the initiator of connections seen mid-stream", "[priv][packetparser][conntrack]") {
  RETINA_REQUIRE_PRIVILEGED();
  Harness h(high_config());
  // A SYN-ACK first: its destination is the initiator.
  h.run(ipv4("10.7.0.2", "10.7.0.1", IPPROTO_TCP, tcp(443, 5555, RETINA_TCP_SYN | RETINA_TCP_ACK, std::nullopt)));
  // A bare ACK first: direction unknown, its source is taken as initiator.
  h.run(ipv4("10.7.0.3", "10.7.0.4", IPPROTO_TCP, tcp(6000, 80, RETINA_TCP_ACK, std::nullopt)));
  // UDP: the first packet's source is the initiator.
  h.run(ipv4("10.7.0.9", "10.7.0.5", IPPROTO_UDP, udp(7, 7, 1)));
  auto evs = h.drain();
  REQUIRE(evs.size() == 3);
  CHECK(evs[0].report_reason == RETINA_REPORT_NEW);
  CHECK(evs[0].flags == (RETINA_PKT_F_CT_REPORT | RETINA_PKT_F_REPLY));
  CHECK(evs[1].flags == (RETINA_PKT_F_CT_REPORT | RETINA_PKT_F_DIR_UNKNOWN));
  CHECK(evs[2].flags == RETINA_PKT_F_CT_REPORT);
  REQUIRE(h.pp.sweep(false));
  auto g = h.pp.conntrack_gauges();
  CHECK(g->connections == 3);
  CHECK(g->packets_tx == 2);
  CHECK(g->packets_rx == 1);
}

TEST_CASE("conntrack reports packets alone when its map is full", "[priv][packetparser][conntrack]") {
  RETINA_REQUIRE_PRIVILEGED();
  Config c = high_config();
  c.conntrack_max_entries = 2;
  Harness h(c);
  for (uint16_t port = 1; port <= 3; ++port) h.run(ipv4("10.6.0.1", "10.6.0.2", IPPROTO_UDP, udp(port, 9, 10)));
  auto evs = h.drain();
  REQUIRE(evs.size() == 3);
  CHECK(evs[0].report_reason == RETINA_REPORT_NEW);
  CHECK(evs[1].report_reason == RETINA_REPORT_NEW);
  CHECK(evs[2].report_reason == RETINA_REPORT_MAP_FULL);
  CHECK(evs[2].flags == RETINA_PKT_F_CT_REPORT);
  CHECK(evs[2].tuple.sport == 3);
  CHECK(h.stat(RETINA_STAT_CT_FULL) == 1);
}

TEST_CASE("packetparser exports its kernel statistics as metrics", "[priv][packetparser][metrics]") {
  RETINA_REQUIRE_PRIVILEGED();
  metrics::Registry registry;
  Config cfg = high_config();
  cfg.host_interfaces.clear();
  cfg.enable_conntrack_metrics = true;  // off by default, as in Retina
  {
    PluginServices services;
    PacketParserPlugin pp;
    PluginContext ctx;
    ctx.config = &cfg;
    ctx.registry = &registry;
    REQUIRE(services.provide(PacketParserPlugin::kNeeds, ctx));
    REQUIRE(pp.init(ctx));
    Bytes arp = ether(0x0806);
    arp.resize(42, 0);
    Bytes pkt = ipv4("10.5.0.1", "10.5.0.2", IPPROTO_UDP, udp(1, 2, 3));
    for (const auto& p : {arp, arp, pkt, pkt}) {
      LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = p.data(), .data_size_in = static_cast<uint32_t>(p.size()));
      REQUIRE(bpf_prog_test_run_opts(pp.ingress_prog_fd(), &o) == 0);
    }
    REQUIRE(pp.sweep(false));

    auto text = registry.expose();
    auto prom = test::parse_prom_text(text);
    INFO(text);
    REQUIRE(prom.error.empty());
    CHECK(prom.value("controlplane_networkobservability_lost_events_counter", {{"type", "kernel"}, {"reason", "packetparser"}}) == 0.0);
    CHECK(prom.family("controlplane_networkobservability_lost_events_counter")->type == "counter");
    CHECK(prom.value("controlplane_networkobservability_bpf_events_total", {{"plugin", "packetparser"}, {"stat", "not_ip"}}) == 2.0);
    CHECK(prom.value("controlplane_networkobservability_bpf_events_total", {{"plugin", "packetparser"}, {"stat", "reports"}}) == 1.0);
    CHECK(prom.value("controlplane_networkobservability_bpf_events_total", {{"plugin", "packetparser"}, {"stat", "ringbuf_full"}}) == std::nullopt);
    CHECK(prom.value("networkobservability_conntrack_total_connections") == 1.0);
    CHECK(prom.value("networkobservability_conntrack_packets_tx") == 2.0);
    CHECK(prom.value("networkobservability_conntrack_packets_rx") == 0.0);
    CHECK(prom.value("networkobservability_conntrack_bytes_tx") == 2.0 * pkt.size());
    CHECK(prom.family("networkobservability_conntrack_bytes_rx")->type == "gauge");
  }
  // The plugin is gone; scraping stays safe.
  auto prom = test::parse_prom_text(registry.expose());
  CHECK(prom.error.empty());

  // Retina's default: no conntrack_* gauges.
  metrics::Registry plain;
  Config off = high_config();
  off.host_interfaces.clear();
  PluginServices services;
  PacketParserPlugin pp;
  PluginContext ctx;
  ctx.config = &off;
  ctx.registry = &plain;
  REQUIRE(services.provide(PacketParserPlugin::kNeeds, ctx));
  REQUIRE(pp.init(ctx));
  auto p = test::parse_prom_text(plain.expose());
  CHECK(p.family("networkobservability_conntrack_total_connections") == nullptr);
}

TEST_CASE("packetparser's ring buffer is pollable and drains in bounded batches", "[priv][packetparser][ring_buffer]") {
  RETINA_REQUIRE_PRIVILEGED();
  Harness h(low_config());
  auto sources = h.pp.event_sources();
  REQUIRE(sources.size() == 1);
  EventSource* src = sources[0];
  CHECK(src->name() == "packetparser");
  pollfd p{src->fd(), POLLIN, 0};
  CHECK(::poll(&p, 1, 0) == 0);
  // 160 packets: ten full batches, or more records when a batch's timer
  // fired during the run.
  const uint32_t packets = 10 * RETINA_BATCH_MAX;
  h.run(ipv4("10.0.0.1", "10.0.0.2", IPPROTO_UDP, udp(1, 2, 3)), false, packets);
  REQUIRE(h.pp.wait_batches_sent() == 0);
  const uint64_t records = h.stat(RETINA_STAT_REPORTS);  // counts packets
  CHECK(records == packets);
  CHECK(::poll(&p, 1, 1000) == 1);
  struct Count {
    size_t records = 0, packets = 0;
  } n;
  auto count = [](void* user, std::span<const std::byte> rec) {
    auto* c = static_cast<Count*>(user);
    ++c->records;
    auto batch = split_batch(rec);
    REQUIRE(batch);
    c->packets += batch->count;
  };
  CHECK(src->drain(count, &n, 3) == 3);
  CHECK(::poll(&p, 1, 0) == 1);  // still records waiting
  const size_t rest = src->drain(count, &n, 1000);
  CHECK(rest >= 7);
  CHECK(src->drain(count, &n, 1000) == 0);
  CHECK(n.records == 3 + rest);
  CHECK(n.packets == packets);
  CHECK(::poll(&p, 1, 0) == 0);
}

TEST_CASE("conntrack counts every packet once with concurrent CPUs and sweeps", "[priv][packetparser][conntrack]") {
  RETINA_REQUIRE_PRIVILEGED();
  Harness h(high_config());
  // TCP ACK segments take the packed word that also stands for their ACK
  // count: that count must come out as exact as the packets'.
  const bool is_tcp = GENERATE(false, true);
  const Bytes pkt = is_tcp ? ipv4("10.4.0.1", "10.4.0.2", IPPROTO_TCP, tcp(4000, 4001, RETINA_TCP_ACK, 1u, 64))
                           : ipv4("10.4.0.1", "10.4.0.2", IPPROTO_UDP, udp(4000, 4001, 64));
  const int kPerThread = 200000;
  std::atomic<bool> done{false};
  std::atomic<int> failures{0};
  std::vector<retina_packet_event> evs;
  // No Catch2 assertions on other threads: they are not thread-safe.
  auto collect = [&] {
    auto fn = [](void* user, std::span<const std::byte> rec) {
      retina_packet_event e;
      std::memcpy(&e, rec.data(), std::min(rec.size(), sizeof e));
      static_cast<std::vector<retina_packet_event>*>(user)->push_back(e);
    };
    while (h.pp.event_sources()[0]->drain(fn, &evs, 1024)) {
    }
  };
  // Sweeps (taking pending counts) and drains while packets are added.
  std::thread sweeper([&] {
    while (!done) {
      if (!h.pp.sweep(true)) ++failures;
      collect();
    }
  });
  std::vector<std::thread> senders;
  for (int t = 0; t < 2; ++t) {
    senders.emplace_back([&] {
      LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = pkt.data(), .data_size_in = static_cast<uint32_t>(pkt.size()),
                  .repeat = kPerThread);
      if (bpf_prog_test_run_opts(h.pp.ingress_prog_fd(), &o) != 0) ++failures;
    });
  }
  for (auto& t : senders) t.join();
  done = true;
  sweeper.join();
  REQUIRE(failures == 0);
  REQUIRE(h.pp.sweep(true));
  collect();
  auto [packets, bytes] = totals(evs);
  CHECK(packets == 2u * kPerThread);
  CHECK(bytes == 2ull * kPerThread * pkt.size());
  uint64_t acks = 0;
  for (const auto& e : evs)
    acks += e.prev_flag_counts[RETINA_FLAG_IDX_ACK] +
            ((e.flags & RETINA_PKT_F_NO_PACKET) == 0 && (e.tcp_flags & RETINA_TCP_ACK) ? 1 : 0);
  CHECK(acks == (is_tcp ? 2u * kPerThread : 0u));
  CHECK(h.stat(RETINA_STAT_RINGBUF_FULL) == 0);
  CHECK(evs.size() > 2);  // the sweeper really interleaved
}

TEST_CASE("conntrack stays exact when the packed pending counts spill", "[priv][packetparser][conntrack]") {
  RETINA_REQUIRE_PRIVILEGED();
  Harness h(high_config());
  // More packets than the packed word's spill point (2^23) without a
  // report in between: the wide counters take them, and the flush carries
  // both. TCP ACK|PSH, so the packed flag counts spill too.
  const Bytes syn = ipv4("10.3.0.1", "10.3.0.2", IPPROTO_TCP, tcp(7000, 80, RETINA_TCP_SYN, 1u, 0));
  const Bytes data = ipv4("10.3.0.1", "10.3.0.2", IPPROTO_TCP, tcp(7000, 80, RETINA_TCP_ACK | RETINA_TCP_PSH, 1u, 10));
  const int kPackets = (1 << 23) + 123457;
  h.run(syn);
  h.run(data);  // FLAGS: ACK and PSH are new
  h.run(data, false, kPackets);
  REQUIRE(h.pp.sweep(false));
  auto g = h.pp.conntrack_gauges();
  REQUIRE(g);
  CHECK(g->packets_tx == 2u + kPackets);
  CHECK(g->bytes_tx == syn.size() + (1ull + kPackets) * data.size());
  REQUIRE(h.pp.sweep(true));
  auto evs = h.drain();
  REQUIRE(evs.size() == 3);
  CHECK(evs[2].prev_packets == static_cast<uint32_t>(kPackets));
  CHECK(evs[2].prev_flag_counts[RETINA_FLAG_IDX_ACK] == static_cast<uint32_t>(kPackets));
  CHECK(evs[2].prev_flag_counts[RETINA_FLAG_IDX_PSH] == static_cast<uint32_t>(kPackets));
  auto [packets, bytes] = totals(evs);
  CHECK(packets == 2u + kPackets);
  CHECK(bytes == syn.size() + (1ull + kPackets) * data.size());
  CHECK(h.stat(RETINA_STAT_REPORTS) == 3);
}
