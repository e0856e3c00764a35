// Ring-buffer record -> Flow. See include/retina/decoder.hpp.
//
// Order of checks: the record must hold a header; the header's length may
// not exceed the record (the ring buffer rounds records up to 8 bytes, so
// a record may be longer than hdr.len, never shorter); the type must be
// known and its version no newer than this decoder's; hdr.len must cover
// the type's struct (for DNS events: its fixed part plus dns_len). Only
// then is the record copied into a local struct and its fields checked.
#include <time.h>

#include <array>
#include <climits>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>

#include "decoder/dns_parse.hpp"
#include "retina/abi/events.h"
#include "retina/decoder.hpp"
#include "retina/flow_sources.hpp"

namespace retina {

const char* to_string(DecodeError e) {
  switch (e) {
    case DecodeError::kTooShort: return "too_short";
    case DecodeError::kLengthMismatch: return "length_mismatch";
    case DecodeError::kUnknownType: return "unknown_type";
    case DecodeError::kUnsupportedVersion: return "unsupported_version";
    case DecodeError::kBadField: return "bad_field";
    case DecodeError::kDnsMalformed: return "dns_malformed";
    case DecodeError::kCount: break;
  }
  return "unknown";
}

namespace {

static_assert(static_cast<uint16_t>(TcpFlag::kFIN) == RETINA_TCP_FIN &&
              static_cast<uint16_t>(TcpFlag::kNS) == RETINA_TCP_NS);
static_assert(std::tuple_size_v<decltype(Flow::prev_flag_counts)> == RETINA_FLAG_IDX_MAX);

constexpr uint16_t kTcpFlagMask = 0x1FF;
constexpr uint8_t kPacketFlagMask =
    RETINA_PKT_F_REPLY | RETINA_PKT_F_CT_REPORT | RETINA_PKT_F_NO_PACKET | RETINA_PKT_F_DIR_UNKNOWN;
constexpr size_t kDnsFixedLen = offsetof(struct retina_dns_event, payload);
constexpr std::string_view kUnknownDropReason = "UNKNOWN";

// Hubble event_type.type values.
constexpr uint8_t kEventDrop = 1;
constexpr uint8_t kEventTrace = 4;
constexpr uint8_t kEventL7 = 129;

using Fail = unexpected<DecodeError>;

struct ObsMapping {
  TraceObservationPoint point;
  TrafficDirection direction;
  uint8_t sub_type;
};

// Retina's mapping of where a packet was seen (compat.md).
constexpr ObsMapping kObsMap[RETINA_OBS_MAX] = {
    /* FROM_ENDPOINT */ {TraceObservationPoint::TO_STACK, TrafficDirection::EGRESS, 3},
    /* TO_ENDPOINT   */ {TraceObservationPoint::TO_ENDPOINT, TrafficDirection::INGRESS, 0},
    /* FROM_NETWORK  */ {TraceObservationPoint::FROM_NETWORK, TrafficDirection::INGRESS, 10},
    /* TO_NETWORK    */ {TraceObservationPoint::TO_NETWORK, TrafficDirection::EGRESS, 11},
    /* KERNEL        */ {TraceObservationPoint::UNKNOWN_POINT, TrafficDirection::TRAFFIC_DIRECTION_UNKNOWN, 0},
};

inline bool obs_ok(uint8_t obs) { return obs < RETINA_OBS_MAX; }

inline void apply_obs(uint8_t obs, Flow& f) {
  const ObsMapping& m = kObsMap[obs];
  f.observation_point = m.point;
  f.direction = m.direction;
  f.event_sub_type = m.sub_type;
}

inline bool is_v4_mapped(const uint8_t a[16]) {
  static constexpr uint8_t kPrefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  return std::memcmp(a, kPrefix, 12) == 0;
}

inline bool proto_ok(uint8_t proto) {
  return proto == static_cast<uint8_t>(L4Protocol::kTCP) || proto == static_cast<uint8_t>(L4Protocol::kUDP) ||
         proto == static_cast<uint8_t>(L4Protocol::kICMPv4) ||
         proto == static_cast<uint8_t>(L4Protocol::kICMPv6);
}

// Checks and copies the 5-tuple. `allow_none` admits the all-zero tuple
// drop events carry for non-IP packets (family 0).
inline bool apply_tuple(const retina_tuple& t, Flow& f, bool allow_none) {
  if (t.family == 4) {
    if (!is_v4_mapped(t.saddr) || !is_v4_mapped(t.daddr)) return false;
    f.ip_version = IpVersion::IPv4;
  } else if (t.family == 6) {
    f.ip_version = IpVersion::IPv6;
  } else if (t.family == 0 && allow_none) {
    f.ip_version = IpVersion::IP_NOT_USED;
    f.proto = L4Protocol::kNone;
    return t.proto == 0;
  } else {
    return false;
  }
  if (!proto_ok(t.proto)) return false;
  std::memcpy(f.src.bytes.data(), t.saddr, 16);
  std::memcpy(f.dst.bytes.data(), t.daddr, 16);
  f.proto = static_cast<L4Protocol>(t.proto);
  f.src_port = t.sport;
  f.dst_port = t.dport;
  return true;
}

inline uint64_t unix_ns(uint64_t boot_ns, int64_t offset) {
  return boot_ns + static_cast<uint64_t>(offset);  // wraps like the kernel's clocks would
}

expected<void, DecodeError> decode_packet(std::span<const std::byte> rec, const DecodeContext& ctx,
                                          Flow& out) noexcept {
  retina_packet_event ev;
  std::memcpy(&ev, rec.data(), sizeof ev);
  if (!obs_ok(ev.obs_point) || (ev.flags & ~kPacketFlagMask) || (ev.tcp_flags & ~kTcpFlagMask) ||
      ev.report_reason > RETINA_REPORT_MAP_FULL)
    return Fail(DecodeError::kBadField);
  out = Flow{};
  if (!apply_tuple(ev.tuple, out, false)) return Fail(DecodeError::kBadField);
  out.time_ns = unix_ns(ev.hdr.ts_ns, ctx.boot_to_realtime_ns);
  out.origin = FlowSource::kPacketParser;
  out.verdict = Verdict::FORWARDED;
  out.tcp_flags = out.proto == L4Protocol::kTCP ? ev.tcp_flags : 0;
  apply_obs(ev.obs_point, out);
  out.is_reply = (ev.flags & RETINA_PKT_F_REPLY) != 0;
  out.is_reply_known = (ev.flags & RETINA_PKT_F_DIR_UNKNOWN) == 0;
  out.event_type = kEventTrace;
  out.ifindex = ev.ifindex;
  out.has_packet = (ev.flags & RETINA_PKT_F_NO_PACKET) == 0;
  out.bytes = out.has_packet ? ev.bytes : 0;
  out.prev_packets = ev.prev_packets;
  out.prev_bytes = ev.prev_bytes;
  std::memcpy(out.prev_flag_counts.data(), ev.prev_flag_counts, sizeof ev.prev_flag_counts);
  out.tcp_id = ev.tcp_id;
  return {};
}

expected<void, DecodeError> decode_drop(std::span<const std::byte> rec, const DecodeContext& ctx,
                                        Flow& out) noexcept {
  retina_drop_event ev;
  std::memcpy(&ev, rec.data(), sizeof ev);
  if (ev.direction > 2) return Fail(DecodeError::kBadField);
  out = Flow{};
  if (!apply_tuple(ev.tuple, out, true)) return Fail(DecodeError::kBadField);
  out.time_ns = unix_ns(ev.hdr.ts_ns, ctx.boot_to_realtime_ns);
  out.origin = FlowSource::kDropReason;
  out.verdict = Verdict::DROPPED;
  out.event_type = kEventDrop;
  out.direction = static_cast<TrafficDirection>(ev.direction);  // 1 ingress, 2 egress, as the enum
  out.ifindex = ev.ifindex;
  out.bytes = ev.bytes;
  out.drop_reason = ev.reason;
  out.drop_reason_desc = kUnknownDropReason;
  // Name tables are indexed by slot, which folds the kernel's subsystem
  // bits (the upper 16) into a small index; core reasons keep their value.
  const uint32_t slot = retina_drop_reason_slot(ev.reason);
  if (const auto* names = ctx.drop_reason_names; names && slot < names->size() && !(*names)[slot].empty())
    out.drop_reason_desc = (*names)[slot];
  out.suppressed = ev.suppressed;
  return {};
}

expected<void, DecodeError> decode_dns(std::span<const std::byte> rec, uint16_t len, const DecodeContext& ctx,
                                       Flow& out) noexcept {
  // Only the fixed part is copied; the message is parsed in place.
  retina_dns_event ev;
  std::memcpy(&ev, rec.data(), kDnsFixedLen);
  if (!obs_ok(ev.obs_point) || ev.dns_len > RETINA_DNS_MAX_PAYLOAD || ev.dns_len > len - kDnsFixedLen ||
      ev.wire_len < ev.dns_len)
    return Fail(DecodeError::kBadField);
  out = Flow{};
  if (!apply_tuple(ev.tuple, out, false)) return Fail(DecodeError::kBadField);
  if (ctx.dns_scratch == nullptr) return Fail(DecodeError::kDnsMalformed);
  const auto msg = rec.subspan(kDnsFixedLen, ev.dns_len);
  if (!dns_detail::parse(msg, *ctx.dns_scratch, ev.dns_len < ev.wire_len))
    return Fail(DecodeError::kDnsMalformed);
  out.time_ns = unix_ns(ev.hdr.ts_ns, ctx.boot_to_realtime_ns);
  out.origin = FlowSource::kDns;
  out.verdict = Verdict::DNS;
  apply_obs(ev.obs_point, out);
  out.event_type = kEventL7;
  out.event_sub_type = 0;
  out.ifindex = ev.ifindex;
  out.dns = ctx.dns_scratch;
  out.is_reply = ctx.dns_scratch->is_response;
  out.is_reply_known = true;
  out.l7_type = out.is_reply ? L7Type::RESPONSE : L7Type::REQUEST;
  return {};
}

expected<void, DecodeError> decode_tcpretrans(std::span<const std::byte> rec, const DecodeContext& ctx,
                                              Flow& out) noexcept {
  retina_tcpretrans_event ev;
  std::memcpy(&ev, rec.data(), sizeof ev);
  if (ev.tcp_flags & ~kTcpFlagMask) return Fail(DecodeError::kBadField);
  out = Flow{};
  if (!apply_tuple(ev.tuple, out, false) || out.proto != L4Protocol::kTCP) return Fail(DecodeError::kBadField);
  out.time_ns = unix_ns(ev.hdr.ts_ns, ctx.boot_to_realtime_ns);
  out.origin = FlowSource::kTcpRetrans;
  out.verdict = Verdict::RETRANSMISSION;
  out.direction = TrafficDirection::EGRESS;  // retransmissions are sent, never received
  out.event_type = kEventTrace;
  out.tcp_flags = ev.tcp_flags;
  out.tcp_state = ev.state;
  return {};
}

expected<void, DecodeError> decode_dns_record(std::span<const std::byte> rec, const DecodeContext& ctx, Flow& out) {
  return decode_dns(rec, static_cast<uint16_t>(rec.size()), ctx, out);
}

// The one table of event types: which plugin emits them, the newest layout
// this decoder reads, the length hdr.len must reach, and the decoder.
struct EventType {
  FlowSourceInfo info;
  uint8_t version;
  size_t min_len;
  expected<void, DecodeError> (*decode)(std::span<const std::byte> rec, const DecodeContext& ctx, Flow& out);
};

constexpr EventType kEventTypes[] = {
    {{FlowSource::kPacketParser, "packetparser", RETINA_EV_PACKET}, RETINA_PACKET_EVENT_VERSION,
     sizeof(retina_packet_event), &decode_packet},
    {{FlowSource::kDropReason, "dropreason", RETINA_EV_DROP}, RETINA_DROP_EVENT_VERSION, sizeof(retina_drop_event),
     &decode_drop},
    {{FlowSource::kDns, "dns", RETINA_EV_DNS}, RETINA_DNS_EVENT_VERSION, kDnsFixedLen, &decode_dns_record},
    {{FlowSource::kTcpRetrans, "tcpretrans", RETINA_EV_TCPRETRANS}, RETINA_TCPRETRANS_EVENT_VERSION,
     sizeof(retina_tcpretrans_event), &decode_tcpretrans},
};

constexpr bool indexed_by_source() {
  for (size_t i = 0; i < std::size(kEventTypes); ++i)
    if (static_cast<size_t>(kEventTypes[i].info.source) != i) return false;
  return std::size(kEventTypes) == static_cast<size_t>(FlowSource::kCount);
}
static_assert(indexed_by_source(), "kEventTypes lists every FlowSource once, in enum order");

const EventType* event_type(uint16_t type) {
  for (const EventType& t : kEventTypes)
    if (t.info.event_type == type) return &t;
  return nullptr;
}

}  // namespace

expected<void, DecodeError> decode(std::span<const std::byte> record, const DecodeContext& ctx,
                                   Flow& out) noexcept {
  retina_event_hdr hdr;
  if (record.size() < sizeof hdr) return Fail(DecodeError::kTooShort);
  std::memcpy(&hdr, record.data(), sizeof hdr);
  if (hdr.len > record.size() || hdr.len < sizeof hdr) return Fail(DecodeError::kLengthMismatch);
  const EventType* t = event_type(hdr.type);
  if (!t) {
    // A batch is taken apart first (split_batch()); one that cannot be says why.
    if (hdr.type == RETINA_EV_BATCH) {
      auto batch = split_batch(record);
      if (!batch) return Fail(batch.error());
    }
    return Fail(DecodeError::kUnknownType);
  }
  // Version 0 was never produced; a newer layout may move fields.
  if (hdr.version == 0 || hdr.version > t->version) return Fail(DecodeError::kUnsupportedVersion);
  if (hdr.len < t->min_len) return Fail(DecodeError::kTooShort);
  return t->decode(record.first(hdr.len), ctx, out);
}

bool is_batch(std::span<const std::byte> record) noexcept {
  uint16_t type;
  if (record.size() < sizeof(retina_event_hdr)) return false;
  std::memcpy(&type, record.data() + offsetof(retina_event_hdr, type), sizeof type);
  return type == RETINA_EV_BATCH;
}

expected<BatchView, DecodeError> split_batch(std::span<const std::byte> record) noexcept {
  retina_batch_hdr b;
  if (record.size() < sizeof b) return Fail(DecodeError::kTooShort);
  std::memcpy(&b, record.data(), sizeof b);
  if (b.hdr.len > record.size() || b.hdr.len < sizeof b) return Fail(DecodeError::kLengthMismatch);
  if (b.hdr.type != RETINA_EV_BATCH) return Fail(DecodeError::kUnknownType);
  if (b.hdr.version == 0 || b.hdr.version > RETINA_BATCH_VERSION) return Fail(DecodeError::kUnsupportedVersion);
  if (b.count == 0 || b.count > RETINA_BATCH_MAX || b.stride < sizeof(retina_event_hdr) || b.stride % 8 != 0)
    return Fail(DecodeError::kBadField);
  const size_t body = size_t{b.count} * b.stride;
  if (body > b.hdr.len - sizeof b) return Fail(DecodeError::kTooShort);
  return BatchView{record.subspan(sizeof b, body), b.count, b.stride};
}

std::string_view record_source(std::span<const std::byte> record) noexcept {
  retina_event_hdr hdr;
  if (record.size() < sizeof hdr) return "unknown";
  std::memcpy(&hdr, record.data(), sizeof hdr);
  if (hdr.type == RETINA_EV_BATCH && record.size() >= sizeof(retina_batch_hdr) + sizeof hdr)
    std::memcpy(&hdr, record.data() + sizeof(retina_batch_hdr), sizeof hdr);  // its first record's
  const EventType* t = event_type(hdr.type);
  return t ? t->info.name : std::string_view("unknown");
}

std::span<const FlowSourceInfo> flow_sources() {
  static const auto all = [] {
    std::array<FlowSourceInfo, std::size(kEventTypes)> a{};
    for (size_t i = 0; i < a.size(); ++i) a[i] = kEventTypes[i].info;
    return a;
  }();
  return all;
}

std::string_view to_string(FlowSource s) {
  const auto i = static_cast<size_t>(s);
  return i < std::size(kEventTypes) ? kEventTypes[i].info.name : std::string_view("unknown");
}

std::optional<FlowSource> flow_source_from(std::string_view name) {
  for (const EventType& t : kEventTypes)
    if (t.info.name == name) return t.info.source;
  return std::nullopt;
}

const FlowSourceInfo* flow_source_of_event(uint16_t type) {
  const EventType* t = event_type(type);
  return t ? &flow_sources()[static_cast<size_t>(t->info.source)] : nullptr;
}

std::string flow_source_names() {
  std::string out;
  for (size_t i = 0; i < std::size(kEventTypes); ++i) {
    if (i) out += i + 1 == std::size(kEventTypes) ? " or " : ", ";
    out += kEventTypes[i].info.name;
  }
  return out;
}

int64_t boot_to_realtime_offset_ns() {
  // Bracket one CLOCK_REALTIME read between two CLOCK_BOOTTIME reads and
  // keep the tightest of a few tries, so a preemption between the reads
  // does not skew the offset.
  auto ns = [](const timespec& ts) { return int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec; };
  int64_t best_gap = INT64_MAX;
  int64_t best = 0;
  for (int i = 0; i < 5; ++i) {
    timespec b0{}, rt{}, b1{};
    clock_gettime(CLOCK_BOOTTIME, &b0);
    clock_gettime(CLOCK_REALTIME, &rt);
    clock_gettime(CLOCK_BOOTTIME, &b1);
    const int64_t gap = ns(b1) - ns(b0);
    if (gap < best_gap) {
      best_gap = gap;
      best = ns(rt) - (ns(b0) + gap / 2);
    }
  }
  return best;
}

}  // namespace retina
