// Builds DNS messages byte by byte for the parser, decoder and pipeline tests.
#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <span>
#include <string_view>
#include <vector>

namespace retina::testing {

struct DnsMsg {
  std::vector<uint8_t> b;

  DnsMsg& u8(uint8_t v) {
    b.push_back(v);
    return *this;
  }
  DnsMsg& u16(uint16_t v) {
    b.push_back(static_cast<uint8_t>(v >> 8));
    b.push_back(static_cast<uint8_t>(v));
    return *this;
  }
  DnsMsg& u32(uint32_t v) { return u16(static_cast<uint16_t>(v >> 16)).u16(static_cast<uint16_t>(v)); }
  DnsMsg& raw(std::initializer_list<uint8_t> bytes) {
    b.insert(b.end(), bytes);
    return *this;
  }
  DnsMsg& header(uint16_t id, uint16_t flags, uint16_t qd, uint16_t an, uint16_t ns = 0, uint16_t ar = 0) {
    return u16(id).u16(flags).u16(qd).u16(an).u16(ns).u16(ar);
  }
  // Labels of a dotted name, without the terminating zero.
  DnsMsg& labels(std::string_view dotted) {
    while (!dotted.empty()) {
      size_t dot = dotted.find('.');
      std::string_view label = dotted.substr(0, dot);
      u8(static_cast<uint8_t>(label.size()));
      b.insert(b.end(), label.begin(), label.end());
      if (dot == std::string_view::npos) break;
      dotted.remove_prefix(dot + 1);
    }
    return *this;
  }
  DnsMsg& name(std::string_view dotted) { return labels(dotted).u8(0); }
  DnsMsg& ptr(uint16_t off) { return u16(static_cast<uint16_t>(0xC000 | off)); }
  DnsMsg& question(std::string_view dotted, uint16_t qtype, uint16_t qclass = 1) {
    return name(dotted).u16(qtype).u16(qclass);
  }
  // Answer with a compressed owner name pointing at `owner_off`.
  DnsMsg& answer_a(uint16_t owner_off, std::initializer_list<uint8_t> addr, uint32_t ttl = 30) {
    ptr(owner_off).u16(1).u16(1).u32(ttl).u16(static_cast<uint16_t>(addr.size()));
    return raw(addr);
  }
  DnsMsg& answer_aaaa(uint16_t owner_off, std::initializer_list<uint8_t> addr, uint32_t ttl = 30) {
    ptr(owner_off).u16(28).u16(1).u32(ttl).u16(static_cast<uint16_t>(addr.size()));
    return raw(addr);
  }
  size_t size() const { return b.size(); }
  std::span<const std::byte> span() const { return std::as_bytes(std::span<const uint8_t>(b)); }
  std::span<const std::byte> prefix(size_t n) const { return span().first(n); }
};

constexpr uint16_t kFlagsQuery = 0x0100;     // RD
constexpr uint16_t kFlagsResponse = 0x8180;  // QR RD RA, NOERROR

// A query for example.com/A, id 0x1234.
inline DnsMsg example_query(uint16_t qtype = 1) {
  DnsMsg m;
  m.header(0x1234, kFlagsQuery, 1, 0).question("example.com", qtype);
  return m;
}

// A response to example.com/A: a CNAME to web.example.com (compressed),
// then two A records and one AAAA record for it.
inline DnsMsg example_response() {
  DnsMsg m;
  m.header(0x1234, kFlagsResponse, 1, 4).question("example.com", 1);
  // CNAME: owner -> 12 (example.com), rdata "web" + ptr to 12.
  m.ptr(12).u16(5).u16(1).u32(60).u16(6).labels("web").ptr(12);
  const uint16_t web = static_cast<uint16_t>(m.size() - 6);
  m.answer_a(web, {10, 0, 0, 1});
  m.answer_a(web, {10, 0, 0, 2});
  m.answer_aaaa(web, {0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1});
  return m;
}

}  // namespace retina::testing
