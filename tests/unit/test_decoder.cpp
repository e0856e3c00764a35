#include <catch2/catch.hpp>

#include <time.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>
#include <string>
#include <vector>

#include "retina/decoder.hpp"
#include "test_decoder_records.hpp"
#include "test_dns_builder.hpp"

using namespace retina;
using namespace retina::testing;

namespace {

DecodeError reject(std::span<const std::byte> rec, const DecodeContext& ctx = {}) {
  Flow f;
  auto r = decode(rec, ctx, f);
  REQUIRE_FALSE(r);
  return r.error();
}

template <class T>
DecodeError reject_ev(const T& ev, const DecodeContext& ctx = {}) {
  auto rec = record_of(ev);
  return reject(rec, ctx);
}

template <class T>
Flow accept_ev(const T& ev, const DecodeContext& ctx = {}) {
  auto rec = record_of(ev);
  Flow f;
  auto r = decode(rec, ctx, f);
  INFO("error " << (r ? "" : to_string(r.error())));
  REQUIRE(r);
  return f;
}

}  // namespace

TEST_CASE("decoder: packet event maps every field", "[decoder]") {
  auto ev = packet_event(5'000);
  ev.flags = RETINA_PKT_F_REPLY | RETINA_PKT_F_CT_REPORT;
  ev.tcp_flags = RETINA_TCP_SYN | RETINA_TCP_ACK | RETINA_TCP_NS;
  ev.report_reason = RETINA_REPORT_FLAGS;
  ev.prev_packets = 9;
  ev.prev_bytes = 12345678901ull;
  ev.tcp_id = 0xdeadbeef;
  for (uint32_t i = 0; i < RETINA_FLAG_IDX_MAX; ++i) ev.prev_flag_counts[i] = i + 1;

  DecodeContext ctx;
  ctx.boot_to_realtime_ns = 1'700'000'000'000'000'000;
  Flow f = accept_ev(ev, ctx);
  CHECK(f.time_ns == 1'700'000'000'000'005'000ull);
  CHECK(f.origin == FlowSource::kPacketParser);
  CHECK(f.verdict == Verdict::FORWARDED);
  CHECK(f.src == *IpAddr::parse("10.0.0.1"));
  CHECK(f.dst == *IpAddr::parse("10.0.0.2"));
  CHECK(f.ip_version == IpVersion::IPv4);
  CHECK(f.proto == L4Protocol::kTCP);
  CHECK(f.src_port == 40000);
  CHECK(f.dst_port == 80);
  CHECK(f.tcp_flags == (kSYN | kACK | kNS));
  CHECK(f.observation_point == TraceObservationPoint::TO_STACK);
  CHECK(f.direction == TrafficDirection::EGRESS);
  CHECK(f.event_type == 4);
  CHECK(f.event_sub_type == 3);
  CHECK(f.is_reply);
  CHECK(f.is_reply_known);
  CHECK(f.ifindex == 7);
  CHECK(f.has_packet);
  CHECK(f.bytes == 60);
  CHECK(f.prev_packets == 9);
  CHECK(f.prev_bytes == 12345678901ull);
  CHECK(f.packets() == 10);
  CHECK(f.total_bytes() == 12345678961ull);
  for (uint32_t i = 0; i < RETINA_FLAG_IDX_MAX; ++i) CHECK(f.prev_flag_counts[i] == i + 1);
  CHECK(f.tcp_id == 0xdeadbeef);
  CHECK(f.dns == nullptr);
  CHECK(f.l7_type == L7Type::UNKNOWN_L7_TYPE);
  CHECK(f.drop_reason_desc.empty());
  CHECK(f.source == nullptr);
  CHECK(f.destination == nullptr);
}

TEST_CASE("decoder: observation points map as Retina does", "[decoder]") {
  struct Row {
    uint8_t obs;
    TraceObservationPoint point;
    TrafficDirection dir;
    uint8_t sub;
  };
  const Row rows[] = {
      {RETINA_OBS_FROM_ENDPOINT, TraceObservationPoint::TO_STACK, TrafficDirection::EGRESS, 3},
      {RETINA_OBS_TO_ENDPOINT, TraceObservationPoint::TO_ENDPOINT, TrafficDirection::INGRESS, 0},
      {RETINA_OBS_FROM_NETWORK, TraceObservationPoint::FROM_NETWORK, TrafficDirection::INGRESS, 10},
      {RETINA_OBS_TO_NETWORK, TraceObservationPoint::TO_NETWORK, TrafficDirection::EGRESS, 11},
      {RETINA_OBS_KERNEL, TraceObservationPoint::UNKNOWN_POINT, TrafficDirection::TRAFFIC_DIRECTION_UNKNOWN, 0},
  };
  for (const auto& row : rows) {
    auto ev = packet_event();
    ev.obs_point = row.obs;
    Flow f = accept_ev(ev);
    CHECK(f.observation_point == row.point);
    CHECK(f.direction == row.dir);
    CHECK(f.event_sub_type == row.sub);
  }
}

TEST_CASE("decoder: packet flags", "[decoder]") {
  SECTION("direction unknown") {
    auto ev = packet_event();
    ev.flags = RETINA_PKT_F_DIR_UNKNOWN;
    Flow f = accept_ev(ev);
    CHECK_FALSE(f.is_reply);
    CHECK_FALSE(f.is_reply_known);
  }
  SECTION("flush without a packet") {
    auto ev = packet_event();
    ev.flags = RETINA_PKT_F_NO_PACKET | RETINA_PKT_F_CT_REPORT;
    ev.bytes = 0;
    ev.prev_packets = 4;
    ev.prev_bytes = 400;
    ev.report_reason = RETINA_REPORT_TIMEOUT;
    Flow f = accept_ev(ev);
    CHECK_FALSE(f.has_packet);
    CHECK(f.packets() == 4);
    CHECK(f.total_bytes() == 400);
  }
  SECTION("UDP over IPv6 carries no TCP flags") {
    auto ev = packet_event();
    ev.tuple = tcp_tuple("fd00::10", "fd00::20", 53, 5353, 17);
    ev.tcp_flags = RETINA_TCP_SYN;
    Flow f = accept_ev(ev);
    CHECK(f.ip_version == IpVersion::IPv6);
    CHECK(f.proto == L4Protocol::kUDP);
    CHECK(f.src == *IpAddr::parse("fd00::10"));
    CHECK(f.tcp_flags == 0);
  }
  SECTION("ICMP") {
    auto ev = packet_event();
    ev.tuple = tcp_tuple("10.1.0.1", "10.1.0.2", 0, 0, 1);
    CHECK(accept_ev(ev).proto == L4Protocol::kICMPv4);
    ev.tuple = tcp_tuple("fd00::1", "fd00::2", 0, 0, 58);
    CHECK(accept_ev(ev).proto == L4Protocol::kICMPv6);
  }
}

TEST_CASE("decoder: records padded past hdr.len are accepted", "[decoder]") {
  auto ev = packet_event();
  auto rec = record_of(ev, sizeof ev + 8);
  Flow f;
  REQUIRE(decode(rec, {}, f));
  CHECK(f.bytes == 60);
}

TEST_CASE("decoder: header rejects", "[decoder]") {
  auto ev = packet_event();
  SECTION("shorter than the header") {
    for (size_t n = 0; n < sizeof(retina_event_hdr); ++n) {
      auto rec = record_of(ev, n);
      CHECK(reject(rec) == DecodeError::kTooShort);
    }
  }
  SECTION("hdr.len larger than the record") {
    auto rec = record_of(ev, sizeof ev - 8);
    CHECK(reject(rec) == DecodeError::kLengthMismatch);
  }
  SECTION("hdr.len smaller than the header") {
    ev.hdr.len = 8;
    CHECK(reject_ev(ev) == DecodeError::kLengthMismatch);
  }
  SECTION("unknown types") {
    for (uint16_t t : {uint16_t{0}, uint16_t{RETINA_EV_MAX}, uint16_t{0xffff}}) {
      ev.hdr.type = t;
      CHECK(reject_ev(ev) == DecodeError::kUnknownType);
    }
  }
  SECTION("versions newer than the decoder, and version 0") {
    ev.hdr.version = RETINA_PACKET_EVENT_VERSION + 1;
    CHECK(reject_ev(ev) == DecodeError::kUnsupportedVersion);
    ev.hdr.version = 0;
    CHECK(reject_ev(ev) == DecodeError::kUnsupportedVersion);
  }
  SECTION("hdr.len shorter than the type's struct") {
    ev.hdr.len = sizeof ev - 8;
    CHECK(reject_ev(ev) == DecodeError::kTooShort);
    auto drop = drop_event();
    drop.hdr.len = sizeof drop - 1;
    CHECK(reject_ev(drop) == DecodeError::kTooShort);
    auto rt = tcpretrans_event();
    rt.hdr.len = sizeof(retina_event_hdr);
    CHECK(reject_ev(rt) == DecodeError::kTooShort);
  }
}

TEST_CASE("decoder: impossible packet fields", "[decoder]") {
  auto bad = [](auto mutate) {
    auto ev = packet_event();
    mutate(ev);
    return reject_ev(ev);
  };
  CHECK(bad([](auto& e) { e.tuple.family = 5; }) == DecodeError::kBadField);
  CHECK(bad([](auto& e) { e.tuple.family = 0; }) == DecodeError::kBadField);
  CHECK(bad([](auto& e) { e.tuple.saddr[0] = 1; }) == DecodeError::kBadField);  // family 4, not v4-mapped
  CHECK(bad([](auto& e) { e.tuple.daddr[10] = 0; }) == DecodeError::kBadField);
  CHECK(bad([](auto& e) { e.tuple.proto = 47; }) == DecodeError::kBadField);
  CHECK(bad([](auto& e) { e.obs_point = RETINA_OBS_MAX; }) == DecodeError::kBadField);
  CHECK(bad([](auto& e) { e.flags = 0x10; }) == DecodeError::kBadField);
  CHECK(bad([](auto& e) { e.tcp_flags = 0x200; }) == DecodeError::kBadField);
  CHECK(bad([](auto& e) { e.report_reason = RETINA_REPORT_MAP_FULL + 1; }) == DecodeError::kBadField);
}

TEST_CASE("decoder: drop event", "[decoder]") {
  std::vector<std::string> names(8);
  names[6] = "NETFILTER_DROP";
  DecodeContext ctx;
  ctx.drop_reason_names = &names;
  auto ev = drop_event();
  Flow f = accept_ev(ev, ctx);
  CHECK(f.origin == FlowSource::kDropReason);
  CHECK(f.verdict == Verdict::DROPPED);
  CHECK(f.event_type == 1);
  CHECK(f.direction == TrafficDirection::INGRESS);
  CHECK(f.observation_point == TraceObservationPoint::UNKNOWN_POINT);
  CHECK(f.src == *IpAddr::parse("10.0.0.3"));
  CHECK(f.dst_port == 443);
  CHECK(f.ifindex == 3);
  CHECK(f.bytes == 74);
  CHECK(f.packets() == 1);
  CHECK(f.drop_reason == 6);
  CHECK(f.drop_reason_desc == "NETFILTER_DROP");
  CHECK(f.drop_reason_desc.data() == names[6].data());
  CHECK(f.suppressed == 5);
  CHECK(f.time_ns == 2000);

  SECTION("egress and unknown direction") {
    ev.direction = 2;
    CHECK(accept_ev(ev).direction == TrafficDirection::EGRESS);
    ev.direction = 0;
    CHECK(accept_ev(ev).direction == TrafficDirection::TRAFFIC_DIRECTION_UNKNOWN);
    ev.direction = 3;
    CHECK(reject_ev(ev) == DecodeError::kBadField);
  }
  SECTION("reason without a name") {
    ev.reason = 7;  // empty entry
    CHECK(accept_ev(ev, ctx).drop_reason_desc == "UNKNOWN");
    ev.reason = 100;  // past the table
    CHECK(accept_ev(ev, ctx).drop_reason_desc == "UNKNOWN");
    CHECK(accept_ev(ev).drop_reason_desc == "UNKNOWN");  // no table
  }
  SECTION("non-IP packet: zero tuple") {
    ev.tuple = retina_tuple{};
    Flow g = accept_ev(ev);
    CHECK(g.ip_version == IpVersion::IP_NOT_USED);
    CHECK(g.proto == L4Protocol::kNone);
    CHECK(g.src.is_unspecified());
    ev.tuple.proto = 6;  // family 0 with a protocol is not a non-IP packet
    CHECK(reject_ev(ev) == DecodeError::kBadField);
  }
}

TEST_CASE("decoder: tcpretrans event", "[decoder]") {
  auto ev = tcpretrans_event();
  Flow f = accept_ev(ev);
  CHECK(f.origin == FlowSource::kTcpRetrans);
  CHECK(f.verdict == Verdict::RETRANSMISSION);
  CHECK(f.direction == TrafficDirection::EGRESS);
  CHECK(f.event_type == 4);
  CHECK(f.tcp_state == 1);
  CHECK(f.tcp_flags == (kPSH | kACK));
  CHECK(f.ip_version == IpVersion::IPv6);
  CHECK(f.src == *IpAddr::parse("fd00::1"));
  CHECK(f.src_port == 5555);
  CHECK(f.dst_port == 8080);
  CHECK(f.time_ns == 3000);

  ev.tuple.proto = 17;
  CHECK(reject_ev(ev) == DecodeError::kBadField);
  ev = tcpretrans_event();
  ev.tcp_flags = 0x400;
  CHECK(reject_ev(ev) == DecodeError::kBadField);
}

TEST_CASE("decoder: dns events", "[decoder]") {
  DnsInfo scratch;
  DecodeContext ctx;
  ctx.dns_scratch = &scratch;

  SECTION("query, full struct") {
    auto q = example_query();
    auto rec = dns_record(q.span(), true);
    Flow f;
    REQUIRE(decode(rec, ctx, f));
    CHECK(f.origin == FlowSource::kDns);
    CHECK(f.verdict == Verdict::DNS);
    CHECK(f.event_type == 129);
    CHECK(f.event_sub_type == 0);
    CHECK(f.l7_type == L7Type::REQUEST);
    CHECK_FALSE(f.is_reply);
    CHECK(f.is_reply_known);
    CHECK(f.dns == &scratch);
    CHECK(scratch.query == "example.com.");
    CHECK(f.proto == L4Protocol::kUDP);
    CHECK(f.dst_port == 53);
    CHECK(f.observation_point == TraceObservationPoint::TO_NETWORK);
    CHECK(f.direction == TrafficDirection::EGRESS);
    CHECK(f.ifindex == 2);
  }
  SECTION("response in a record that ends after the message") {
    auto r = example_response();
    auto rec = dns_record(r.span(), false);
    Flow f;
    REQUIRE(decode(rec, ctx, f));
    CHECK(f.l7_type == L7Type::RESPONSE);
    CHECK(f.is_reply);
    REQUIRE(f.dns);
    CHECK(f.dns->ips.size() == 3);
  }
  SECTION("cut capture keeps the answers that fit") {
    auto r = example_response();
    const size_t keep = r.size() - 10;  // inside the AAAA record
    auto rec = dns_record(r.prefix(keep), false, static_cast<uint32_t>(r.size()));
    Flow f;
    REQUIRE(decode(rec, ctx, f));
    CHECK(f.dns->ips.size() == 2);
    CHECK(f.dns->answer_count == 4);
  }
  SECTION("a complete capture that is truncated is malformed") {
    auto r = example_response();
    auto rec = dns_record(r.prefix(r.size() - 10), false);
    CHECK(reject(rec, ctx) == DecodeError::kDnsMalformed);
  }
  SECTION("rejects") {
    auto q = example_query();
    CHECK(reject(dns_record(q.span()), DecodeContext{}) == DecodeError::kDnsMalformed);  // no scratch
    std::vector<std::byte> junk(20, std::byte{0});
    CHECK(reject(dns_record(junk), ctx) == DecodeError::kDnsMalformed);

    auto patch = [&](auto mutate) {
      auto rec = dns_record(q.span(), true);
      retina_dns_event ev;
      std::memcpy(&ev, rec.data(), rec.size());
      mutate(ev);
      std::memcpy(rec.data(), &ev, rec.size());
      return reject(rec, ctx);
    };
    CHECK(patch([](auto& e) { e.dns_len = RETINA_DNS_MAX_PAYLOAD + 1; }) == DecodeError::kBadField);
    CHECK(patch([](auto& e) { e.wire_len = e.dns_len - 1; }) == DecodeError::kBadField);
    CHECK(patch([](auto& e) { e.obs_point = 200; }) == DecodeError::kBadField);
    CHECK(patch([](auto& e) { e.tuple.family = 9; }) == DecodeError::kBadField);
    // dns_len past hdr.len.
    auto rec = dns_record(q.span(), false);
    rec.resize(rec.size() - 1);
    retina_dns_event ev{};
    std::memcpy(&ev, rec.data(), offsetof(retina_dns_event, payload));
    ev.hdr.len = static_cast<uint16_t>(rec.size());
    std::memcpy(rec.data(), &ev, offsetof(retina_dns_event, payload));
    CHECK(reject(rec, ctx) == DecodeError::kBadField);
    // Shorter than the fixed part.
    rec.resize(offsetof(retina_dns_event, payload) - 1);
    ev.hdr.len = static_cast<uint16_t>(rec.size());
    std::memcpy(rec.data(), &ev, sizeof(retina_event_hdr));
    CHECK(reject(rec, ctx) == DecodeError::kTooShort);
  }
}

TEST_CASE("decoder: success overwrites every field of the previous flow", "[decoder]") {
  DnsInfo scratch;
  DecodeContext ctx;
  ctx.dns_scratch = &scratch;
  std::vector<std::string> names = {"A", "B"};
  ctx.drop_reason_names = &names;
  auto q = example_response();
  Flow f;
  REQUIRE(decode(dns_record(q.span()), ctx, f));
  Endpoint ep;
  f.source = &ep;
  auto drop = drop_event();
  drop.reason = 1;
  REQUIRE(decode(record_of(drop), ctx, f));
  CHECK(f.dns == nullptr);
  CHECK(f.source == nullptr);
  CHECK(f.l7_type == L7Type::UNKNOWN_L7_TYPE);
  CHECK(f.drop_reason_desc == "B");
  REQUIRE(decode(record_of(packet_event()), ctx, f));
  CHECK(f.drop_reason == 0);
  CHECK(f.drop_reason_desc.empty());
  CHECK(f.suppressed == 0);
  CHECK(f.verdict == Verdict::FORWARDED);
}

TEST_CASE("decoder: every prefix of every valid record is rejected without reading past it", "[decoder]") {
  DnsInfo scratch;
  DecodeContext ctx;
  ctx.dns_scratch = &scratch;
  std::vector<std::vector<std::byte>> recs = {record_of(packet_event()), record_of(drop_event()),
                                              record_of(tcpretrans_event()),
                                              dns_record(example_response().span(), false)};
  for (const auto& rec : recs) {
    for (size_t n = 0; n < rec.size(); ++n) {
      // Copy into an exact-size heap buffer so a sanitizer sees any overread.
      std::vector<std::byte> prefix(rec.begin(), rec.begin() + static_cast<long>(n));
      Flow f;
      CHECK_FALSE(decode(prefix, ctx, f));
    }
    Flow f;
    CHECK(decode(rec, ctx, f));
  }
}

TEST_CASE("decoder: boot to realtime offset", "[decoder]") {
  timespec rt{}, bt{};
  clock_gettime(CLOCK_REALTIME, &rt);
  clock_gettime(CLOCK_BOOTTIME, &bt);
  const int64_t direct = (int64_t{rt.tv_sec} - bt.tv_sec) * 1'000'000'000 + (rt.tv_nsec - bt.tv_nsec);
  const int64_t off = boot_to_realtime_offset_ns();
  CHECK(std::llabs(off - direct) < 50'000'000);  // 50 ms, generous for a loaded machine
}

TEST_CASE("decoder: error names are distinct", "[decoder]") {
  std::set<std::string> seen;
  for (int e = 0; e < static_cast<int>(DecodeError::kCount); ++e)
    seen.insert(to_string(static_cast<DecodeError>(e)));
  CHECK(seen.size() == static_cast<size_t>(DecodeError::kCount));
}

TEST_CASE("decoder: every seed of the fuzz corpus is a valid record", "[decoder]") {
  // Keeps fuzz/corpus/fuzz_decoder meaningful: seeds that no longer decode
  // would only exercise the reject paths.
  namespace fs = std::filesystem;
  DnsInfo scratch;
  DecodeContext ctx;
  ctx.dns_scratch = &scratch;
  size_t n = 0;
  for (const auto& entry : fs::directory_iterator(fs::path(RETINA_SOURCE_DIR) / "fuzz/corpus/fuzz_decoder")) {
    std::ifstream in(entry.path(), std::ios::binary);
    std::vector<char> buf((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    Flow f;
    const auto rec = std::as_bytes(std::span<const char>(buf));
    INFO(entry.path().filename().string());
    if (is_batch(rec)) {
      auto batch = split_batch(rec);
      REQUIRE(batch);
      for (size_t i = 0; i < batch->count; ++i) CHECK(decode(batch->record(i), ctx, f));
    } else {
      auto r = decode(rec, ctx, f);
      INFO((r ? "ok" : to_string(r.error())));
      CHECK(r);
    }
    ++n;
  }
  CHECK(n >= 10);
}

TEST_CASE("decoder: a batch is split into the records it holds", "[decoder]") {
  std::vector<retina_packet_event> evs;
  for (uint16_t i = 0; i < 3; ++i) {
    auto ev = packet_event(1000 + i);
    ev.tuple.sport = static_cast<uint16_t>(40000 + i);
    ev.bytes = 100u + i;
    evs.push_back(ev);
  }
  auto rec = batch_record(evs);
  REQUIRE(is_batch(rec));
  CHECK_FALSE(is_batch(record_of(packet_event())));
  CHECK(record_source(rec) == "packetparser");

  auto batch = split_batch(rec);
  REQUIRE(batch);
  REQUIRE(batch->count == 3);
  CHECK(batch->stride == sizeof(retina_packet_event));
  DecodeContext ctx;
  ctx.boot_to_realtime_ns = 5;
  for (size_t i = 0; i < batch->count; ++i) {
    Flow f;
    REQUIRE(decode(batch->record(i), ctx, f));
    CHECK(f.src_port == 40000 + i);
    CHECK(f.bytes == 100 + i);
    CHECK(f.time_ns == 1005 + i);  // each record keeps its own packet's time
  }
  // decode() takes one record, never a batch.
  Flow f;
  CHECK(decode(rec, ctx, f).error() == DecodeError::kUnknownType);
  // The ring buffer pads records to 8 bytes: bytes past hdr.len are ignored.
  rec.resize(rec.size() + 8);
  CHECK(split_batch(rec)->count == 3);
}

TEST_CASE("decoder: batch framing rejects", "[decoder]") {
  std::vector<retina_packet_event> evs(2, packet_event());
  const auto good = batch_record(evs);
  auto with = [&](auto edit) {
    auto rec = good;
    retina_batch_hdr b;
    std::memcpy(&b, rec.data(), sizeof b);
    edit(b, rec);
    std::memcpy(rec.data(), &b, sizeof b);
    return split_batch(rec);
  };
  auto err = [](const auto& r) { return r ? DecodeError::kCount : r.error(); };
  CHECK(err(split_batch(std::span(good).first(sizeof(retina_batch_hdr) - 1))) == DecodeError::kTooShort);
  CHECK(err(with([](retina_batch_hdr& b, auto&) { b.hdr.len = 1000; })) == DecodeError::kLengthMismatch);
  CHECK(err(with([](retina_batch_hdr& b, auto&) { b.hdr.len = 20; })) == DecodeError::kLengthMismatch);
  CHECK(err(with([](retina_batch_hdr& b, auto&) { b.hdr.version = 0; })) == DecodeError::kUnsupportedVersion);
  CHECK(err(with([](retina_batch_hdr& b, auto&) { b.hdr.version = RETINA_BATCH_VERSION + 1; })) ==
        DecodeError::kUnsupportedVersion);
  CHECK(err(with([](retina_batch_hdr& b, auto&) { b.count = 0; })) == DecodeError::kBadField);
  CHECK(err(with([](retina_batch_hdr& b, auto&) { b.count = RETINA_BATCH_MAX + 1; })) == DecodeError::kBadField);
  CHECK(err(with([](retina_batch_hdr& b, auto&) { b.stride = 8; })) == DecodeError::kBadField);
  CHECK(err(with([](retina_batch_hdr& b, auto&) { b.stride = 132; })) == DecodeError::kBadField);
  CHECK(err(with([](retina_batch_hdr& b, auto&) { b.count = 3; })) == DecodeError::kTooShort);
  CHECK(err(with([](retina_batch_hdr& b, auto&) { b.stride = 136; })) == DecodeError::kTooShort);
  // decode() names the framing error of a batch it was handed.
  auto bad = good;
  bad[offsetof(retina_batch_hdr, count)] = std::byte{0};
  Flow f;
  CHECK(decode(bad, DecodeContext{}, f).error() == DecodeError::kBadField);
  // A batch inside a batch is not a record decode() knows.
  std::vector<std::byte> nested = good;
  retina_batch_hdr inner{};
  inner.hdr.type = RETINA_EV_BATCH;
  inner.hdr.version = RETINA_BATCH_VERSION;
  inner.hdr.len = sizeof(retina_packet_event);
  std::memcpy(nested.data() + sizeof(retina_batch_hdr), &inner, sizeof inner);
  auto b = split_batch(nested);
  REQUIRE(b);
  CHECK(decode(b->record(0), DecodeContext{}, f).error() == DecodeError::kBadField);
  CHECK(decode(b->record(1), DecodeContext{}, f));
}
