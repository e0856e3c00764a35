// retina.Flow: one decoded and enriched flow (a retina::OwnedFlow), with
// Hubble's field names as read-only properties.
#include <pybind11/numpy.h>

#include <fmt/format.h>

#include "bindings.hpp"
#include "flow_row.hpp"
#include "py_endpoint.hpp"
#include "retina/flow_json.hpp"

namespace retina::py {

namespace {

py::object endpoint_or_none(const EndpointPtr& ep) {
  if (!ep) return py::none();
  return py::cast(PyEndpoint{ep});
}

py::object dns_dict(const Flow& f) {
  if (!f.dns) return py::none();
  const DnsInfo& d = *f.dns;
  py::dict out;
  out["query"] = d.query;
  out["id"] = d.id;
  out["qtype"] = dns_qtype_name(d.qtype);
  out["qtypes"] = py::make_tuple(dns_qtype_name(d.qtype));
  out["rcode"] = dns_rcode_name(d.rcode);
  out["rcode_code"] = d.rcode;
  out["answer_count"] = d.answer_count;
  out["is_response"] = d.is_response;
  py::list ips;
  for (const auto& ip : d.ips) ips.append(ip_str(ip));
  out["ips"] = ips;
  return out;
}

const char* l7_name(L7Type t) {
  switch (t) {
    case L7Type::REQUEST: return "REQUEST";
    case L7Type::RESPONSE: return "RESPONSE";
    case L7Type::UNKNOWN_L7_TYPE: break;
  }
  return "UNKNOWN_L7_TYPE";
}

}  // namespace

void register_flow(py::module_& m) {
  py::class_<OwnedFlow>(m, "Flow", R"doc(
One decoded and enriched flow, with Hubble's field names. Strings are ""
when a field does not apply; source/destination are Endpoint or None.
packets and bytes follow Retina's counting rule (a report stands for
prev_packets + 1 packets and bytes + prev_bytes bytes).
)doc")
      .def_property_readonly("time_ns", [](const OwnedFlow& o) { return o.flow().time_ns; },
                             "Unix time in nanoseconds.")
      .def_property_readonly("time",
                             [](const OwnedFlow& o) {
                               return py::module_::import("numpy").attr("datetime64")(static_cast<int64_t>(o.flow().time_ns), "ns");
                             },
                             "numpy.datetime64 in nanoseconds (UTC).")
      .def_property_readonly("verdict", [](const OwnedFlow& o) { return to_string(o.flow().verdict); })
      .def_property_readonly("origin", [](const OwnedFlow& o) { return origin_name(o.flow().origin); },
                             "The plugin that produced it: packetparser, dropreason, dns or tcpretrans.")
      .def_property_readonly("ip_version", [](const OwnedFlow& o) { return to_string(o.flow().ip_version); })
      .def_property_readonly("src_ip",
                             [](const OwnedFlow& o) -> py::object {
                               if (o.flow().ip_version == IpVersion::IP_NOT_USED) return py::str("");
                               return ip_str(o.flow().src);
                             })
      .def_property_readonly("dst_ip",
                             [](const OwnedFlow& o) -> py::object {
                               if (o.flow().ip_version == IpVersion::IP_NOT_USED) return py::str("");
                               return ip_str(o.flow().dst);
                             })
      .def_property_readonly("proto", [](const OwnedFlow& o) { return proto_name(o.flow().proto); })
      .def_property_readonly("src_port", [](const OwnedFlow& o) { return o.flow().src_port; })
      .def_property_readonly("dst_port", [](const OwnedFlow& o) { return o.flow().dst_port; })
      .def_property_readonly("tcp_flags", [](const OwnedFlow& o) { return tcp_flags_text(o.flow().tcp_flags); },
                             "This packet's TCP flags, e.g. \"SYN|ACK\".")
      .def_property_readonly("tcp_flag_bits", [](const OwnedFlow& o) { return o.flow().tcp_flags; })
      .def_property_readonly("trace_observation_point",
                             [](const OwnedFlow& o) { return to_string(o.flow().observation_point); })
      .def_property_readonly("observation_point", [](const OwnedFlow& o) { return to_string(o.flow().observation_point); })
      .def_property_readonly("traffic_direction", [](const OwnedFlow& o) { return to_string(o.flow().direction); })
      .def_property_readonly("direction", [](const OwnedFlow& o) { return to_string(o.flow().direction); })
      .def_property_readonly("is_reply",
                             [](const OwnedFlow& o) -> py::object {
                               if (!o.flow().is_reply_known) return py::none();
                               return py::bool_(o.flow().is_reply);
                             },
                             "True/False, or None when the connection was picked up mid-stream.")
      .def_property_readonly("event_type", [](const OwnedFlow& o) { return o.flow().event_type; })
      .def_property_readonly("event_sub_type", [](const OwnedFlow& o) { return o.flow().event_sub_type; })
      .def_property_readonly("ifindex", [](const OwnedFlow& o) { return o.flow().ifindex; })
      .def_property_readonly("packets", [](const OwnedFlow& o) { return o.flow().packets(); })
      .def_property_readonly("bytes", [](const OwnedFlow& o) { return o.flow().total_bytes(); })
      .def_property_readonly("packet_bytes", [](const OwnedFlow& o) { return o.flow().bytes; },
                             "Length of the reported packet itself (Hubble's extensions.bytes).")
      .def_property_readonly("prev_packets", [](const OwnedFlow& o) { return o.flow().prev_packets; })
      .def_property_readonly("prev_bytes", [](const OwnedFlow& o) { return o.flow().prev_bytes; })
      .def_property_readonly("prev_flag_counts",
                             [](const OwnedFlow& o) {
                               py::dict d;
                               for (size_t i = 0; i < kTcpFlagNames.size(); ++i)
                                 d[py::str(std::string(kTcpFlagNames[i]))] = o.flow().prev_flag_counts[i];
                               return d;
                             })
      .def_property_readonly("tcp_id", [](const OwnedFlow& o) { return o.flow().tcp_id; })
      .def_property_readonly("drop_reason",
                             [](const OwnedFlow& o) {
                               return o.flow().verdict == Verdict::DROPPED ? std::string(o.flow().drop_reason_desc)
                                                                           : std::string();
                             })
      .def_property_readonly("drop_reason_desc",
                             [](const OwnedFlow& o) {
                               return o.flow().verdict == Verdict::DROPPED ? std::string(o.flow().drop_reason_desc)
                                                                           : std::string();
                             })
      .def_property_readonly("drop_reason_code", [](const OwnedFlow& o) { return o.flow().drop_reason; })
      .def_property_readonly("suppressed", [](const OwnedFlow& o) { return o.flow().suppressed; })
      .def_property_readonly("tcp_state", [](const OwnedFlow& o) { return o.flow().tcp_state; })
      .def_property_readonly("l7_type", [](const OwnedFlow& o) { return l7_name(o.flow().l7_type); })
      .def_property_readonly("dns", [](const OwnedFlow& o) { return dns_dict(o.flow()); },
                             "dict with query, qtype, rcode, ips, ... or None.")
      .def_property_readonly("source", [](const OwnedFlow& o) { return endpoint_or_none(o.source()); })
      .def_property_readonly("destination", [](const OwnedFlow& o) { return endpoint_or_none(o.destination()); })
      .def("to_dict", [](const OwnedFlow& o) { return flow_row_dict(o); },
           "The flow as one row of the DataFrame poll_df() returns (same keys and values).")
      .def(
          "to_json",
          [](const OwnedFlow& o, const std::string& node_name) {
            FlowJsonOptions opts;
            opts.node_name = node_name;
            return flow_to_json(o.flow(), opts);
          },
          py::kw_only(), py::arg("node_name") = "", "Hubble JSON, as `hubble observe -o json` prints a flow.")
      .def("__repr__", [](const OwnedFlow& o) {
        const Flow& f = o.flow();
        std::string src = f.ip_version == IpVersion::IP_NOT_USED ? "-" : f.src.to_string();
        std::string dst = f.ip_version == IpVersion::IP_NOT_USED ? "-" : f.dst.to_string();
        return fmt::format("Flow({} {} {}:{} -> {}:{} {} {} packets={} bytes={})", to_string(f.verdict),
                           proto_name(f.proto), src, f.src_port, dst, f.dst_port, to_string(f.direction),
                           to_string(f.observation_point), f.packets(), f.total_bytes());
      });

  m.def(
      "flow_json",
      [](const OwnedFlow& o, const std::string& node_name) {
        FlowJsonOptions opts;
        opts.node_name = node_name;
        return flow_to_json(o.flow(), opts);
      },
      py::arg("flow"), py::kw_only(), py::arg("node_name") = "",
      "Hubble JSON of a flow: {\"flow\": {...}, \"node_name\": ..., \"time\": ...}.");
}

}  // namespace retina::py
