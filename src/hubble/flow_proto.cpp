#include "hubble/flow_proto.hpp"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>
#include <google/protobuf/wire_format_lite.h>

#include "core/flow_fields.hpp"

namespace retina::hubble {

namespace {

using google::protobuf::internal::WireFormatLite;

void set_ip(std::string* out, const IpAddr& ip) {
  out->clear();
  ip.append_to(*out);
}

void set_endpoint(const Endpoint& ep, ::flow::Endpoint& out) {
  if (const std::string_view ns = ep.namespace_; !ns.empty()) out.set_namespace_(ns.data(), ns.size());
  for (const auto& l : ep.labels) out.add_labels(l);
  if (const auto pod = flow_fields::pod_name_of(ep); !pod.empty()) out.set_pod_name(pod.data(), pod.size());
  for (const auto& w : ep.workloads) {
    auto* pw = out.add_workloads();
    pw->set_name(w.name);
    pw->set_kind(w.kind);
  }
}

void set_service(const Endpoint* ep, ::flow::Service* (::flow::Flow::*mut)(), ::flow::Flow& out) {
  const std::string_view name = flow_fields::service_of(ep);
  if (name.empty()) return;
  auto* s = (out.*mut)();
  s->set_name(name.data(), name.size());
  if (const std::string_view ns = ep->namespace_; !ns.empty()) s->set_namespace_(ns.data(), ns.size());
}

// google.protobuf.Struct encoded by hand straight into the Any's bytes:
// building a Struct message (a map of Values) per flow would cost more
// than the whole rest of the conversion.
//   Struct { map<string, Value> fields = 1; }
//   Value  { double number_value = 2; string string_value = 3; Struct struct_value = 5; }
class StructBytes {
 public:
  explicit StructBytes(std::string& out) : out_(out) {}

  void number(std::string_view k, uint64_t x) {
    // Value: tag(2, fixed64) + 8 bytes.
    entry(k, 9, [&](uint8_t* p) {
      p = WireFormatLite::WriteDoubleToArray(2, static_cast<double>(x), p);
      return p;
    });
  }
  void text(std::string_view k, std::string_view x) {
    const size_t value_len = 1 + varint_size(x.size()) + x.size();
    entry(k, value_len, [&](uint8_t* p) {
      p = WireFormatLite::WriteTagToArray(3, WireFormatLite::WIRETYPE_LENGTH_DELIMITED, p);
      p = google::protobuf::io::CodedOutputStream::WriteVarint32ToArray(static_cast<uint32_t>(x.size()), p);
      std::memcpy(p, x.data(), x.size());
      return p + x.size();
    });
  }
  void tcp_flag_counts(std::string_view k, const std::array<uint32_t, 9>& counts) {
    std::string inner;
    StructBytes nested(inner);
    for (const auto& [name, idx] : flow_fields::kSortedTcpFlags) nested.number(name, counts[idx]);
    const size_t value_len = 1 + varint_size(inner.size()) + inner.size();
    entry(k, value_len, [&](uint8_t* p) {
      p = WireFormatLite::WriteTagToArray(5, WireFormatLite::WIRETYPE_LENGTH_DELIMITED, p);
      p = google::protobuf::io::CodedOutputStream::WriteVarint32ToArray(static_cast<uint32_t>(inner.size()), p);
      std::memcpy(p, inner.data(), inner.size());
      return p + inner.size();
    });
  }

 private:
  static size_t varint_size(size_t v) {
    return google::protobuf::io::CodedOutputStream::VarintSize64(static_cast<uint64_t>(v));
  }
  // fields entry: tag(1, LEN) len { key: tag(1) len bytes, value: tag(2) len Value }
  template <class WriteValue>
  void entry(std::string_view key, size_t value_len, WriteValue&& write_value) {
    const size_t entry_len = 1 + varint_size(key.size()) + key.size() + 1 + varint_size(value_len) + value_len;
    const size_t total = 1 + varint_size(entry_len) + entry_len;
    const size_t at = out_.size();
    out_.resize(at + total);
    auto* p = reinterpret_cast<uint8_t*>(out_.data() + at);
    using google::protobuf::io::CodedOutputStream;
    p = WireFormatLite::WriteTagToArray(1, WireFormatLite::WIRETYPE_LENGTH_DELIMITED, p);
    p = CodedOutputStream::WriteVarint32ToArray(static_cast<uint32_t>(entry_len), p);
    p = WireFormatLite::WriteTagToArray(1, WireFormatLite::WIRETYPE_LENGTH_DELIMITED, p);
    p = CodedOutputStream::WriteVarint32ToArray(static_cast<uint32_t>(key.size()), p);
    std::memcpy(p, key.data(), key.size());
    p += key.size();
    p = WireFormatLite::WriteTagToArray(2, WireFormatLite::WIRETYPE_LENGTH_DELIMITED, p);
    p = CodedOutputStream::WriteVarint32ToArray(static_cast<uint32_t>(value_len), p);
    write_value(p);
  }

  std::string& out_;
};

}  // namespace

MessageScratch::MessageScratch() : block_(new char[256 << 10]) {
  google::protobuf::ArenaOptions o;
  o.initial_block = block_.get();
  o.initial_block_size = 256 << 10;
  arena_ = std::make_unique<google::protobuf::Arena>(o);
}

void set_timestamp(uint64_t ns, google::protobuf::Timestamp& out) {
  out.set_seconds(static_cast<int64_t>(ns / 1'000'000'000));
  out.set_nanos(static_cast<int32_t>(ns % 1'000'000'000));
}

uint64_t unix_ns(const google::protobuf::Timestamp& ts) {
  if (ts.seconds() < 0) return 0;
  return static_cast<uint64_t>(ts.seconds()) * 1'000'000'000 + static_cast<uint64_t>(ts.nanos() < 0 ? 0 : ts.nanos());
}

void to_proto(const Flow& f, std::string_view node_name, ::flow::Flow& out) {
  out.Clear();
  set_timestamp(f.time_ns, *out.mutable_time());
  out.set_verdict(static_cast<::flow::Verdict>(f.verdict));  // an open enum keeps 15 and 16

  if (f.ip_version != IpVersion::IP_NOT_USED) {
    auto* ip = out.mutable_ip();
    set_ip(ip->mutable_source(), f.src);
    set_ip(ip->mutable_destination(), f.dst);
    ip->set_ipversion(f.ip_version == IpVersion::IPv4 ? ::flow::IPv4 : ::flow::IPv6);
  }

  switch (f.proto) {
    case L4Protocol::kTCP: {
      auto* tcp = out.mutable_l4()->mutable_tcp();
      tcp->set_source_port(f.src_port);
      tcp->set_destination_port(f.dst_port);
      if (f.tcp_flags) {
        auto* fl = tcp->mutable_flags();
        fl->set_fin(f.tcp_flags & kFIN);
        fl->set_syn(f.tcp_flags & kSYN);
        fl->set_rst(f.tcp_flags & kRST);
        fl->set_psh(f.tcp_flags & kPSH);
        fl->set_ack(f.tcp_flags & kACK);
        fl->set_urg(f.tcp_flags & kURG);
        fl->set_ece(f.tcp_flags & kECE);
        fl->set_cwr(f.tcp_flags & kCWR);
        fl->set_ns(f.tcp_flags & kNS);
      }
      break;
    }
    case L4Protocol::kUDP: {
      auto* udp = out.mutable_l4()->mutable_udp();
      udp->set_source_port(f.src_port);
      udp->set_destination_port(f.dst_port);
      break;
    }
    case L4Protocol::kICMPv4: out.mutable_l4()->mutable_icmpv4(); break;
    case L4Protocol::kICMPv6: out.mutable_l4()->mutable_icmpv6(); break;
    case L4Protocol::kNone: break;
  }

  if (f.source) set_endpoint(*f.source, *out.mutable_source());
  if (f.destination) set_endpoint(*f.destination, *out.mutable_destination());
  out.set_type(flow_fields::is_l7(f) ? ::flow::L7 : ::flow::L3_L4);
  if (!node_name.empty()) out.set_node_name(node_name.data(), node_name.size());

  if (f.dns) {
    auto* l7 = out.mutable_l7();
    if (f.l7_type == L7Type::REQUEST) l7->set_type(::flow::REQUEST);
    else if (f.l7_type == L7Type::RESPONSE) l7->set_type(::flow::RESPONSE);
    auto* dns = l7->mutable_dns();
    dns->set_query(f.dns->query);
    for (const auto& ip : f.dns->ips) set_ip(dns->add_ips(), ip);
    dns->set_rcode(f.dns->rcode);
    dns->add_qtypes(dns_qtype_name(f.dns->qtype));
  }

  auto* et = out.mutable_event_type();
  et->set_type(f.event_type);
  et->set_sub_type(f.event_sub_type);
  set_service(f.source, &::flow::Flow::mutable_source_service, out);
  set_service(f.destination, &::flow::Flow::mutable_destination_service, out);
  out.set_traffic_direction(static_cast<::flow::TrafficDirection>(f.direction));
  out.set_trace_observation_point(static_cast<::flow::TraceObservationPoint>(f.observation_point));
  out.set_drop_reason_desc(static_cast<::flow::DropReason>(flow_fields::hubble_drop_reason(f)));
  if (f.is_reply_known) out.mutable_is_reply()->set_value(f.is_reply);
  if (f.ifindex) out.mutable_interface()->set_index(f.ifindex);

  std::string* value = nullptr;
  struct Lazy {
    ::flow::Flow& out;
    std::string*& value;
    StructBytes bytes() {
      if (!value) {
        auto* any = out.mutable_extensions();
        any->set_type_url("type.googleapis.com/google.protobuf.Struct");
        value = any->mutable_value();
        value->clear();
      }
      return StructBytes(*value);
    }
    void number(std::string_view k, uint64_t x) { bytes().number(k, x); }
    void text(std::string_view k, std::string_view x) { bytes().text(k, x); }
    void tcp_flag_counts(std::string_view k, const std::array<uint32_t, 9>& c) { bytes().tcp_flag_counts(k, c); }
  } lazy{out, value};
  flow_fields::visit_extensions(f, lazy);
}

}  // namespace retina::hubble
