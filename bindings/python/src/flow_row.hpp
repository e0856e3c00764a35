// The tabular form of a flow: one list of columns shared by Flow.to_dict(),
// the DataFrame columns of a FlowBatch, and their documentation. A visitor
// sees each column once per row, always in the same order.
#pragma once

#include <cstdint>
#include <string_view>

#include <pybind11/numpy.h>

#include <mutex>

#include "bindings.hpp"

namespace retina::py {

// The row of a flow as a dict (the keys and values a DataFrame row has).
py::dict flow_row_dict(const OwnedFlow& o);

// Columns of `flows` as {name: numpy array}; strings are object arrays of
// str, time is datetime64[ns].
py::dict flow_columns(const std::vector<OwnedFlow>& flows);

// The structured numpy array of `flows`; string fields are codes into
// `strings` (see StringTable).
py::array flow_numpy(const std::vector<OwnedFlow>& flows, StringTable& strings, std::mutex& strings_mu);
py::dtype flow_numpy_dtype();

// Endpoint fields shown in the columns.
struct EndpointView {
  std::string_view kind, namespace_, name, pod, workload, workload_kind, service, zone;
};
inline EndpointView endpoint_view(const Endpoint* ep) {
  EndpointView v;
  if (!ep) return v;
  v.kind = to_string(ep->kind);
  v.namespace_ = ep->namespace_;
  v.name = ep->name;
  if (ep->kind == EndpointKind::kPod) v.pod = ep->name;
  if (const Workload* w = ep->workload()) {
    v.workload = w->name;
    v.workload_kind = w->kind;
  }
  // The service an endpoint belongs to: itself when it is one.
  v.service = ep->kind == EndpointKind::kService ? std::string_view(ep->name) : std::string_view(ep->service);
  v.zone = ep->zone;
  return v;
}

// Calls, in column order: v.time(name, ns), v.text(name, sv), v.ip(name,
// ip, present), v.num<T>(name, x), v.flag(name, b), v.ips(name, dns).
template <class V>
void visit_row(const OwnedFlow& o, V& v) {
  const Flow& f = o.flow();
  const bool has_ip = f.ip_version != IpVersion::IP_NOT_USED;
  const bool drop = f.verdict == Verdict::DROPPED;
  v.time("time", f.time_ns);
  v.text("verdict", to_string(f.verdict));
  v.text("origin", origin_name(f.origin));
  v.text("ip_version", to_string(f.ip_version));
  v.ip("src_ip", f.src, has_ip);
  v.ip("dst_ip", f.dst, has_ip);
  v.text("proto", proto_name(f.proto));
  v.template num<uint16_t>("src_port", f.src_port);
  v.template num<uint16_t>("dst_port", f.dst_port);
  v.flags("tcp_flags", f.tcp_flags);
  v.text("direction", to_string(f.direction));
  v.text("observation_point", to_string(f.observation_point));
  v.flag("is_reply", f.is_reply_known && f.is_reply);
  v.flag("is_reply_known", f.is_reply_known);
  v.template num<uint64_t>("packets", f.packets());
  v.template num<uint64_t>("bytes", f.total_bytes());
  const EndpointView s = endpoint_view(o.source().get());
  const EndpointView d = endpoint_view(o.destination().get());
  v.text("src_kind", s.kind);
  v.text("src_namespace", s.namespace_);
  v.text("src_name", s.name);
  v.text("src_pod", s.pod);
  v.text("src_workload", s.workload);
  v.text("src_workload_kind", s.workload_kind);
  v.text("src_service", s.service);
  v.text("src_zone", s.zone);
  v.text("dst_kind", d.kind);
  v.text("dst_namespace", d.namespace_);
  v.text("dst_name", d.name);
  v.text("dst_pod", d.pod);
  v.text("dst_workload", d.workload);
  v.text("dst_workload_kind", d.workload_kind);
  v.text("dst_service", d.service);
  v.text("dst_zone", d.zone);
  v.text("drop_reason", drop ? f.drop_reason_desc : std::string_view());
  v.template num<uint32_t>("drop_reason_code", f.drop_reason);
  v.text("dns_query", f.dns ? std::string_view(f.dns->query) : std::string_view());
  v.text("dns_qtype", f.dns ? dns_qtype_name(f.dns->qtype) : "");
  v.text("dns_rcode", f.dns ? dns_rcode_name(f.dns->rcode) : "");
  v.ips("dns_ips", f.dns);
  v.template num<uint32_t>("ifindex", f.ifindex);
}

}  // namespace retina::py
