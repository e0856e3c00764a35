#include "hubble/observe_filters.hpp"

#include <algorithm>
#include <cctype>

#include <fmt/format.h>

#include "hubble/filter.hpp"

namespace retina::hubble {

namespace {

enum Flag : size_t {
  kFromPod, kToPod, kPod, kFromNamespace, kToNamespace, kNamespace, kFromIp, kToIp, kIp,
  kFromLabel, kToLabel, kLabel, kFromPort, kToPort, kPort, kProtocol, kVerdict, kType,
  kTrafficDirection, kNodeName, kDnsQuery, kTcpFlags, kCount
};

std::string upper(std::string s) {
  for (char& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s;
}

}  // namespace

const std::vector<ObserveFlag> kObserveFlags = {
    {"from-pod", "Source pod name prefix, [namespace/]name"},
    {"to-pod", "Destination pod name prefix, [namespace/]name"},
    {"pod", "Pod on either side, [namespace/]name"},
    {"from-namespace", "Source namespace"},
    {"to-namespace", "Destination namespace"},
    {"namespace", "Namespace on either side"},
    {"from-ip", "Source IP address or CIDR"},
    {"to-ip", "Destination IP address or CIDR"},
    {"ip", "IP address or CIDR on either side"},
    {"from-label", "Source label selector, e.g. app=web"},
    {"to-label", "Destination label selector"},
    {"label", "Label selector on either side"},
    {"from-port", "Source port"},
    {"to-port", "Destination port"},
    {"port", "Port on either side"},
    {"protocol", "tcp, udp, icmp, icmpv4, icmpv6 or dns"},
    {"verdict", "FORWARDED, DROPPED, ERROR (or a number, e.g. 15 retransmission, 16 DNS)"},
    {"type", "Event type: trace, drop or l7"},
    {"traffic-direction", "ingress or egress"},
    {"node-name", "Node name pattern, e.g. node-*"},
    {"dns-query", "DNS query pattern (RE2), e.g. '.*\\.svc\\.cluster\\.local\\.$'"},
    {"tcp-flags", "TCP flags that must all be set, comma separated, e.g. SYN,ACK"},
};

Status add_flag(ObserveFlags& flags, std::string_view name, std::string value) {
  for (size_t i = 0; i < kObserveFlags.size(); ++i) {
    if (name == kObserveFlags[i].name) {
      if (flags.values[i].size() >= 1024) return unexpected(Error::invalid(fmt::format("--{}: too many values", name)));
      flags.values[i].push_back(std::move(value));
      return ok();
    }
  }
  return unexpected(Error::invalid(fmt::format("unknown filter flag --{}", name)));
}

Result<std::vector<::flow::FlowFilter>> build_whitelist(const ObserveFlags& flags) {
  static_assert(kCount <= std::size(ObserveFlags{}.values));
  const auto& v = flags.values;
  auto bad = [](size_t flag, std::string msg) {
    return unexpected(Error::invalid(fmt::format("--{}: {}", kObserveFlags[flag].name, msg)));
  };
  ::flow::FlowFilter common;
  for (const auto& s : v[kProtocol]) common.add_protocol(s);
  for (const auto& s : v[kVerdict]) {
    ::flow::Verdict verdict;
    const std::string u = upper(s);
    if (::flow::Verdict_Parse(u, &verdict)) {
      common.add_verdict(verdict);
    } else if (!s.empty() && s.size() <= 3 && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; })) {
      common.add_verdict(static_cast<::flow::Verdict>(std::stoi(s)));
    } else {
      return bad(kVerdict, fmt::format("unknown verdict \"{}\"", s));
    }
  }
  for (const auto& s : v[kType]) {
    const std::string u = upper(s);
    auto* e = common.add_event_type();
    if (u == "TRACE") e->set_type(4);
    else if (u == "DROP") e->set_type(1);
    else if (u == "L7") e->set_type(129);
    else return bad(kType, fmt::format("unknown type \"{}\" (trace, drop or l7)", s));
  }
  for (const auto& s : v[kTrafficDirection]) {
    const std::string u = upper(s);
    if (u == "INGRESS") common.add_traffic_direction(::flow::INGRESS);
    else if (u == "EGRESS") common.add_traffic_direction(::flow::EGRESS);
    else return bad(kTrafficDirection, fmt::format("unknown direction \"{}\" (ingress or egress)", s));
  }
  for (const auto& s : v[kNodeName]) common.add_node_name(s);
  for (const auto& s : v[kDnsQuery]) common.add_dns_query(s);
  for (const auto& s : v[kTcpFlags]) {
    auto* f = common.add_tcp_flags();
    std::string_view rest = s;
    while (!rest.empty()) {
      const size_t comma = rest.find(',');
      const std::string name = upper(std::string(rest.substr(0, comma)));
      const auto* field = ::flow::TCPFlags::descriptor()->FindFieldByName(name);
      if (!field) return bad(kTcpFlags, fmt::format("unknown TCP flag \"{}\"", rest.substr(0, comma)));
      f->GetReflection()->SetBool(f, field, true);
      if (comma == std::string_view::npos) break;
      rest.remove_prefix(comma + 1);
    }
  }

  // Side-specific values: "from" ones on the source, "to" ones on the
  // destination; a namespace is a pod pattern "namespace/".
  auto add_side = [&](::flow::FlowFilter& f, bool source, size_t pod, size_t ns, size_t ip, size_t label,
                      size_t port) {
    for (const auto& s : v[pod]) source ? f.add_source_pod(s) : f.add_destination_pod(s);
    for (const auto& s : v[ns]) source ? f.add_source_pod(s + "/") : f.add_destination_pod(s + "/");
    for (const auto& s : v[ip]) source ? f.add_source_ip(s) : f.add_destination_ip(s);
    for (const auto& s : v[label]) source ? f.add_source_label(s) : f.add_destination_label(s);
    for (const auto& s : v[port]) source ? f.add_source_port(s) : f.add_destination_port(s);
  };
  ::flow::FlowFilter left = common;
  add_side(left, true, kFromPod, kFromNamespace, kFromIp, kFromLabel, kFromPort);
  add_side(left, false, kToPod, kToNamespace, kToIp, kToLabel, kToPort);
  const bool either = !v[kPod].empty() || !v[kNamespace].empty() || !v[kIp].empty() || !v[kLabel].empty() ||
                      !v[kPort].empty();
  std::vector<::flow::FlowFilter> out;
  if (either) {
    ::flow::FlowFilter right = left;
    add_side(left, true, kPod, kNamespace, kIp, kLabel, kPort);
    add_side(right, false, kPod, kNamespace, kIp, kLabel, kPort);
    out.push_back(std::move(left));
    out.push_back(std::move(right));
  } else if (left.ByteSizeLong() > 0) {
    out.push_back(std::move(left));
  }

  google::protobuf::RepeatedPtrField<::flow::FlowFilter> check(out.begin(), out.end());
  if (auto c = FlowFilters::compile(check, {}); !c) return unexpected(c.error());
  return out;
}

}  // namespace retina::hubble
