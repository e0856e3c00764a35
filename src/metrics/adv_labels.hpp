// Label values of the advanced metrics, written into a reusable key buffer
// (each value prefixed with its 16-bit length, so values need no escaping
// and the key splits back into values at scrape time; addresses stay
// binary), and the exposition of a series from its key.
#pragma once

#include <arpa/inet.h>

#include <charconv>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <string_view>

#include "metrics/adv_plan.hpp"
#include "retina/endpoint.hpp"
#include "retina/flow.hpp"
#include "retina/ip.hpp"

namespace retina::metrics::adv {

inline constexpr std::string_view kUnknown = "unknown";
inline constexpr std::string_view kOverflow = "overflow";
// A value's 16-bit prefix: its length, or kRawIp | 4 or 16 for an address
// kept in binary and formatted only at scrape time (inet_ntop costs more
// than the rest of an event).
inline constexpr size_t kMaxValue = 0x7FFF;
inline constexpr uint16_t kRawIp = 0x8000;

// Text form of an address into `buf` (at least 46 bytes); returns its length.
inline size_t format_ip(const uint8_t* raw, size_t n, char* buf) {
  if (n == 4) {
    char* p = buf;
    for (size_t i = 0; i < 4; ++i) {
      if (i) *p++ = '.';
      p = std::to_chars(p, p + 3, raw[i]).ptr;
    }
    return static_cast<size_t>(p - buf);
  }
  if (!::inet_ntop(AF_INET6, raw, buf, 46)) return 0;
  return std::strlen(buf);
}

class KeyBuilder {
 public:
  void clear() noexcept { buf_.clear(); }
  std::string_view view() const noexcept { return buf_; }
  void reserve(size_t n) { buf_.reserve(n); }

  void value(std::string_view v) {
    if (v.size() > kMaxValue) v = v.substr(0, kMaxValue);
    const auto n = static_cast<uint16_t>(v.size());
    buf_.push_back(static_cast<char>(n & 0xFF));
    buf_.push_back(static_cast<char>(n >> 8));
    buf_.append(v);
  }
  void value_or_unknown(std::string_view v) { value(v.empty() ? kUnknown : v); }
  void number(uint64_t n) {
    char tmp[24];
    auto [end, ec] = std::to_chars(tmp, tmp + sizeof tmp, n);
    (void)ec;
    value(std::string_view(tmp, static_cast<size_t>(end - tmp)));
  }
  void ip(const IpAddr& a) {
    const bool v4 = a.is_v4();
    const uint16_t tag = kRawIp | (v4 ? 4 : 16);
    buf_.push_back(static_cast<char>(tag & 0xFF));
    buf_.push_back(static_cast<char>(tag >> 8));
    buf_.append(reinterpret_cast<const char*>(a.bytes.data()) + (v4 ? 12 : 0), v4 ? 4 : 16);
  }
  // A value assembled in place: open(), append to raw(), close().
  size_t open() {
    buf_.append(2, '\0');
    return buf_.size();
  }
  std::string& raw() { return buf_; }
  void close(size_t at) {
    size_t n = buf_.size() - at;
    if (n > kMaxValue) {
      buf_.resize(at + kMaxValue);
      n = kMaxValue;
    }
    buf_[at - 2] = static_cast<char>(n & 0xFF);
    buf_[at - 1] = static_cast<char>(n >> 8);
  }
  void append_key(std::string_view other) { buf_.append(other); }

 private:
  std::string buf_;
};

// One side of a flow, for its context labels.
struct SideRef {
  const Endpoint* ep;
  const IpAddr* ip;
  uint16_t port;
  bool has_port;
};

inline void append_ctx_values(KeyBuilder& k, uint8_t bits, const SideRef& s) {
  const Endpoint* ep = s.ep;
  if (bits & kCtxIp) k.ip(*s.ip);
  if (bits & kCtxNamespace) k.value_or_unknown(ep ? std::string_view(ep->namespace_) : std::string_view());
  if (bits & kCtxPodname) {
    k.value_or_unknown(ep && ep->kind == EndpointKind::kPod ? std::string_view(ep->name) : std::string_view());
  }
  if (bits & kCtxWorkload) {
    const Workload* w = ep ? ep->workload() : nullptr;
    k.value_or_unknown(w ? std::string_view(w->kind) : std::string_view());
    k.value_or_unknown(w ? std::string_view(w->name) : std::string_view());
  }
  if (bits & kCtxService) k.value_or_unknown(ep ? std::string_view(ep->service) : std::string_view());
  if (bits & kCtxPort) {
    if (s.has_port) k.number(s.port);
    else k.value(kUnknown);
  }
  if (bits & kCtxZone) k.value_or_unknown(ep ? std::string_view(ep->zone) : std::string_view());
}

// Splits a key back into values; false when it is malformed (never, for
// keys built by KeyBuilder).
template <class F>
bool for_each_value(std::string_view key, F&& fn) {
  size_t i = 0;
  while (i < key.size()) {
    if (key.size() - i < 2) return false;
    const size_t tag = static_cast<uint8_t>(key[i]) | (static_cast<size_t>(static_cast<uint8_t>(key[i + 1])) << 8);
    const size_t n = tag & kMaxValue;
    i += 2;
    if (key.size() - i < n) return false;
    if (tag & kRawIp) {
      if (n != 4 && n != 16) return false;
      char text[64];
      fn(std::string_view(text, format_ip(reinterpret_cast<const uint8_t*>(key.data() + i), n, text)));
    } else {
      fn(key.substr(i, n));
    }
    i += n;
  }
  return true;
}

// Appends a label value with Prometheus escaping (backslash, quote, newline).
inline void append_label_value(std::string& out, std::string_view v) {
  size_t start = 0;
  for (size_t i = 0; i < v.size(); ++i) {
    const char c = v[i];
    if (c != '\\' && c != '"' && c != '\n') continue;
    out.append(v.data() + start, i - start);
    out += c == '\n' ? "\\n" : (c == '"' ? "\\\"" : "\\\\");
    start = i + 1;
  }
  out.append(v.data() + start, v.size() - start);
}

// `name{l1="v1",...} value\n` with the values taken from `key`.
inline void write_sample(std::string& out, std::string_view name, std::span<const std::string> labels,
                         std::string_view key, uint64_t value) {
  out.append(name);
  size_t i = 0;
  for_each_value(key, [&](std::string_view v) {
    if (i >= labels.size()) return;
    out += i == 0 ? '{' : ',';
    out += labels[i];
    out += "=\"";
    append_label_value(out, v);
    out += '"';
    ++i;
  });
  if (i) out += '}';
  out += ' ';
  char tmp[24];
  auto [end, ec] = std::to_chars(tmp, tmp + sizeof tmp, value);
  (void)ec;
  out.append(tmp, static_cast<size_t>(end - tmp));
  out += '\n';
}

}  // namespace retina::metrics::adv
