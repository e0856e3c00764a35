#include "hubble/flow_proto.hpp"

#include <algorithm>
#include <cstring>

#include "core/flow_fields.hpp"

namespace retina::hubble {

namespace {

#define RETINA_INLINE [[gnu::always_inline]] inline

// Appends protobuf wire format to a string. Proto3 leaves scalars that hold
// their default out; sub-messages are written when present, even empty.
// Bytes go through a cursor into the string's spare room, not one append
// per field: each field checks for room once (growing is an out-of-line
// call, rare once the caller's buffer has reached its size) and then
// writes unchecked, and everything per field is inlined so that a field
// of constant number costs a few stores. finish() trims the string.
class Wire {
 public:
  enum Type : uint8_t { kVarint = 0, kFixed64 = 1, kLen = 2 };
  explicit Wire(std::string& out) : out_(out), at_(out.size()) {
    out_.resize(std::max(out_.capacity(), at_ + 512));
    data_ = out_.data();
    end_ = out_.size();
  }
  void finish() { out_.resize(at_); }

  RETINA_INLINE void varint(uint64_t v) {
    room(10);
    put_varint(v);
  }
  RETINA_INLINE void tag(uint32_t field, Type t) { varint((uint64_t{field} << 3) | t); }
  RETINA_INLINE void number(uint32_t field, uint64_t v) {
    if (!v) return;
    room(20);
    put_varint((uint64_t{field} << 3) | kVarint);
    put_varint(v);
  }
  RETINA_INLINE void string(uint32_t field, std::string_view s) {
    if (!s.empty()) element(field, s);
  }
  // A repeated string's element: written even when empty.
  RETINA_INLINE void element(uint32_t field, std::string_view s) {
    room(s.size() + 20);
    put_varint((uint64_t{field} << 3) | kLen);
    put_varint(s.size());
    std::memcpy(data_ + at_, s.data(), s.size());
    at_ += s.size();
  }
  void ip(uint32_t field, const IpAddr& ip) {
    // At most 45 characters (INET6_ADDRSTRLEN - 1): a one-byte length.
    room(IpAddr::kMaxText + 12);
    put_varint((uint64_t{field} << 3) | kLen);
    const size_t n = ip.format(data_ + at_ + 1);
    data_[at_] = static_cast<char>(n);
    at_ += 1 + n;
  }
  RETINA_INLINE void float64(uint32_t field, double v) {
    room(20);
    put_varint((uint64_t{field} << 3) | kFixed64);
    std::memcpy(data_ + at_, &v, 8);  // little-endian hosts only, as the ABI headers assume
    at_ += 8;
  }
  // A sub-message: open() writes the tag and a one-byte length that
  // close() fills in, moving the body when the length needs more bytes.
  RETINA_INLINE size_t open(uint32_t field) {
    room(12);
    put_varint((uint64_t{field} << 3) | kLen);
    data_[at_++] = 0;
    return at_;
  }
  RETINA_INLINE void close(size_t start) {
    const size_t len = at_ - start;
    if (len < 0x80) [[likely]] {
      data_[start - 1] = static_cast<char>(len);
      return;
    }
    close_long(start, len);
  }

 private:
  RETINA_INLINE void room(size_t n) {
    if (end_ - at_ < n) [[unlikely]] grow(n);
  }
  [[gnu::noinline]] void grow(size_t n) {
    out_.resize(std::max(out_.size() * 2, at_ + n));
    data_ = out_.data();
    end_ = out_.size();
  }
  [[gnu::noinline]] void close_long(size_t start, size_t len) {
    char buf[10];
    const size_t n = encode(len, buf);
    room(n - 1);
    std::memmove(data_ + start + n - 1, data_ + start, len);
    std::memcpy(data_ + start - 1, buf, n);
    at_ += n - 1;
  }
  RETINA_INLINE void put_varint(uint64_t v) {
    if (v < 0x80) [[likely]] {
      data_[at_++] = static_cast<char>(v);
      return;
    }
    at_ += encode(v, data_ + at_);
  }
  static size_t encode(uint64_t v, char* buf) {
    size_t n = 0;
    while (v >= 0x80) {
      buf[n++] = static_cast<char>(v | 0x80);
      v >>= 7;
    }
    buf[n++] = static_cast<char>(v);
    return n;
  }
  std::string& out_;
  char* data_;  // out_.data(), kept across the writes
  size_t at_;   // end of what is written; out_ beyond it is spare room
  size_t end_;  // out_.size()
};

void timestamp(Wire& w, uint32_t field, uint64_t ns) {
  const size_t m = w.open(field);
  w.number(1, ns / 1'000'000'000);
  w.number(2, ns % 1'000'000'000);
  w.close(m);
}

// flow.Endpoint's fields: namespace = 3, labels = 4, pod_name = 5, workloads = 6.
void endpoint_body(Wire& w, const Endpoint& ep) {
  w.string(3, ep.namespace_);
  for (const auto& l : ep.labels) w.element(4, l);
  w.string(5, flow_fields::pod_name_of(ep));
  for (const auto& wl : ep.workloads) {
    const size_t k = w.open(6);
    w.string(1, wl.name);
    w.string(2, wl.kind);
    w.close(k);
  }
}

// flow.Service: name = 1, namespace = 2.
void service(Wire& w, uint32_t field, const Endpoint* ep) {
  const std::string_view name = flow_fields::service_of(ep);
  if (name.empty()) return;
  const size_t m = w.open(field);
  w.string(1, name);
  w.string(2, ep->namespace_);
  w.close(m);
}

// google.protobuf.Struct, written into the Any's value:
//   Struct { map<string, Value> fields = 1; }
//   Value  { double number_value = 2; string string_value = 3; Struct struct_value = 5; }
// A Value's kind is a oneof, so a number is written even when zero.
class StructWire {
 public:
  explicit StructWire(Wire& w) : w_(w) {}
  void number(std::string_view k, uint64_t x) {
    const Entry e = entry(k);
    w_.float64(2, static_cast<double>(x));
    done(e);
  }
  void text(std::string_view k, std::string_view x) {
    const Entry e = entry(k);
    w_.element(3, x);
    done(e);
  }
  void tcp_flag_counts(std::string_view k, const std::array<uint32_t, 9>& counts) {
    const Entry e = entry(k);
    const size_t s = w_.open(5);
    for (const auto& [name, idx] : flow_fields::kSortedTcpFlags) number(name, counts[idx]);
    w_.close(s);
    done(e);
  }

 private:
  // fields entry { key = 1; value = 2 }: where the entry's and the Value's bodies start.
  struct Entry {
    size_t entry, value;
  };
  Entry entry(std::string_view key) {
    const size_t e = w_.open(1);
    w_.element(1, key);
    return {e, w_.open(2)};
  }
  void done(Entry e) {
    w_.close(e.value);
    w_.close(e.entry);
  }
  Wire& w_;
};

// The Any is opened at the first extension only: most flows have some, a
// flow without any has no `extensions` field at all.
struct Extensions {
  Wire& w;
  size_t any = 0, value = 0;
  bool open = false;
  StructWire body() {
    if (!open) {
      any = w.open(150000);
      w.element(1, "type.googleapis.com/google.protobuf.Struct");
      value = w.open(2);
      open = true;
    }
    return StructWire(w);
  }
  // Each entry opens and closes on its own, so nesting stays balanced.
  void number(std::string_view k, uint64_t x) { body().number(k, x); }
  void text(std::string_view k, std::string_view x) { body().text(k, x); }
  void tcp_flag_counts(std::string_view k, const std::array<uint32_t, 9>& c) { body().tcp_flag_counts(k, c); }
  void finish() {
    if (!open) return;
    w.close(value);
    w.close(any);
  }
};

void endpoint(Wire& w, uint32_t field, const Endpoint& ep) {
  const size_t m = w.open(field);
  endpoint_body(w, ep);
  w.close(m);
}

}  // namespace

void set_timestamp(uint64_t ns, google::protobuf::Timestamp& out) {
  out.set_seconds(static_cast<int64_t>(ns / 1'000'000'000));
  out.set_nanos(static_cast<int32_t>(ns % 1'000'000'000));
}

uint64_t unix_ns(const google::protobuf::Timestamp& ts) {
  if (ts.seconds() < 0) return 0;
  return static_cast<uint64_t>(ts.seconds()) * 1'000'000'000 + static_cast<uint64_t>(ts.nanos() < 0 ? 0 : ts.nanos());
}

// Field numbers are flow.Flow's (proto/flow/flow.proto), in ascending order.
void append_flow_wire(const Flow& f, std::string_view node_name, std::string& out) {
  Wire w(out);
  timestamp(w, 1, f.time_ns);
  w.number(2, static_cast<uint64_t>(f.verdict));  // an open enum keeps 15 and 16

  if (f.ip_version != IpVersion::IP_NOT_USED) {
    const size_t m = w.open(5);
    w.ip(1, f.src);
    w.ip(2, f.dst);
    w.number(3, f.ip_version == IpVersion::IPv4 ? ::flow::IPv4 : ::flow::IPv6);
    w.close(m);
  }

  // Layer4 { oneof: TCP = 1, UDP = 2, ICMPv4 = 3, ICMPv6 = 4 }
  if (f.proto != L4Protocol::kNone) {
    const size_t l4 = w.open(6);
    switch (f.proto) {
      case L4Protocol::kTCP: {
        const size_t t = w.open(1);
        w.number(1, f.src_port);
        w.number(2, f.dst_port);
        if (f.tcp_flags) {
          // TCPFlags: FIN = 1 ... NS = 9, Hubble's order of the flag bits.
          static constexpr uint16_t kBits[] = {kFIN, kSYN, kRST, kPSH, kACK, kURG, kECE, kCWR, kNS};
          const size_t fl = w.open(3);
          for (uint32_t i = 0; i < std::size(kBits); ++i) w.number(i + 1, (f.tcp_flags & kBits[i]) != 0);
          w.close(fl);
        }
        w.close(t);
        break;
      }
      case L4Protocol::kUDP: {
        const size_t u = w.open(2);
        w.number(1, f.src_port);
        w.number(2, f.dst_port);
        w.close(u);
        break;
      }
      case L4Protocol::kICMPv4: w.close(w.open(3)); break;
      case L4Protocol::kICMPv6: w.close(w.open(4)); break;
      case L4Protocol::kNone: break;
    }
    w.close(l4);
  }

  if (f.source) endpoint(w, 8, *f.source);
  if (f.destination) endpoint(w, 9, *f.destination);
  w.number(10, flow_fields::is_l7(f) ? ::flow::L7 : ::flow::L3_L4);
  w.string(11, node_name);

  if (f.dns) {
    // Layer7 { type = 1; dns = 100 } ; DNS { query = 1; ips = 2; rcode = 6; qtypes = 7 }
    const size_t l7 = w.open(15);
    if (f.l7_type == L7Type::REQUEST) w.number(1, ::flow::REQUEST);
    else if (f.l7_type == L7Type::RESPONSE) w.number(1, ::flow::RESPONSE);
    const size_t d = w.open(100);
    w.string(1, f.dns->query);
    for (const auto& ip : f.dns->ips) w.ip(2, ip);
    w.number(6, f.dns->rcode);
    w.element(7, dns_qtype_name(f.dns->qtype));
    w.close(d);
    w.close(l7);
  }

  const size_t et = w.open(19);  // CiliumEventType { type = 1; sub_type = 2 }
  w.number(1, f.event_type);
  w.number(2, f.event_sub_type);
  w.close(et);
  service(w, 20, f.source);
  service(w, 21, f.destination);
  w.number(22, static_cast<uint64_t>(f.direction));
  w.number(24, static_cast<uint64_t>(f.observation_point));
  w.number(25, flow_fields::hubble_drop_reason(f));
  if (f.is_reply_known) {
    const size_t r = w.open(26);  // BoolValue { value = 1 }
    w.number(1, f.is_reply);
    w.close(r);
  }
  if (f.ifindex) {
    const size_t i = w.open(28);  // NetworkInterface { index = 1 }
    w.number(1, f.ifindex);
    w.close(i);
  }
  Extensions ext{w};
  flow_fields::visit_extensions(f, ext);
  ext.finish();
  w.finish();
}

void to_proto(const Flow& flow, std::string_view node_name, ::flow::Flow& out) {
  std::string bytes;
  append_flow_wire(flow, node_name, bytes);
  out.Clear();
  out.ParseFromString(bytes);
}

FlowResponse::FlowResponse(std::string_view node_name) : node_(node_name) {
  resp_.set_node_name(node_);
  bytes_ = resp_.GetReflection()->MutableUnknownFields(&resp_)->AddLengthDelimited(1);
}

const ::observer::GetFlowsResponse& FlowResponse::set(const Flow& flow) {
  bytes_->clear();
  append_flow_wire(flow, node_, *bytes_);
  set_timestamp(flow.time_ns, *resp_.mutable_time());
  return resp_;
}

const ::observer::GetFlowsResponse& FlowResponse::set_encoded(uint64_t time_ns, std::string& bytes) {
  bytes_->swap(bytes);
  set_timestamp(time_ns, *resp_.mutable_time());
  return resp_;
}

}  // namespace retina::hubble
