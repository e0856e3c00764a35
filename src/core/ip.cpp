#include "retina/ip.hpp"

#include <arpa/inet.h>
#include <xxhash.h>

#include <cstring>
#include <string>

namespace retina {

IpAddr IpAddr::from_v4(uint32_t host_order) {
  IpAddr a;
  a.bytes[10] = 0xff;
  a.bytes[11] = 0xff;
  a.bytes[12] = static_cast<uint8_t>(host_order >> 24);
  a.bytes[13] = static_cast<uint8_t>(host_order >> 16);
  a.bytes[14] = static_cast<uint8_t>(host_order >> 8);
  a.bytes[15] = static_cast<uint8_t>(host_order);
  return a;
}

IpAddr IpAddr::from_v4_bytes(const uint8_t b[4]) {
  IpAddr a;
  a.bytes[10] = 0xff;
  a.bytes[11] = 0xff;
  std::memcpy(&a.bytes[12], b, 4);
  return a;
}

IpAddr IpAddr::from_v6_bytes(const uint8_t b[16]) {
  IpAddr a;
  std::memcpy(a.bytes.data(), b, 16);
  return a;
}

std::optional<IpAddr> IpAddr::parse(std::string_view text) {
  if (text.empty() || text.size() >= INET6_ADDRSTRLEN) return std::nullopt;
  char buf[INET6_ADDRSTRLEN];
  std::memcpy(buf, text.data(), text.size());
  buf[text.size()] = '\0';
  uint8_t raw[16];
  if (inet_pton(AF_INET, buf, raw) == 1) return from_v4_bytes(raw);
  if (inet_pton(AF_INET6, buf, raw) == 1) return from_v6_bytes(raw);
  return std::nullopt;
}

bool IpAddr::is_unspecified() const {
  if (is_v4()) return bytes[12] == 0 && bytes[13] == 0 && bytes[14] == 0 && bytes[15] == 0;
  for (uint8_t b : bytes)
    if (b) return false;
  return true;
}

uint32_t IpAddr::v4_host_order() const {
  return (uint32_t{bytes[12]} << 24) | (uint32_t{bytes[13]} << 16) | (uint32_t{bytes[14]} << 8) |
         uint32_t{bytes[15]};
}

size_t IpAddr::format(char* out) const {
  if (is_v4()) {
    // Dotted quad by hand: inet_ntop formats IPv4 through sprintf, which
    // costs more than the rest of rendering a flow.
    char* p = out;
    for (int i = 12; i < 16; ++i) {
      const unsigned v = bytes[i];
      if (v >= 100) *p++ = static_cast<char>('0' + v / 100);
      if (v >= 10) *p++ = static_cast<char>('0' + v / 10 % 10);
      *p++ = static_cast<char>('0' + v % 10);
      if (i < 15) *p++ = '.';
    }
    return static_cast<size_t>(p - out);
  }
  static_assert(kMaxText >= INET6_ADDRSTRLEN);
  if (!inet_ntop(AF_INET6, bytes.data(), out, INET6_ADDRSTRLEN)) return 0;
  return std::strlen(out);
}

void IpAddr::append_to(std::string& out) const {
  char buf[kMaxText];
  out.append(buf, format(buf));
}

std::string IpAddr::to_string() const {
  std::string s;
  append_to(s);
  return s;
}

size_t IpAddrHash::operator()(const IpAddr& ip) const noexcept {
  return static_cast<size_t>(XXH3_64bits(ip.bytes.data(), ip.bytes.size()));
}

}  // namespace retina
