// Compile-time checks of the kernel <-> user space ABI (abi/events.h): the
// size and offset of every field must match the layout comments, which the
// BPF side relies on too. A mismatch fails the build, not the decoder.
#include <cstddef>
#include <type_traits>

#include "retina/abi/events.h"

namespace {

#define RETINA_ASSERT_OFFSET(type, field, off) \
  static_assert(offsetof(type, field) == (off), #type "." #field " must be at offset " #off)
#define RETINA_ASSERT_SIZE(type, size) \
  static_assert(sizeof(type) == (size), "sizeof(" #type ") must be " #size)

static_assert(RETINA_ABI_VERSION == 1, "update these checks with the ABI version");
static_assert(RETINA_FLAG_IDX_MAX == 9, "nine TCP flag counters");

RETINA_ASSERT_SIZE(struct retina_event_hdr, 16);
RETINA_ASSERT_OFFSET(struct retina_event_hdr, type, 0);
RETINA_ASSERT_OFFSET(struct retina_event_hdr, version, 2);
RETINA_ASSERT_OFFSET(struct retina_event_hdr, _pad0, 3);
RETINA_ASSERT_OFFSET(struct retina_event_hdr, len, 4);
RETINA_ASSERT_OFFSET(struct retina_event_hdr, _pad1, 6);
RETINA_ASSERT_OFFSET(struct retina_event_hdr, ts_ns, 8);

RETINA_ASSERT_SIZE(struct retina_batch_hdr, 24);
RETINA_ASSERT_OFFSET(struct retina_batch_hdr, count, 16);
RETINA_ASSERT_OFFSET(struct retina_batch_hdr, stride, 18);
RETINA_ASSERT_OFFSET(struct retina_batch_hdr, _pad, 20);

RETINA_ASSERT_SIZE(struct retina_tuple, 40);
RETINA_ASSERT_OFFSET(struct retina_tuple, saddr, 0);
RETINA_ASSERT_OFFSET(struct retina_tuple, daddr, 16);
RETINA_ASSERT_OFFSET(struct retina_tuple, sport, 32);
RETINA_ASSERT_OFFSET(struct retina_tuple, dport, 34);
RETINA_ASSERT_OFFSET(struct retina_tuple, proto, 36);
RETINA_ASSERT_OFFSET(struct retina_tuple, family, 37);
RETINA_ASSERT_OFFSET(struct retina_tuple, _pad, 38);

RETINA_ASSERT_SIZE(struct retina_packet_event, 128);
RETINA_ASSERT_OFFSET(struct retina_packet_event, hdr, 0);
RETINA_ASSERT_OFFSET(struct retina_packet_event, tuple, 16);
RETINA_ASSERT_OFFSET(struct retina_packet_event, ifindex, 56);
RETINA_ASSERT_OFFSET(struct retina_packet_event, bytes, 60);
RETINA_ASSERT_OFFSET(struct retina_packet_event, obs_point, 64);
RETINA_ASSERT_OFFSET(struct retina_packet_event, flags, 65);
RETINA_ASSERT_OFFSET(struct retina_packet_event, tcp_flags, 66);
RETINA_ASSERT_OFFSET(struct retina_packet_event, report_reason, 68);
RETINA_ASSERT_OFFSET(struct retina_packet_event, _pad0, 69);
RETINA_ASSERT_OFFSET(struct retina_packet_event, prev_packets, 72);
RETINA_ASSERT_OFFSET(struct retina_packet_event, tcp_id, 76);
RETINA_ASSERT_OFFSET(struct retina_packet_event, prev_bytes, 80);
RETINA_ASSERT_OFFSET(struct retina_packet_event, prev_flag_counts, 88);
RETINA_ASSERT_OFFSET(struct retina_packet_event, _pad1, 124);

RETINA_ASSERT_SIZE(struct retina_drop_event, 88);
RETINA_ASSERT_OFFSET(struct retina_drop_event, hdr, 0);
RETINA_ASSERT_OFFSET(struct retina_drop_event, tuple, 16);
RETINA_ASSERT_OFFSET(struct retina_drop_event, ifindex, 56);
RETINA_ASSERT_OFFSET(struct retina_drop_event, bytes, 60);
RETINA_ASSERT_OFFSET(struct retina_drop_event, reason, 64);
RETINA_ASSERT_OFFSET(struct retina_drop_event, direction, 68);
RETINA_ASSERT_OFFSET(struct retina_drop_event, _pad0, 69);
RETINA_ASSERT_OFFSET(struct retina_drop_event, suppressed, 72);
RETINA_ASSERT_OFFSET(struct retina_drop_event, _pad1, 76);
RETINA_ASSERT_OFFSET(struct retina_drop_event, location, 80);

RETINA_ASSERT_SIZE(struct retina_drop_key, 8);
RETINA_ASSERT_OFFSET(struct retina_drop_key, reason, 0);
RETINA_ASSERT_OFFSET(struct retina_drop_key, direction, 4);
RETINA_ASSERT_OFFSET(struct retina_drop_key, _pad, 5);

RETINA_ASSERT_SIZE(struct retina_pkt_counts, 16);
RETINA_ASSERT_OFFSET(struct retina_pkt_counts, packets, 0);
RETINA_ASSERT_OFFSET(struct retina_pkt_counts, bytes, 8);
static_assert(RETINA_FWD_INGRESS == 0 && RETINA_FWD_EGRESS == 1 && RETINA_FWD_MAX == 2);
static_assert(RETINA_DROP_DIR_INGRESS == 1 && RETINA_DROP_DIR_EGRESS == 2,
              "drop directions equal TrafficDirection INGRESS and EGRESS");
static_assert(retina_drop_reason_slot(5) == 5 && retina_drop_reason_slot(0x20003) == 2 * RETINA_DROP_REASON_SLOTS + 3 &&
              retina_drop_reason_slot(RETINA_DROP_REASON_SLOTS) == RETINA_DROP_NO_SLOT);

RETINA_ASSERT_SIZE(struct retina_dns_event, 584);
RETINA_ASSERT_OFFSET(struct retina_dns_event, hdr, 0);
RETINA_ASSERT_OFFSET(struct retina_dns_event, tuple, 16);
RETINA_ASSERT_OFFSET(struct retina_dns_event, ifindex, 56);
RETINA_ASSERT_OFFSET(struct retina_dns_event, obs_point, 60);
RETINA_ASSERT_OFFSET(struct retina_dns_event, _pad0, 61);
RETINA_ASSERT_OFFSET(struct retina_dns_event, dns_len, 62);
RETINA_ASSERT_OFFSET(struct retina_dns_event, wire_len, 64);
RETINA_ASSERT_OFFSET(struct retina_dns_event, _pad1, 68);
RETINA_ASSERT_OFFSET(struct retina_dns_event, payload, 72);
static_assert(sizeof(((struct retina_dns_event*)nullptr)->payload) == RETINA_DNS_MAX_PAYLOAD);

RETINA_ASSERT_SIZE(struct retina_tcpretrans_event, 72);
RETINA_ASSERT_OFFSET(struct retina_tcpretrans_event, hdr, 0);
RETINA_ASSERT_OFFSET(struct retina_tcpretrans_event, tuple, 16);
RETINA_ASSERT_OFFSET(struct retina_tcpretrans_event, state, 56);
RETINA_ASSERT_OFFSET(struct retina_tcpretrans_event, _pad0, 57);
RETINA_ASSERT_OFFSET(struct retina_tcpretrans_event, tcp_flags, 58);
RETINA_ASSERT_OFFSET(struct retina_tcpretrans_event, netns_ino, 60);
RETINA_ASSERT_OFFSET(struct retina_tcpretrans_event, segs, 64);
RETINA_ASSERT_OFFSET(struct retina_tcpretrans_event, _pad1, 66);
RETINA_ASSERT_OFFSET(struct retina_tcpretrans_event, _pad2, 68);
static_assert(RETINA_DNS_STAT_MAX == 3 && RETINA_RT_STAT_MAX == 2);

RETINA_ASSERT_SIZE(struct retina_ct_key, 44);
RETINA_ASSERT_OFFSET(struct retina_ct_key, addr_lo, 0);
RETINA_ASSERT_OFFSET(struct retina_ct_key, addr_hi, 16);
RETINA_ASSERT_OFFSET(struct retina_ct_key, port_lo, 32);
RETINA_ASSERT_OFFSET(struct retina_ct_key, port_hi, 34);
RETINA_ASSERT_OFFSET(struct retina_ct_key, proto, 36);
RETINA_ASSERT_OFFSET(struct retina_ct_key, _pad, 37);
RETINA_ASSERT_OFFSET(struct retina_ct_key, ifindex, 40);

RETINA_ASSERT_SIZE(struct retina_ct_side, 72);
RETINA_ASSERT_OFFSET(struct retina_ct_side, pending_bytes, 0);
RETINA_ASSERT_OFFSET(struct retina_ct_side, pending_packets, 8);
RETINA_ASSERT_OFFSET(struct retina_ct_side, _pad1, 12);
RETINA_ASSERT_OFFSET(struct retina_ct_side, pending, 16);
RETINA_ASSERT_OFFSET(struct retina_ct_side, last_report_ns, 24);
RETINA_ASSERT_OFFSET(struct retina_ct_side, flags_seen, 32);
RETINA_ASSERT_OFFSET(struct retina_ct_side, last_reply, 34);
RETINA_ASSERT_OFFSET(struct retina_ct_side, _pad0, 35);
RETINA_ASSERT_OFFSET(struct retina_ct_side, pending_flags, 36);

RETINA_ASSERT_SIZE(struct retina_ct_entry, 192);
RETINA_ASSERT_OFFSET(struct retina_ct_entry, side_ing, 0);
RETINA_ASSERT_OFFSET(struct retina_ct_entry, expires_ns, 72);
RETINA_ASSERT_OFFSET(struct retina_ct_entry, state, 80);
RETINA_ASSERT_OFFSET(struct retina_ct_entry, _pad, 84);
RETINA_ASSERT_OFFSET(struct retina_ct_entry, packets, 88);
RETINA_ASSERT_OFFSET(struct retina_ct_entry, bytes, 104);
RETINA_ASSERT_OFFSET(struct retina_ct_entry, side_egr, 120);

RETINA_ASSERT_SIZE(struct retina_ct_gauges, 48);
RETINA_ASSERT_OFFSET(struct retina_ct_gauges, connections, 32);
RETINA_ASSERT_OFFSET(struct retina_ct_gauges, sweep_ns, 40);
RETINA_ASSERT_SIZE(struct retina_lpm_key, 20);
RETINA_ASSERT_OFFSET(struct retina_lpm_key, addr, 4);

// The decoder memcpy()s records into these; they must stay plain data.
static_assert(std::is_trivially_copyable_v<struct retina_batch_hdr>);
static_assert(std::is_trivially_copyable_v<struct retina_packet_event>);
static_assert(std::is_trivially_copyable_v<struct retina_drop_event>);
static_assert(std::is_trivially_copyable_v<struct retina_dns_event>);
static_assert(std::is_trivially_copyable_v<struct retina_tcpretrans_event>);
static_assert(alignof(struct retina_packet_event) == 8);
static_assert(alignof(struct retina_dns_event) == 8);
static_assert(alignof(struct retina_tcpretrans_event) == 8);

// The user-space enums mirror the ABI's numbering.
static_assert(RETINA_TCP_FIN == 0x01 && RETINA_TCP_SYN == 0x02 && RETINA_TCP_RST == 0x04 &&
              RETINA_TCP_PSH == 0x08 && RETINA_TCP_ACK == 0x10 && RETINA_TCP_URG == 0x20 &&
              RETINA_TCP_ECE == 0x40 && RETINA_TCP_CWR == 0x80 && RETINA_TCP_NS == 0x100);

#undef RETINA_ASSERT_OFFSET
#undef RETINA_ASSERT_SIZE

}  // namespace
