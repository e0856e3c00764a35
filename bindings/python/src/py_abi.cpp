// Facts about the kernel ABI and the enumerations, for the pure-Python
// record builders (retina.records) and for turning numpy codes into names.
#include <sys/syscall.h>
#include <unistd.h>

#include <linux/bpf.h>

#include <cerrno>
#include <cstring>

#include "bindings.hpp"
#include "retina/abi/events.h"
#include "retina/flow_sources.hpp"
#include "retina/plugin.hpp"
#include "retina/tcx.hpp"

namespace retina::py {

namespace {

#define ABI_OFF(type, field) d[#field] = offsetof(struct type, field)

py::dict layouts() {
  py::dict out;
  {
    py::dict d;
    d["size"] = sizeof(retina_event_hdr);
    ABI_OFF(retina_event_hdr, type);
    ABI_OFF(retina_event_hdr, version);
    ABI_OFF(retina_event_hdr, len);
    ABI_OFF(retina_event_hdr, ts_ns);
    out["retina_event_hdr"] = d;
  }
  {
    py::dict d;
    d["size"] = sizeof(retina_tuple);
    ABI_OFF(retina_tuple, saddr);
    ABI_OFF(retina_tuple, daddr);
    ABI_OFF(retina_tuple, sport);
    ABI_OFF(retina_tuple, dport);
    ABI_OFF(retina_tuple, proto);
    ABI_OFF(retina_tuple, family);
    out["retina_tuple"] = d;
  }
  {
    py::dict d;
    d["size"] = sizeof(retina_packet_event);
    ABI_OFF(retina_packet_event, tuple);
    ABI_OFF(retina_packet_event, ifindex);
    ABI_OFF(retina_packet_event, bytes);
    ABI_OFF(retina_packet_event, obs_point);
    ABI_OFF(retina_packet_event, flags);
    ABI_OFF(retina_packet_event, tcp_flags);
    ABI_OFF(retina_packet_event, report_reason);
    ABI_OFF(retina_packet_event, prev_packets);
    ABI_OFF(retina_packet_event, tcp_id);
    ABI_OFF(retina_packet_event, prev_bytes);
    ABI_OFF(retina_packet_event, prev_flag_counts);
    out["retina_packet_event"] = d;
  }
  {
    py::dict d;
    d["size"] = sizeof(retina_drop_event);
    ABI_OFF(retina_drop_event, tuple);
    ABI_OFF(retina_drop_event, ifindex);
    ABI_OFF(retina_drop_event, bytes);
    ABI_OFF(retina_drop_event, reason);
    ABI_OFF(retina_drop_event, direction);
    ABI_OFF(retina_drop_event, suppressed);
    ABI_OFF(retina_drop_event, location);
    out["retina_drop_event"] = d;
  }
  {
    py::dict d;
    d["size"] = sizeof(retina_dns_event);
    ABI_OFF(retina_dns_event, tuple);
    ABI_OFF(retina_dns_event, ifindex);
    ABI_OFF(retina_dns_event, obs_point);
    ABI_OFF(retina_dns_event, dns_len);
    ABI_OFF(retina_dns_event, wire_len);
    ABI_OFF(retina_dns_event, payload);
    out["retina_dns_event"] = d;
  }
  {
    py::dict d;
    d["size"] = sizeof(retina_tcpretrans_event);
    ABI_OFF(retina_tcpretrans_event, tuple);
    ABI_OFF(retina_tcpretrans_event, state);
    ABI_OFF(retina_tcpretrans_event, tcp_flags);
    ABI_OFF(retina_tcpretrans_event, netns_ino);
    ABI_OFF(retina_tcpretrans_event, segs);
    out["retina_tcpretrans_event"] = d;
  }
  return out;
}

template <class E>
py::dict names(std::initializer_list<E> values) {
  py::dict d;
  for (E v : values) d[py::int_(static_cast<int>(v))] = to_string(v);
  return d;
}

// Empty when this process may load BPF; otherwise why not. The same probe
// as the C++ privileged suite (tests/support/privileged.cpp).
std::string privilege_problem() {
  if (geteuid() != 0) return "not root (privileged tests need CAP_BPF, CAP_NET_ADMIN, CAP_SYS_ADMIN)";
  union bpf_attr attr;
  std::memset(&attr, 0, sizeof attr);
  attr.map_type = BPF_MAP_TYPE_ARRAY;
  attr.key_size = 4;
  attr.value_size = 4;
  attr.max_entries = 1;
  const long fd = syscall(__NR_bpf, BPF_MAP_CREATE, &attr, sizeof attr);
  if (fd < 0) return std::string("bpf(BPF_MAP_CREATE) fails: ") + std::strerror(errno);
  close(static_cast<int>(fd));
  if (access("/sys/kernel/btf/vmlinux", R_OK) != 0) return "no kernel BTF at /sys/kernel/btf/vmlinux";
  return {};
}

}  // namespace

void register_abi(py::module_& m) {
  m.attr("ABI_VERSION") = RETINA_ABI_VERSION;
  m.attr("ABI_LAYOUTS") = layouts();
  m.attr("DNS_MAX_PAYLOAD") = RETINA_DNS_MAX_PAYLOAD;

  py::dict n;
  n["verdict"] = names<Verdict>({Verdict::VERDICT_UNKNOWN, Verdict::FORWARDED, Verdict::DROPPED, Verdict::ERROR,
                                 Verdict::RETRANSMISSION, Verdict::DNS});
  n["direction"] = names<TrafficDirection>({TrafficDirection::TRAFFIC_DIRECTION_UNKNOWN, TrafficDirection::INGRESS,
                                            TrafficDirection::EGRESS});
  n["ip_version"] = names<IpVersion>({IpVersion::IP_NOT_USED, IpVersion::IPv4, IpVersion::IPv6});
  py::dict points;
  for (int p : {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 101})
    points[py::int_(p)] = to_string(static_cast<TraceObservationPoint>(p));
  n["observation_point"] = points;
  py::dict protos;
  for (L4Protocol p : {L4Protocol::kNone, L4Protocol::kICMPv4, L4Protocol::kTCP, L4Protocol::kUDP, L4Protocol::kICMPv6})
    protos[py::int_(static_cast<int>(p))] = proto_name(p);
  n["proto"] = protos;
  py::dict origins;
  for (const FlowSourceInfo& s : flow_sources()) origins[py::int_(static_cast<int>(s.source))] = std::string(s.name);
  n["origin"] = origins;
  m.attr("ENUM_NAMES") = n;

  // The built-in plugin table: name, the flow origins its records carry,
  // and the services it needs.
  py::list plugins;
  for (const PluginInfo& p : builtin_plugins()) {
    py::dict row;
    row["name"] = std::string(p.name);
    py::list emits;
    for (FlowSource s : p.emits) emits.append(std::string(to_string(s)));
    row["emits"] = emits;
    py::list needs;
    if (p.needs.features) needs.append("features");
    if (p.needs.interfaces) needs.append("interfaces");
    if (p.needs.ip_cache) needs.append("ip_cache");
    if (p.needs.kubernetes) needs.append("kubernetes");
    row["needs"] = needs;
    plugins.append(row);
  }
  m.attr("PLUGINS") = plugins;

  m.def("dns_qtype_name", [](uint16_t t) { return dns_qtype_name(t); });
  m.def("dns_rcode_name", [](uint16_t r) { return dns_rcode_name(r); });
  m.def("tcp_flags_text", [](uint16_t f) { return tcp_flags_text(f); });
  m.def("boot_to_realtime_offset_ns", [] { return boot_to_realtime_offset_ns(); },
        "CLOCK_REALTIME - CLOCK_BOOTTIME now, in nanoseconds.");
  m.def("_privilege_problem", &privilege_problem);
  // Names of the programs attached through TCX to one hook of an interface
  // in the calling thread's network namespace (for tests that check a
  // stopped engine left nothing behind; legacy tc is visible to `tc`).
  m.def(
      "_tcx_programs",
      [](int ifindex, const std::string& direction) {
        if (direction != "ingress" && direction != "egress") raise_invalid("direction: ingress or egress");
        auto progs = unwrap(tcx_programs(ifindex, direction == "ingress"));
        py::list names;
        for (const auto& p : progs) names.append(p.name);
        return names;
      },
      py::arg("ifindex"), py::arg("direction"));
}

}  // namespace retina::py
