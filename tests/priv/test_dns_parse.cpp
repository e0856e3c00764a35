// dns's cgroup_skb programs driven with BPF_PROG_TEST_RUN and crafted
// packets: which copies of a message are reported (egress, ingress,
// duplicates across DNAT, UDP resends, TCP retransmissions), TCP framing
// (length prefix, several messages per segment, continuations, data on a
// SYN), IPv6, long messages, what the records carry, and the count of
// records lost to a full ring buffer.
#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <chrono>
#include <cstring>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "plugins/dns/dns.hpp"
#include "plugins/services.hpp"
#include "retina/decoder.hpp"
#include "retina/metrics/registry.hpp"
#include "support/privileged.hpp"
#include "support/prom_text.hpp"
#include "unit/test_dns_builder.hpp"

using namespace retina;
using retina::testing::DnsMsg;

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

Bytes udp(uint16_t sport, uint16_t dport, const Bytes& payload) {
  Bytes u(8, 0);
  put16(u, 0, sport);
  put16(u, 2, dport);
  put16(u, 4, static_cast<uint16_t>(8 + payload.size()));
  append(u, payload);
  return u;
}

Bytes tcp(uint16_t sport, uint16_t dport, uint32_t seq, const Bytes& payload, uint8_t flags = 0x18 /* PSH ACK */) {
  Bytes t(20, 0);
  put16(t, 0, sport);
  put16(t, 2, dport);
  put32(t, 4, seq);
  t[12] = 5 << 4;
  t[13] = flags;
  append(t, payload);
  return t;
}

// Ethernet (which BPF_PROG_TEST_RUN strips for cgroup_skb) + IP + l4.
Bytes packet(const char* src, const char* dst, uint8_t proto, const Bytes& l4) {
  const bool v6 = std::strchr(src, ':') != nullptr;
  Bytes p = {0x02, 0, 0, 0, 0, 0x02, 0x02, 0, 0, 0, 0, 0x01, 0, 0};
  put16(p, 12, v6 ? 0x86DD : 0x0800);
  if (v6) {
    Bytes ip(40, 0);
    ip[0] = 0x60;
    put16(ip, 4, static_cast<uint16_t>(l4.size()));
    ip[6] = proto;
    ip[7] = 64;
    inet_pton(AF_INET6, src, &ip[8]);
    inet_pton(AF_INET6, dst, &ip[24]);
    append(p, ip);
  } else {
    Bytes ip(20, 0);
    ip[0] = 0x45;
    put16(ip, 2, static_cast<uint16_t>(20 + l4.size()));
    ip[8] = 64;
    ip[9] = proto;
    inet_pton(AF_INET, src, &ip[12]);
    inet_pton(AF_INET, dst, &ip[16]);
    append(p, ip);
  }
  append(p, l4);
  return p;
}

Bytes query(uint16_t id, const char* name, uint16_t qtype = 1) {
  DnsMsg m;
  m.header(id, testing::kFlagsQuery, 1, 0).question(name, qtype);
  return m.b;
}

Bytes answer(uint16_t id, const char* name, std::initializer_list<uint8_t> a) {
  DnsMsg m;
  m.header(id, testing::kFlagsResponse, 1, 1).question(name, 1).answer_a(12, a);
  return m.b;
}

// A DNS-over-TCP frame: two-byte length, then the message.
Bytes framed(const Bytes& msg) {
  Bytes f(2, 0);
  put16(f, 0, static_cast<uint16_t>(msg.size()));
  append(f, msg);
  return f;
}

struct Record {
  retina_dns_event ev{};
  Bytes payload;
  std::string query;
  uint16_t qtype = 0;
  bool response = false;
  std::vector<IpAddr> ips;
};

struct Harness {
  PluginServices services;  // outlives the plugin
  DnsPlugin dns;
  DnsPlugin::Stats base;

  explicit Harness(DnsOptions o = {}) : dns(std::move(o)) {
    PluginContext ctx;  // init only: nothing is attached to a cgroup here
    REQUIRE(services.provide(DnsPlugin::kNeeds, ctx));
    auto st = dns.init(ctx);
    if (!st) FAIL("init: " << st.error().message);
    base = *dns.stats();
  }

  void run(const Bytes& pkt, bool egress) {
    LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = pkt.data(), .data_size_in = static_cast<uint32_t>(pkt.size()),
                .repeat = 1);
    REQUIRE(bpf_prog_test_run_opts(egress ? dns.egress_prog_fd() : dns.ingress_prog_fd(), &o) == 0);
    CHECK(o.retval == 1);  // never drops
  }
  void egress(const Bytes& pkt) { run(pkt, true); }
  void ingress(const Bytes& pkt) { run(pkt, false); }

  std::vector<Record> drain() {
    std::vector<Record> out;
    auto fn = [](void* user, std::span<const std::byte> rec) {
      auto* v = static_cast<std::vector<Record>*>(user);
      Record r;
      REQUIRE(rec.size() >= offsetof(retina_dns_event, payload));
      std::memcpy(&r.ev, rec.data(), std::min(rec.size(), sizeof r.ev));
      REQUIRE(r.ev.hdr.len == offsetof(retina_dns_event, payload) + r.ev.dns_len);
      const auto* p = reinterpret_cast<const uint8_t*>(rec.data()) + offsetof(retina_dns_event, payload);
      r.payload.assign(p, p + r.ev.dns_len);
      DnsInfo info;
      DecodeContext ctx;
      ctx.dns_scratch = &info;
      Flow f;
      REQUIRE(decode(rec, ctx, f));
      r.query = info.query;
      r.qtype = info.qtype;
      r.response = info.is_response;
      r.ips = info.ips;
      v->push_back(std::move(r));
    };
    for (auto* src : dns.event_sources())
      while (src->drain(fn, &out, 1024)) {
      }
    return out;
  }

  uint64_t stat(retina_stat s) { return dns.stats()->common[s] - base.common[s]; }
  uint64_t dstat(retina_dns_stat s) { return dns.stats()->dns[s] - base.dns[s]; }
};

IpAddr src_of(const Record& r) {
  IpAddr a;
  std::memcpy(a.bytes.data(), r.ev.tuple.saddr, 16);
  return a;
}
IpAddr dst_of(const Record& r) {
  IpAddr a;
  std::memcpy(a.bytes.data(), r.ev.tuple.daddr, 16);
  return a;
}

// Distinct client ports per test case keep the shared dedup map apart.
uint16_t next_port() {
  static uint16_t p = 30000 + static_cast<uint16_t>(::getpid() % 20000);
  return ++p;
}

}  // namespace

TEST_CASE("dns reports a UDP query at the sender and skips its arrival at the receiver", "[priv][dns]") {
  RETINA_REQUIRE_PRIVILEGED();
  Harness h;
  const uint16_t port = next_port();
  const Bytes q = query(0x1111, "exists.test");
  h.egress(packet("10.200.0.3", "10.200.0.2", IPPROTO_UDP, udp(port, 53, q)));
  auto recs = h.drain();
  REQUIRE(recs.size() == 1);
  const auto& r = recs[0];
  CHECK(r.ev.hdr.type == RETINA_EV_DNS);
  CHECK(r.ev.hdr.version == RETINA_DNS_EVENT_VERSION);
  CHECK(r.ev.hdr.ts_ns > 0);
  CHECK(r.ev.obs_point == RETINA_OBS_TO_NETWORK);
  CHECK(src_of(r) == *IpAddr::parse("10.200.0.3"));
  CHECK(dst_of(r) == *IpAddr::parse("10.200.0.2"));
  CHECK(r.ev.tuple.sport == port);
  CHECK(r.ev.tuple.dport == 53);
  CHECK(r.ev.tuple.proto == IPPROTO_UDP);
  CHECK(r.ev.tuple.family == 4);
  CHECK(r.ev.dns_len == q.size());
  CHECK(r.ev.wire_len == q.size());
  CHECK(r.payload == q);
  CHECK(r.query == "exists.test.");
  CHECK(r.qtype == 1);
  CHECK_FALSE(r.response);

  h.ingress(packet("10.200.0.3", "10.200.0.2", IPPROTO_UDP, udp(port, 53, q)));
  CHECK(h.drain().empty());
  CHECK(h.dstat(RETINA_DNS_STAT_DUPLICATE) == 1);

  // The answer from the local server, then its arrival at the client.
  const Bytes a = answer(0x1111, "exists.test", {10, 9, 9, 9});
  h.egress(packet("10.200.0.2", "10.200.0.3", IPPROTO_UDP, udp(53, port, a)));
  h.ingress(packet("10.200.0.2", "10.200.0.3", IPPROTO_UDP, udp(53, port, a)));
  recs = h.drain();
  REQUIRE(recs.size() == 1);
  CHECK(recs[0].ev.obs_point == RETINA_OBS_TO_NETWORK);
  CHECK(recs[0].response);
  REQUIRE(recs[0].ips.size() == 1);
  CHECK(recs[0].ips[0] == *IpAddr::parse("10.9.9.9"));
  CHECK(h.dstat(RETINA_DNS_STAT_DUPLICATE) == 2);
  CHECK(h.stat(RETINA_STAT_REPORTS) == 2);
  CHECK(h.stat(RETINA_STAT_RINGBUF_FULL) == 0);
}

TEST_CASE("dns reports a message no local socket sent at its ingress", "[priv][dns]") {
  RETINA_REQUIRE_PRIVILEGED();
  Harness h;
  const uint16_t port = next_port();
  // A local client asks an outside server; the answer only arrives.
  h.egress(packet("10.200.0.3", "8.8.8.8", IPPROTO_UDP, udp(port, 53, query(0x2222, "outside.test"))));
  h.ingress(packet("8.8.8.8", "10.200.0.3", IPPROTO_UDP, udp(53, port, answer(0x2222, "outside.test", {1, 2, 3, 4}))));
  // An outside client asks a local server.
  const uint16_t port2 = next_port();
  h.ingress(packet("192.0.2.9", "10.200.0.2", IPPROTO_UDP, udp(port2, 53, query(0x3333, "inside.test"))));
  auto recs = h.drain();
  REQUIRE(recs.size() == 3);
  CHECK(recs[0].ev.obs_point == RETINA_OBS_TO_NETWORK);
  CHECK_FALSE(recs[0].response);
  CHECK(recs[1].ev.obs_point == RETINA_OBS_FROM_NETWORK);
  CHECK(recs[1].response);
  CHECK(recs[1].query == "outside.test.");
  CHECK(recs[2].ev.obs_point == RETINA_OBS_FROM_NETWORK);
  CHECK(recs[2].query == "inside.test.");
  CHECK(h.dstat(RETINA_DNS_STAT_DUPLICATE) == 0);
}

TEST_CASE("dns matches copies across DNAT by the client side", "[priv][dns]") {
  RETINA_REQUIRE_PRIVILEGED();
  Harness h;
  const uint16_t port = next_port();
  const Bytes q = query(0x4444, "svc.test");
  const Bytes a = answer(0x4444, "svc.test", {10, 1, 1, 1});
  // The client asks the Service IP; the backend pod receives it DNATed.
  h.egress(packet("10.200.0.3", "10.96.0.10", IPPROTO_UDP, udp(port, 53, q)));
  h.ingress(packet("10.200.0.3", "10.244.1.5", IPPROTO_UDP, udp(port, 53, q)));
  // The backend answers; the client sees the Service IP again.
  h.egress(packet("10.244.1.5", "10.200.0.3", IPPROTO_UDP, udp(53, port, a)));
  h.ingress(packet("10.96.0.10", "10.200.0.3", IPPROTO_UDP, udp(53, port, a)));
  auto recs = h.drain();
  REQUIRE(recs.size() == 2);
  CHECK(dst_of(recs[0]) == *IpAddr::parse("10.96.0.10"));
  CHECK(src_of(recs[1]) == *IpAddr::parse("10.244.1.5"));
  CHECK(h.dstat(RETINA_DNS_STAT_DUPLICATE) == 2);
}

TEST_CASE("dns counts every UDP send, and each arrival consumes one", "[priv][dns]") {
  RETINA_REQUIRE_PRIVILEGED();
  Harness h;
  const uint16_t port = next_port();
  const Bytes pkt = packet("10.200.0.3", "10.200.0.2", IPPROTO_UDP, udp(port, 53, query(0x5555, "again.test")));
  h.egress(pkt);  // a resend with the same id and port
  h.egress(pkt);
  h.ingress(pkt);
  h.ingress(pkt);
  CHECK(h.drain().size() == 2);
  CHECK(h.dstat(RETINA_DNS_STAT_DUPLICATE) == 2);
  h.ingress(pkt);  // a third arrival no local socket sent
  CHECK(h.drain().size() == 1);
}

TEST_CASE("dns forgets an unmatched UDP copy after its TTL", "[priv][dns]") {
  RETINA_REQUIRE_PRIVILEGED();
  DnsOptions o;
  o.udp_pending_ttl = std::chrono::milliseconds(200);
  Harness h(o);
  const uint16_t port = next_port();
  const Bytes pkt = packet("10.200.0.3", "10.200.0.2", IPPROTO_UDP, udp(port, 53, query(0x6666, "late.test")));
  h.egress(pkt);
  std::this_thread::sleep_for(std::chrono::milliseconds(400));
  h.ingress(pkt);
  CHECK(h.drain().size() == 2);
  CHECK(h.dstat(RETINA_DNS_STAT_DUPLICATE) == 0);
}

TEST_CASE("dns reads IPv6 and skips traffic off port 53", "[priv][dns]") {
  RETINA_REQUIRE_PRIVILEGED();
  Harness h;
  const uint16_t port = next_port();
  h.egress(packet("fd00:200::3", "fd00:200::2", IPPROTO_UDP, udp(port, 53, query(0x7777, "v6.test", 28))));
  h.egress(packet("fd00:200::3", "fd00:200::2", IPPROTO_UDP, udp(port, 5353, query(0x7778, "mdns.test"))));
  h.egress(packet("10.200.0.3", "10.200.0.2", IPPROTO_TCP, tcp(port, 80, 1, framed(query(1, "http.test")))));
  auto recs = h.drain();
  REQUIRE(recs.size() == 1);
  CHECK(recs[0].ev.tuple.family == 6);
  CHECK(src_of(recs[0]) == *IpAddr::parse("fd00:200::3"));
  CHECK(recs[0].qtype == 28);
  CHECK(h.dstat(RETINA_DNS_STAT_NO_MESSAGE) == 0);

  // Port 53 but too short for a DNS header.
  h.egress(packet("10.200.0.3", "10.200.0.2", IPPROTO_UDP, udp(port, 53, Bytes(11, 0))));
  CHECK(h.drain().empty());
  CHECK(h.dstat(RETINA_DNS_STAT_NO_MESSAGE) == 1);
}

TEST_CASE("dns cuts long messages to the payload size and says so", "[priv][dns]") {
  RETINA_REQUIRE_PRIVILEGED();
  Harness h;
  const uint16_t port = next_port();
  DnsMsg m;
  m.header(0x0808, testing::kFlagsResponse, 1, 60).question("big.test", 1);
  for (int i = 0; i < 60; ++i) m.answer_a(12, {10, 0, 0, static_cast<uint8_t>(i)});
  REQUIRE(m.size() > RETINA_DNS_MAX_PAYLOAD);
  h.ingress(packet("192.0.2.1", "10.200.0.3", IPPROTO_UDP, udp(53, port, m.b)));
  auto recs = h.drain();
  REQUIRE(recs.size() == 1);
  CHECK(recs[0].ev.dns_len == RETINA_DNS_MAX_PAYLOAD);
  CHECK(recs[0].ev.wire_len == m.size());
  CHECK(recs[0].query == "big.test.");
  CHECK(recs[0].ips.size() == (RETINA_DNS_MAX_PAYLOAD - 26) / 16);  // the answers that fit
  CHECK(h.dstat(RETINA_DNS_STAT_CUT) == 1);
}

TEST_CASE("dns over TCP: framing, several messages per segment, retransmissions", "[priv][dns]") {
  RETINA_REQUIRE_PRIVILEGED();
  Harness h;
  const uint16_t port = next_port();
  const Bytes q1 = query(0x0101, "one.test");
  const Bytes q2 = query(0x0102, "two.test", 28);
  const uint32_t seq = 1000;

  SECTION("one message per segment; the retransmission and the arrival are duplicates") {
    const Bytes seg = packet("10.200.0.3", "10.200.0.2", IPPROTO_TCP, tcp(port, 53, seq, framed(q1)));
    h.egress(seg);
    h.egress(seg);   // retransmitted: behind where the next message starts
    h.ingress(seg);  // received: a copy of a reported message
    h.ingress(seg);  // received again: behind the next message start
    auto recs = h.drain();
    REQUIRE(recs.size() == 1);
    CHECK(recs[0].ev.tuple.proto == IPPROTO_TCP);
    CHECK(recs[0].ev.wire_len == q1.size());
    CHECK(recs[0].payload == q1);
    CHECK(recs[0].query == "one.test.");
    CHECK(h.dstat(RETINA_DNS_STAT_DUPLICATE) == 1);
    // The next message on the connection has a new sequence number.
    const uint32_t next = seq + static_cast<uint32_t>(framed(q1).size());
    h.egress(packet("10.200.0.3", "10.200.0.2", IPPROTO_TCP, tcp(port, 53, next, framed(q1))));
    CHECK(h.drain().size() == 1);
  }
  SECTION("two messages and the start of a third in one segment") {
    Bytes payload = framed(q1);
    append(payload, framed(q2));
    const Bytes third = framed(query(0x0103, "three.test"));
    payload.insert(payload.end(), third.begin(), third.begin() + 6);  // header cut short
    h.ingress(packet("192.0.2.7", "10.200.0.2", IPPROTO_TCP, tcp(port, 53, seq, payload)));
    auto recs = h.drain();
    REQUIRE(recs.size() == 2);
    CHECK(recs[0].query == "one.test.");
    CHECK(recs[1].query == "two.test.");
    CHECK(recs[1].qtype == 28);
    CHECK(recs[0].ev.obs_point == RETINA_OBS_FROM_NETWORK);
    CHECK(h.stat(RETINA_STAT_TRUNCATED) == 1);
    // The second message's copy (same sequence number) is known.
    const uint32_t seq2 = seq + static_cast<uint32_t>(framed(q1).size());
    h.ingress(packet("192.0.2.7", "10.200.0.2", IPPROTO_TCP, tcp(port, 53, seq2, framed(q2))));
    CHECK(h.drain().empty());
  }
  SECTION("a message split over two segments") {
    DnsMsg big;
    big.header(0x0104, testing::kFlagsResponse, 1, 40).question("split.test", 1);
    for (int i = 0; i < 40; ++i) big.answer_a(12, {10, 0, 1, static_cast<uint8_t>(i)});
    const Bytes f = framed(big.b);
    const Bytes first(f.begin(), f.begin() + 300), rest(f.begin() + 300, f.end());
    h.ingress(packet("192.0.2.8", "10.200.0.3", IPPROTO_TCP, tcp(53, port, seq, first)));
    h.ingress(packet("192.0.2.8", "10.200.0.3", IPPROTO_TCP, tcp(53, port, seq + 300, rest)));
    auto recs = h.drain();
    REQUIRE(recs.size() == 1);
    CHECK(recs[0].ev.dns_len == 298);
    CHECK(recs[0].ev.wire_len == big.size());
    CHECK(recs[0].query == "split.test.");
    CHECK(h.dstat(RETINA_DNS_STAT_CUT) == 1);
    CHECK(h.dstat(RETINA_DNS_STAT_NO_MESSAGE) == 0);  // the continuation was expected
    // The next message after it is found again.
    const uint32_t after = seq + static_cast<uint32_t>(f.size());
    h.ingress(packet("192.0.2.8", "10.200.0.3", IPPROTO_TCP,
                     tcp(53, port, after, framed(answer(0x0105, "after.test", {10, 0, 2, 1})))));
    recs = h.drain();
    REQUIRE(recs.size() == 1);
    CHECK(recs[0].query == "after.test.");

    // A stream picked up in the middle of a message: no message starts here.
    const Bytes mid(f.begin() + 301, f.end());
    h.ingress(packet("192.0.2.8", "10.200.0.3", IPPROTO_TCP, tcp(53, next_port(), seq + 301, mid)));
    CHECK(h.drain().empty());
    CHECK(h.dstat(RETINA_DNS_STAT_NO_MESSAGE) == 1);
  }
  SECTION("the header of the last message runs into the next segment") {
    const Bytes f = framed(answer(0x0106, "late-header.test", {10, 0, 3, 1}));
    Bytes first = framed(q1);
    first.insert(first.end(), f.begin(), f.begin() + 8);
    const Bytes rest(f.begin() + 8, f.end());
    h.egress(packet("10.200.0.3", "10.200.0.2", IPPROTO_TCP, tcp(port, 53, seq, first)));
    const uint32_t seq2 = seq + static_cast<uint32_t>(first.size());
    h.egress(packet("10.200.0.3", "10.200.0.2", IPPROTO_TCP, tcp(port, 53, seq2, rest)));
    const uint32_t seq3 = seq2 + static_cast<uint32_t>(rest.size());
    h.egress(packet("10.200.0.3", "10.200.0.2", IPPROTO_TCP, tcp(port, 53, seq3, framed(q2))));
    auto recs = h.drain();
    REQUIRE(recs.size() == 2);  // the one with the split header is counted as truncated
    CHECK(recs[0].query == "one.test.");
    CHECK(recs[1].query == "two.test.");
    CHECK(h.stat(RETINA_STAT_TRUNCATED) == 1);
    CHECK(h.dstat(RETINA_DNS_STAT_NO_MESSAGE) == 0);
  }
  SECTION("the length prefix in a segment of its own") {
    const Bytes f = framed(q1);
    const Bytes len_only(f.begin(), f.begin() + 2), body(f.begin() + 2, f.end());
    h.egress(packet("10.200.0.3", "10.200.0.2", IPPROTO_TCP, tcp(port, 53, seq, len_only)));
    h.egress(packet("10.200.0.3", "10.200.0.2", IPPROTO_TCP, tcp(port, 53, seq + 2, body)));
    // The receiver gets it in one piece: the same message.
    h.ingress(packet("10.200.0.3", "10.200.0.2", IPPROTO_TCP, tcp(port, 53, seq, f)));
    const uint32_t seq2 = seq + static_cast<uint32_t>(f.size());
    h.egress(packet("10.200.0.3", "10.200.0.2", IPPROTO_TCP, tcp(port, 53, seq2, framed(q2))));
    auto recs = h.drain();
    REQUIRE(recs.size() == 2);
    CHECK(recs[0].query == "one.test.");
    CHECK(recs[0].ev.wire_len == q1.size());
    CHECK(recs[0].payload == q1);
    CHECK(recs[1].query == "two.test.");
    CHECK(h.dstat(RETINA_DNS_STAT_DUPLICATE) == 1);
    CHECK(h.dstat(RETINA_DNS_STAT_NO_MESSAGE) == 0);
    CHECK(h.stat(RETINA_STAT_TRUNCATED) == 0);
  }
  SECTION("segments without payload, and data on a SYN") {
    h.egress(packet("10.200.0.3", "10.200.0.2", IPPROTO_TCP, tcp(port, 53, seq, {}, 0x02)));
    h.egress(packet("10.200.0.3", "10.200.0.2", IPPROTO_TCP, tcp(port, 53, seq, {}, 0x10)));
    CHECK(h.drain().empty());
    CHECK(h.dstat(RETINA_DNS_STAT_NO_MESSAGE) == 0);
    // Fast Open: the data's first byte is seq + 1, as in the next segment.
    h.egress(packet("10.200.0.3", "10.200.0.2", IPPROTO_TCP, tcp(port, 53, seq, framed(q1), 0x02)));
    h.ingress(packet("10.200.0.3", "10.200.0.2", IPPROTO_TCP, tcp(port, 53, seq + 1, framed(q1))));
    CHECK(h.drain().size() == 1);
    CHECK(h.dstat(RETINA_DNS_STAT_DUPLICATE) == 1);
  }
}

TEST_CASE("dns counts the records a full ring buffer could not take", "[priv][dns]") {
  RETINA_REQUIRE_PRIVILEGED();
  metrics::Registry registry;
  DnsOptions o;
  o.ring_buffer_size = static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
  PluginServices services;
  DnsPlugin dns(o);
  PluginContext ctx;
  ctx.registry = &registry;
  REQUIRE(services.provide(DnsPlugin::kNeeds, ctx));
  REQUIRE(dns.init(ctx));
  const Bytes pkt = packet("10.200.0.3", "10.200.0.2", IPPROTO_UDP, udp(next_port(), 53, query(0x0909, "full.test")));
  const int runs = 50;  // each a new send of the query: each is reported
  LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = pkt.data(), .data_size_in = static_cast<uint32_t>(pkt.size()),
              .repeat = runs);
  REQUIRE(bpf_prog_test_run_opts(dns.egress_prog_fd(), &opts) == 0);
  size_t records = 0;
  auto count = [](void* user, std::span<const std::byte>) { ++*static_cast<size_t*>(user); };
  for (auto* src : dns.event_sources())
    while (src->drain(count, &records, 1024)) {
    }
  const auto s = *dns.stats();
  CHECK(records > 0);
  CHECK(records < static_cast<size_t>(runs));
  CHECK(s.common[RETINA_STAT_REPORTS] == records);
  CHECK(s.common[RETINA_STAT_RINGBUF_FULL] == runs - records);
  auto prom = test::parse_prom_text(registry.expose());
  REQUIRE(prom.error.empty());
  CHECK(prom.value("controlplane_networkobservability_lost_events_counter", {{"type", "kernel"}, {"reason", "dns"}}) ==
        static_cast<double>(runs - records));
  CHECK(prom.value("controlplane_networkobservability_bpf_events_total", {{"plugin", "dns"}, {"stat", "reports"}}) ==
        static_cast<double>(records));
}
