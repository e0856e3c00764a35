// Crafted ring-buffer records for the decoder and pipeline tests.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <vector>

#include "retina/abi/events.h"
#include "retina/ip.hpp"

namespace retina::testing {

inline void put_ip(uint8_t dst[16], const char* text) {
  auto ip = IpAddr::parse(text);
  std::memcpy(dst, ip->bytes.data(), 16);
}

inline retina_tuple tcp_tuple(const char* src = "10.0.0.1", const char* dst = "10.0.0.2", uint16_t sport = 40000,
                              uint16_t dport = 80, uint8_t proto = 6) {
  retina_tuple t{};
  put_ip(t.saddr, src);
  put_ip(t.daddr, dst);
  t.sport = sport;
  t.dport = dport;
  t.proto = proto;
  t.family = IpAddr::parse(src)->is_v4() ? 4 : 6;
  return t;
}

inline retina_packet_event packet_event(uint64_t ts = 1000) {
  retina_packet_event ev{};
  ev.hdr.type = RETINA_EV_PACKET;
  ev.hdr.version = RETINA_PACKET_EVENT_VERSION;
  ev.hdr.len = sizeof ev;
  ev.hdr.ts_ns = ts;
  ev.tuple = tcp_tuple();
  ev.ifindex = 7;
  ev.bytes = 60;
  ev.obs_point = RETINA_OBS_FROM_ENDPOINT;
  ev.tcp_flags = RETINA_TCP_SYN;
  return ev;
}

inline retina_drop_event drop_event() {
  retina_drop_event ev{};
  ev.hdr.type = RETINA_EV_DROP;
  ev.hdr.version = RETINA_DROP_EVENT_VERSION;
  ev.hdr.len = sizeof ev;
  ev.hdr.ts_ns = 2000;
  ev.tuple = tcp_tuple("10.0.0.3", "10.0.0.4", 1234, 443);
  ev.ifindex = 3;
  ev.bytes = 74;
  ev.reason = 6;
  ev.direction = 1;
  ev.suppressed = 5;
  ev.location = 0xffffffff81000000ull;
  return ev;
}

inline retina_tcpretrans_event tcpretrans_event() {
  retina_tcpretrans_event ev{};
  ev.hdr.type = RETINA_EV_TCPRETRANS;
  ev.hdr.version = RETINA_TCPRETRANS_EVENT_VERSION;
  ev.hdr.len = sizeof ev;
  ev.hdr.ts_ns = 3000;
  ev.tuple = tcp_tuple("fd00::1", "fd00::2", 5555, 8080);
  ev.state = 1;
  ev.tcp_flags = RETINA_TCP_PSH | RETINA_TCP_ACK;
  return ev;
}

// A DNS record carrying `msg`; `full` sends the whole struct, otherwise
// the record ends right after the message.
inline std::vector<std::byte> dns_record(std::span<const std::byte> msg, bool full = true, uint32_t wire_len = 0,
                                         uint8_t obs = RETINA_OBS_TO_NETWORK) {
  retina_dns_event ev{};
  ev.hdr.type = RETINA_EV_DNS;
  ev.hdr.version = RETINA_DNS_EVENT_VERSION;
  ev.hdr.ts_ns = 4000;
  ev.tuple = tcp_tuple("10.0.0.5", "10.96.0.10", 33333, 53, 17);
  ev.ifindex = 2;
  ev.obs_point = obs;
  ev.dns_len = static_cast<uint16_t>(msg.size());
  ev.wire_len = wire_len ? wire_len : static_cast<uint32_t>(msg.size());
  std::memcpy(ev.payload, msg.data(), msg.size());
  const size_t len = full ? sizeof ev : offsetof(retina_dns_event, payload) + msg.size();
  ev.hdr.len = static_cast<uint16_t>(len);
  std::vector<std::byte> out(len);
  std::memcpy(out.data(), &ev, len);
  return out;
}

// A batch record holding `evs` (stride: the event's size).
inline std::vector<std::byte> batch_record(std::span<const retina_packet_event> evs) {
  retina_batch_hdr b{};
  b.hdr.type = RETINA_EV_BATCH;
  b.hdr.version = RETINA_BATCH_VERSION;
  b.hdr.len = static_cast<uint16_t>(sizeof b + evs.size() * sizeof(retina_packet_event));
  b.hdr.ts_ns = 9000;
  b.count = static_cast<uint16_t>(evs.size());
  b.stride = sizeof(retina_packet_event);
  std::vector<std::byte> out(b.hdr.len);
  std::memcpy(out.data(), &b, sizeof b);
  if (!evs.empty()) std::memcpy(out.data() + sizeof b, evs.data(), evs.size_bytes());
  return out;
}

// The record of a struct, padded to `size` bytes (at least sizeof(T)).
template <class T>
std::vector<std::byte> record_of(const T& ev, size_t size = sizeof(T)) {
  std::vector<std::byte> out(size < sizeof(T) ? sizeof(T) : size);
  std::memcpy(out.data(), &ev, sizeof(T));
  if (size < sizeof(T)) out.resize(size);
  return out;
}

}  // namespace retina::testing
