#include "core/flow_json.hpp"

#include <array>
#include <charconv>
#include <cstring>

#include "core/flow_fields.hpp"
#include "retina/flow_json.hpp"

namespace retina {
namespace json {

namespace {

// Length of the valid UTF-8 sequence at s[i] (lead byte >= 0x80), or 0.
size_t utf8_len(std::string_view s, size_t i) {
  const auto b = [&](size_t k) { return static_cast<unsigned char>(s[i + k]); };
  const auto cont = [&](size_t k) { return i + k < s.size() && (b(k) & 0xC0) == 0x80; };
  const unsigned char c = b(0);
  if (c >= 0xC2 && c <= 0xDF) return cont(1) ? 2 : 0;
  if (c >= 0xE0 && c <= 0xEF) {
    if (!cont(1) || !cont(2)) return 0;
    if (c == 0xE0 && b(1) < 0xA0) return 0;   // overlong
    if (c == 0xED && b(1) > 0x9F) return 0;   // surrogates
    return 3;
  }
  if (c >= 0xF0 && c <= 0xF4) {
    if (!cont(1) || !cont(2) || !cont(3)) return 0;
    if (c == 0xF0 && b(1) < 0x90) return 0;   // overlong
    if (c == 0xF4 && b(1) > 0x8F) return 0;   // above U+10FFFF
    return 4;
  }
  return 0;
}

constexpr char kHex[] = "0123456789abcdef";

}  // namespace

void append_string(std::string& out, std::string_view s) {
  out.push_back('"');
  size_t run = 0;  // start of the pending plain run
  size_t i = 0;
  while (i < s.size()) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
      ++i;
      continue;
    }
    if (c >= 0x80) {
      if (size_t n = utf8_len(s, i)) {
        i += n;
        continue;
      }
    }
    out.append(s.data() + run, i - run);
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      default:
        if (c < 0x20) {
          out += "\\u00";
          out.push_back(kHex[c >> 4]);
          out.push_back(kHex[c & 0xF]);
        } else {
          out += "\xEF\xBF\xBD";  // U+FFFD for a byte that starts no valid sequence
        }
    }
    run = ++i;
  }
  out.append(s.data() + run, s.size() - run);
  out.push_back('"');
}

void append_uint(std::string& out, uint64_t v) {
  char buf[24];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, static_cast<size_t>(r.ptr - buf));
}

void append_rfc3339(std::string& out, uint64_t unix_ns) {
  const uint64_t secs = unix_ns / 1'000'000'000;
  const uint32_t nanos = static_cast<uint32_t>(unix_ns % 1'000'000'000);
  const int64_t days = static_cast<int64_t>(secs / 86400);
  const uint32_t sod = static_cast<uint32_t>(secs % 86400);
  // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
  const int64_t z = days + 719468;
  const int64_t era = z / 146097;
  const uint32_t doe = static_cast<uint32_t>(z - era * 146097);
  const uint32_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const uint32_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const uint32_t mp = (5 * doy + 2) / 153;
  const uint32_t d = doy - (153 * mp + 2) / 5 + 1;
  const uint32_t m = mp < 10 ? mp + 3 : mp - 9;
  const int64_t y = static_cast<int64_t>(yoe) + era * 400 + (m <= 2);

  char buf[40];
  char* p = buf;
  auto put = [&](uint64_t v, int width) {
    for (int k = width - 1; k >= 0; --k) {
      p[k] = static_cast<char>('0' + v % 10);
      v /= 10;
    }
    p += width;
  };
  put(static_cast<uint64_t>(y), 4);
  *p++ = '-';
  put(m, 2);
  *p++ = '-';
  put(d, 2);
  *p++ = 'T';
  put(sod / 3600, 2);
  *p++ = ':';
  put(sod / 60 % 60, 2);
  *p++ = ':';
  put(sod % 60, 2);
  if (nanos != 0) {
    *p++ = '.';
    if (nanos % 1'000'000 == 0) put(nanos / 1'000'000, 3);
    else if (nanos % 1'000 == 0) put(nanos / 1'000, 6);
    else put(nanos, 9);
  }
  *p++ = 'Z';
  out.push_back('"');
  out.append(buf, static_cast<size_t>(p - buf));
  out.push_back('"');
}

}  // namespace json

namespace {

using json::append_string;
using json::append_uint;

// Writes `"key":` preceded by a comma unless it is the first member.
class Obj {
 public:
  explicit Obj(std::string& out) : out_(out) { out_.push_back('{'); }
  std::string& key(std::string_view k) {
    // One append of `,"key":` composed on the stack (keys are short literals).
    char buf[64];
    char* p = buf;
    if (!first_) *p++ = ',';
    first_ = false;
    *p++ = '"';
    const size_t n = k.size() < sizeof buf - 4 ? k.size() : sizeof buf - 4;
    std::memcpy(p, k.data(), n);
    p += n;
    *p++ = '"';
    *p++ = ':';
    out_.append(buf, static_cast<size_t>(p - buf));
    return out_;
  }
  void str(std::string_view k, std::string_view v) { append_string(key(k), v); }
  void raw(std::string_view k, std::string_view v) { key(k).append(v); }
  void num(std::string_view k, uint64_t v) { append_uint(key(k), v); }
  void boolean(std::string_view k, bool v) { key(k).append(v ? "true" : "false"); }
  void close() { out_.push_back('}'); }

 private:
  std::string& out_;
  bool first_ = true;
};

void append_ip(std::string& out, const IpAddr& ip) {
  out.push_back('"');
  ip.append_to(out);  // digits, dots, hex digits and colons only
  out.push_back('"');
}

void append_endpoint(std::string& out, const Endpoint& ep) {
  Obj o(out);
  if (!ep.namespace_.empty()) o.str("namespace", ep.namespace_);
  if (!ep.labels.empty()) {
    auto& s = o.key("labels");
    s.push_back('[');
    for (size_t i = 0; i < ep.labels.size(); ++i) {
      if (i) s.push_back(',');
      append_string(s, ep.labels[i]);
    }
    s.push_back(']');
  }
  if (const auto pod = flow_fields::pod_name_of(ep); !pod.empty()) o.str("pod_name", pod);
  if (!ep.workloads.empty()) {
    auto& s = o.key("workloads");
    s.push_back('[');
    for (size_t i = 0; i < ep.workloads.size(); ++i) {
      if (i) s.push_back(',');
      Obj w(s);
      if (!ep.workloads[i].name.empty()) w.str("name", ep.workloads[i].name);
      if (!ep.workloads[i].kind.empty()) w.str("kind", ep.workloads[i].kind);
      w.close();
    }
    s.push_back(']');
  }
  o.close();
}

void append_service(Obj& o, std::string_view key, const Endpoint* ep) {
  const std::string_view name = flow_fields::service_of(ep);
  if (name.empty()) return;
  auto& s = o.key(key);
  Obj svc(s);
  svc.str("name", name);
  if (!ep->namespace_.empty()) svc.str("namespace", ep->namespace_);
  svc.close();
}

void append_tcp_flags(std::string& out, uint16_t flags) {
  // Hubble's TCPFlags field order: FIN SYN RST PSH ACK URG ECE CWR NS,
  // the same order as the flag bits.
  Obj o(out);
  for (size_t i = 0; i < kTcpFlagNames.size(); ++i)
    if (flags & (1u << i)) o.boolean(kTcpFlagNames[i], true);
  o.close();
}

void append_l4(Obj& o, const Flow& f) {
  const char* name = nullptr;
  switch (f.proto) {
    case L4Protocol::kTCP: name = "TCP"; break;
    case L4Protocol::kUDP: name = "UDP"; break;
    case L4Protocol::kICMPv4: name = "ICMPv4"; break;
    case L4Protocol::kICMPv6: name = "ICMPv6"; break;
    case L4Protocol::kNone: return;
  }
  auto& s = o.key("l4");
  Obj l4(s);
  Obj p(l4.key(name));
  if (f.proto == L4Protocol::kTCP || f.proto == L4Protocol::kUDP) {
    if (f.src_port) p.num("source_port", f.src_port);
    if (f.dst_port) p.num("destination_port", f.dst_port);
    if (f.proto == L4Protocol::kTCP && f.tcp_flags) append_tcp_flags(p.key("flags"), f.tcp_flags);
  }
  p.close();
  l4.close();
}

void append_dns(Obj& o, const Flow& f) {
  auto& s = o.key("l7");
  Obj l7(s);
  if (f.l7_type == L7Type::REQUEST) l7.raw("type", "\"REQUEST\"");
  else if (f.l7_type == L7Type::RESPONSE) l7.raw("type", "\"RESPONSE\"");
  Obj d(l7.key("dns"));
  const DnsInfo& dns = *f.dns;
  if (!dns.query.empty()) d.str("query", dns.query);
  if (!dns.ips.empty()) {
    auto& a = d.key("ips");
    a.push_back('[');
    for (size_t i = 0; i < dns.ips.size(); ++i) {
      if (i) a.push_back(',');
      append_ip(a, dns.ips[i]);
    }
    a.push_back(']');
  }
  if (dns.rcode) d.num("rcode", dns.rcode);
  auto& q = d.key("qtypes");
  q.push_back('[');
  append_string(q, dns_qtype_name(dns.qtype));
  q.push_back(']');
  d.close();
  l7.close();
}

// Must be the last member written: when there is nothing to say the key
// is taken back by truncating `out`.
void append_extensions(std::string& out, Obj& o, const Flow& f) {
  const size_t start = out.size();
  o.key("extensions");
  out += "{\"@type\":\"type.googleapis.com/google.protobuf.Struct\",\"value\":";
  Obj v(out);
  struct Writer {
    Obj& v;
    void number(std::string_view k, uint64_t x) { v.num(k, x); }
    void text(std::string_view k, std::string_view x) { v.str(k, x); }
    void tcp_flag_counts(std::string_view k, const std::array<uint32_t, 9>& counts) {
      Obj t(v.key(k));
      for (const auto& [name, idx] : flow_fields::kSortedTcpFlags) t.num(name, counts[idx]);
      t.close();
    }
  } writer{v};
  if (!flow_fields::visit_extensions(f, writer)) {
    out.resize(start);
    return;
  }
  v.close();
  out.push_back('}');
}

}  // namespace

void append_flow_json(std::string& out, const Flow& f, const FlowJsonOptions& options) {
  out.reserve(out.size() + 1024);
  out += "{\"flow\":";
  Obj o(out);
  json::append_rfc3339(o.key("time"), f.time_ns);
  if (flow_fields::verdict_is_named(f.verdict)) append_string(o.key("verdict"), to_string(f.verdict));
  else if (f.verdict != Verdict::VERDICT_UNKNOWN) o.num("verdict", static_cast<uint64_t>(f.verdict));
  if (f.ip_version != IpVersion::IP_NOT_USED) {
    Obj ip(o.key("IP"));
    append_ip(ip.key("source"), f.src);
    append_ip(ip.key("destination"), f.dst);
    ip.raw("ipVersion", f.ip_version == IpVersion::IPv4 ? "\"IPv4\"" : "\"IPv6\"");
    ip.close();
  }
  append_l4(o, f);
  if (f.source) append_endpoint(o.key("source"), *f.source);
  if (f.destination) append_endpoint(o.key("destination"), *f.destination);
  o.raw("Type", flow_fields::is_l7(f) ? "\"L7\"" : "\"L3_L4\"");
  if (!options.node_name.empty()) o.str("node_name", options.node_name);
  if (f.dns) append_dns(o, f);
  {
    Obj et(o.key("event_type"));
    if (f.event_type) et.num("type", f.event_type);
    if (f.event_sub_type) et.num("sub_type", f.event_sub_type);
    et.close();
  }
  append_service(o, "source_service", f.source);
  append_service(o, "destination_service", f.destination);
  if (f.direction != TrafficDirection::TRAFFIC_DIRECTION_UNKNOWN)
    append_string(o.key("traffic_direction"), to_string(f.direction));
  if (f.observation_point != TraceObservationPoint::UNKNOWN_POINT)
    append_string(o.key("trace_observation_point"), to_string(f.observation_point));
  if (const uint32_t reason = flow_fields::hubble_drop_reason(f))
    o.str("drop_reason_desc", flow_fields::hubble_drop_reason_name(reason));
  if (f.is_reply_known) o.boolean("is_reply", f.is_reply);
  if (f.ifindex) {
    Obj itf(o.key("interface"));
    itf.num("index", f.ifindex);
    itf.close();
  }
  append_extensions(out, o, f);
  o.close();
  if (!options.node_name.empty()) {
    out += ",\"node_name\":";
    append_string(out, options.node_name);
  }
  out += ",\"time\":";
  json::append_rfc3339(out, f.time_ns);
  out.push_back('}');
}

std::string flow_to_json(const Flow& flow, const FlowJsonOptions& options) {
  std::string s;
  s.reserve(512);
  append_flow_json(s, flow, options);
  return s;
}

}  // namespace retina
