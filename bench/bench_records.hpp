// Synthetic ring-buffer records and DNS messages for the decode, DNS and
// pipeline benchmarks.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "retina/abi/events.h"
#include "retina/ip.hpp"
#include "retina/ip_cache.hpp"

namespace retina::bench {

// 10.<i>.<j>.<k> for endpoint number n (n < 2^24).
inline IpAddr endpoint_ip(uint32_t n) { return IpAddr::from_v4((10u << 24) | (n & 0xFFFFFF)); }

// An IpCache holding `endpoints` pods at endpoint_ip(0..endpoints-1), in
// 50 namespaces and 500 workloads.
inline std::shared_ptr<IpCache> pod_cache(uint32_t endpoints) {
  std::vector<EndpointPtr> eps;
  eps.reserve(endpoints);
  for (uint32_t i = 0; i < endpoints; ++i) {
    auto ep = std::make_shared<Endpoint>();
    ep->kind = EndpointKind::kPod;
    ep->namespace_ = "ns-" + std::to_string(i % 50);
    ep->name = "pod-" + std::to_string(i);
    ep->labels = {"app=app-" + std::to_string(i % 500)};
    ep->workloads = {{"Deployment", "app-" + std::to_string(i % 500)}};
    ep->ips = {endpoint_ip(i)};
    eps.push_back(std::move(ep));
  }
  auto cache = std::make_shared<IpCache>();
  cache->replace_source(EndpointSource::kApi, std::move(eps));
  return cache;
}

struct RecordSet {
  std::vector<std::byte> storage;
  std::vector<std::span<const std::byte>> records;
};

// `count` packetparser records between addresses drawn from the first
// `endpoints` endpoint IPs (every address resolves when the cache holds
// them), with varied ports, flags and observation points.
inline RecordSet packet_records(size_t count, uint32_t endpoints, uint32_t seed = 42) {
  std::mt19937 rng(seed);
  RecordSet set;
  set.storage.resize(count * sizeof(retina_packet_event));
  for (size_t i = 0; i < count; ++i) {
    retina_packet_event ev{};
    ev.hdr.type = RETINA_EV_PACKET;
    ev.hdr.version = RETINA_PACKET_EVENT_VERSION;
    ev.hdr.len = sizeof ev;
    ev.hdr.ts_ns = 1'000'000'000ull + i * 1000;
    const IpAddr s = endpoint_ip(rng() % endpoints), d = endpoint_ip(rng() % endpoints);
    std::memcpy(ev.tuple.saddr, s.bytes.data(), 16);
    std::memcpy(ev.tuple.daddr, d.bytes.data(), 16);
    ev.tuple.sport = static_cast<uint16_t>(32768 + rng() % 28000);
    ev.tuple.dport = static_cast<uint16_t>(rng() % 4 == 0 ? 443 : 8080);
    ev.tuple.proto = rng() % 8 == 0 ? 17 : 6;
    ev.tuple.family = 4;
    ev.ifindex = 2 + rng() % 30;
    ev.bytes = 60 + rng() % 1400;
    ev.obs_point = static_cast<uint8_t>(rng() % 4);
    ev.flags = rng() % 2 ? RETINA_PKT_F_REPLY : 0;
    ev.tcp_flags = RETINA_TCP_ACK | (rng() % 16 == 0 ? RETINA_TCP_SYN : 0);
    ev.prev_packets = rng() % 4;
    ev.prev_bytes = ev.prev_packets * 1000;
    std::memcpy(set.storage.data() + i * sizeof ev, &ev, sizeof ev);
  }
  for (size_t i = 0; i < count; ++i)
    set.records.emplace_back(set.storage.data() + i * sizeof(retina_packet_event), sizeof(retina_packet_event));
  return set;
}

// DNS wire messages: a query for `name`/`qtype`, or a response with a
// compressed answer list of `answers` A records (and a leading CNAME when
// `cname`).
inline std::vector<uint8_t> dns_message(const std::string& name, uint16_t qtype, bool response, int answers,
                                        bool cname = false, uint16_t id = 0x4242) {
  std::vector<uint8_t> m;
  auto u16 = [&](uint16_t v) {
    m.push_back(static_cast<uint8_t>(v >> 8));
    m.push_back(static_cast<uint8_t>(v));
  };
  auto u32 = [&](uint32_t v) {
    u16(static_cast<uint16_t>(v >> 16));
    u16(static_cast<uint16_t>(v));
  };
  u16(id);
  u16(response ? 0x8180 : 0x0100);
  u16(1);
  u16(static_cast<uint16_t>(response ? answers + (cname ? 1 : 0) : 0));
  u16(0);
  u16(0);
  size_t start = 0;
  while (start <= name.size()) {
    size_t dot = name.find('.', start);
    if (dot == std::string::npos) dot = name.size();
    m.push_back(static_cast<uint8_t>(dot - start));
    m.insert(m.end(), name.begin() + static_cast<long>(start), name.begin() + static_cast<long>(dot));
    start = dot + 1;
  }
  m.push_back(0);
  u16(qtype);
  u16(1);
  if (!response) return m;
  uint16_t owner = 12;
  if (cname) {
    u16(0xC00C);
    u16(5);
    u16(1);
    u32(30);
    u16(6);
    owner = static_cast<uint16_t>(m.size());
    m.insert(m.end(), {3, 'w', 'w', 'w'});
    u16(0xC00C);
  }
  for (int a = 0; a < answers; ++a) {
    u16(static_cast<uint16_t>(0xC000 | owner));
    u16(qtype == 28 ? 28 : 1);
    u16(1);
    u32(30);
    if (qtype == 28) {
      u16(16);
      for (int k = 0; k < 15; ++k) m.push_back(k == 0 ? 0xfd : 0);
      m.push_back(static_cast<uint8_t>(a + 1));
    } else {
      u16(4);
      m.insert(m.end(), {10, 96, 0, static_cast<uint8_t>(a + 1)});
    }
  }
  return m;
}

// A typical mix: Kubernetes service lookups (queries and responses with
// 1-4 answers), search-path misses, AAAA queries.
inline std::vector<std::vector<uint8_t>> dns_mix() {
  const std::vector<std::string> names = {
      "kubernetes.default.svc.cluster.local", "redis.cache.svc.cluster.local", "api.example.com",
      "web.shop.svc.cluster.local",           "login.microsoftonline.com",     "db"};
  std::vector<std::vector<uint8_t>> out;
  for (size_t i = 0; i < names.size(); ++i) {
    out.push_back(dns_message(names[i], 1, false, 0));
    out.push_back(dns_message(names[i], 28, false, 0));
    out.push_back(dns_message(names[i], 1, true, static_cast<int>(1 + i % 4), i % 3 == 2));
  }
  return out;
}

// DNS ring-buffer records carrying each message, sized to the message.
inline RecordSet dns_records(const std::vector<std::vector<uint8_t>>& msgs) {
  RecordSet set;
  std::vector<size_t> offsets;
  for (const auto& msg : msgs) {
    retina_dns_event ev{};
    ev.hdr.type = RETINA_EV_DNS;
    ev.hdr.version = RETINA_DNS_EVENT_VERSION;
    const size_t len = offsetof(retina_dns_event, payload) + msg.size();
    ev.hdr.len = static_cast<uint16_t>(len);
    ev.tuple.family = 4;
    ev.tuple.proto = 17;
    ev.tuple.saddr[10] = ev.tuple.saddr[11] = 0xff;
    ev.tuple.daddr[10] = ev.tuple.daddr[11] = 0xff;
    ev.tuple.dport = 53;
    ev.dns_len = static_cast<uint16_t>(msg.size());
    ev.wire_len = static_cast<uint32_t>(msg.size());
    std::memcpy(ev.payload, msg.data(), msg.size());
    offsets.push_back(set.storage.size());
    const size_t padded = (len + 7) & ~size_t{7};
    set.storage.resize(set.storage.size() + padded);
    std::memcpy(set.storage.data() + offsets.back(), &ev, len);
  }
  for (size_t i = 0; i < msgs.size(); ++i)
    set.records.emplace_back(set.storage.data() + offsets[i],
                             offsetof(retina_dns_event, payload) + msgs[i].size());
  return set;
}

}  // namespace retina::bench
