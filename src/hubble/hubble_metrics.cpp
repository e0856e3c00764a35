#include "hubble/hubble_metrics.hpp"

#include <fmt/format.h>

#include "core/flow_fields.hpp"

namespace retina::hubble {

namespace {

using hubble_spec::MetricSpec;

struct FamilyDef {
  const char* name;
  const char* help;
  std::vector<std::string> labels;  // the handler's own, after the context labels
};

std::vector<FamilyDef> families_of(const std::string& handler, const MetricSpec& spec) {
  if (handler == "flow")
    return {{"hubble_flows_processed_total", "Total number of flows processed", {"protocol", "type", "subtype", "verdict"}}};
  if (handler == "drop") return {{"hubble_drop_total", "Number of drops", {"reason", "protocol"}}};
  if (handler == "tcp") return {{"hubble_tcp_flags_total", "TCP flag occurrences", {"flag", "family"}}};
  if (handler == "port-distribution")
    return {{"hubble_port_distribution_total", "Numbers of packets distributed by destination port", {"protocol", "port"}}};
  std::vector<std::string> dns = {"rcode", "qtypes", "ips_returned"};
  if (spec.dns_query) dns.push_back("query");
  return {{"hubble_dns_queries_total", "Number of DNS queries observed", dns},
          {"hubble_dns_responses_total", "Number of DNS responses observed", dns}};
}

std::string_view l4_name(const Flow& f) {
  switch (f.proto) {
    case L4Protocol::kTCP: return "TCP";
    case L4Protocol::kUDP: return "UDP";
    case L4Protocol::kICMPv4: return "ICMPv4";
    case L4Protocol::kICMPv6: return "ICMPv6";
    case L4Protocol::kNone: break;
  }
  return "Unknown";
}

// Cilium's monitor message type names.
std::string_view type_name(const Flow& f) {
  switch (f.event_type) {
    case 1: return "Drop";
    case 4: return "Trace";
    case 129: return "L7";
  }
  return "Unknown";
}

// Cilium's trace observation point names, the subtype of Trace events.
std::string_view subtype_name(const Flow& f) {
  if (f.dns) return "DNS";
  if (f.event_type != 4) return "";
  switch (f.observation_point) {
    case TraceObservationPoint::TO_PROXY: return "to-proxy";
    case TraceObservationPoint::TO_HOST: return "to-host";
    case TraceObservationPoint::TO_STACK: return "to-stack";
    case TraceObservationPoint::TO_OVERLAY: return "to-overlay";
    case TraceObservationPoint::TO_ENDPOINT: return "to-endpoint";
    case TraceObservationPoint::FROM_ENDPOINT: return "from-endpoint";
    case TraceObservationPoint::FROM_PROXY: return "from-proxy";
    case TraceObservationPoint::FROM_HOST: return "from-host";
    case TraceObservationPoint::FROM_STACK: return "from-stack";
    case TraceObservationPoint::FROM_OVERLAY: return "from-overlay";
    case TraceObservationPoint::FROM_NETWORK: return "from-network";
    case TraceObservationPoint::TO_NETWORK: return "to-network";
    case TraceObservationPoint::UNKNOWN_POINT: break;
  }
  return "";
}

// Hubble's DNS rcode label values.
std::string rcode_name(uint16_t rcode) {
  static constexpr const char* kNames[] = {"No Error", "Format Error", "Server Failure", "Non-Existent Domain",
                                           "Not Implemented", "Query Refused"};
  return rcode < std::size(kNames) ? kNames[rcode] : fmt::format("{}", rcode);
}

std::string_view app_label(const Endpoint& ep) {
  for (std::string_view key : {"app", "k8s-app", "app.kubernetes.io/name"})
    for (const auto& l : ep.labels)
      if (l.size() > key.size() && l.compare(0, key.size(), key) == 0 && l[key.size()] == '=')
        return std::string_view(l).substr(key.size() + 1);
  return {};
}

}  // namespace

Result<std::unique_ptr<HubbleMetrics>> HubbleMetrics::create(const std::vector<std::string>& list,
                                                             metrics::Registry& registry) {
  auto specs = hubble_spec::parse_metrics(list);
  if (!specs) return unexpected(Error::invalid("hubbleMetrics: " + specs.error().message));
  std::unique_ptr<HubbleMetrics> m(new HubbleMetrics());
  auto& lost = registry.counter("hubble_lost_events_total", "Number of lost events", {"source"});
  m->ring_lost_ = &lost.with({"hubble_ring_buffer"});
  m->queue_lost_ = &lost.with({"observer_events_queue"});
  for (auto& spec : *specs) {
    Handler h;
    std::vector<std::string> ctx_labels;
    if (!spec.source_context.empty()) ctx_labels.emplace_back("source");
    if (!spec.destination_context.empty()) ctx_labels.emplace_back("destination");
    for (const auto& l : spec.labels_context) ctx_labels.push_back(l);
    for (auto& def : families_of(spec.handler, spec)) {
      std::vector<std::string> labels = ctx_labels;
      labels.insert(labels.end(), def.labels.begin(), def.labels.end());
      h.families.push_back(&registry.counter(def.name, def.help, std::move(labels)));
    }
    h.spec = std::move(spec);
    m->handlers_.push_back(std::move(h));
  }
  return m;
}

std::string_view HubbleMetrics::context(const MetricSpec& spec, bool source, const Flow& f, std::string& scratch) {
  if (source && spec.source_egress_only && f.direction != TrafficDirection::EGRESS) return {};
  if (!source && spec.destination_ingress_only && f.direction != TrafficDirection::INGRESS) return {};
  const Endpoint* ep = source ? f.source : f.destination;
  const IpAddr& ip = source ? f.src : f.dst;
  for (const auto& c : source ? spec.source_context : spec.destination_context) {
    scratch.clear();
    if (c == "ip") {
      if (f.ip_version != IpVersion::IP_NOT_USED) ip.append_to(scratch);
    } else if (!ep) {
      continue;
    } else if (c == "namespace") {
      scratch = std::string_view(ep->namespace_);
    } else if (c == "pod" || c == "pod-name") {
      if (ep->kind != EndpointKind::kPod) continue;
      if (c == "pod") scratch = fmt::format("{}/{}", std::string_view(ep->namespace_), ep->name);
      else scratch = ep->name;
    } else if (c == "workload" || c == "workload-name") {
      const Workload* w = ep->workload();
      if (!w) continue;
      if (c == "workload") scratch = fmt::format("{}/{}", std::string_view(ep->namespace_), w->name);
      else scratch = w->name;
    } else if (c == "app") {
      scratch = app_label(*ep);
    }
    if (!scratch.empty()) return scratch;
  }
  return {};
}

std::string_view HubbleMetrics::label(std::string_view name, const Flow& f, std::string& scratch) {
  scratch.clear();
  if (name == "traffic_direction") {
    switch (f.direction) {
      case TrafficDirection::INGRESS: return "ingress";
      case TrafficDirection::EGRESS: return "egress";
      default: return "unknown";
    }
  }
  const bool source = name.starts_with("source_");
  const std::string_view what = name.substr(source ? 7 : 12);
  const Endpoint* ep = source ? f.source : f.destination;
  if (what == "ip") {
    if (f.ip_version != IpVersion::IP_NOT_USED) (source ? f.src : f.dst).append_to(scratch);
    return scratch;
  }
  if (!ep) return {};
  if (what == "namespace") return ep->namespace_;
  if (what == "pod") return ep->kind == EndpointKind::kPod ? std::string_view(ep->name) : std::string_view();
  if (what == "workload") return ep->workload() ? std::string_view(ep->workload()->name) : std::string_view();
  if (what == "workload_kind") return ep->workload() ? std::string_view(ep->workload()->kind) : std::string_view();
  if (what == "app") return app_label(*ep);
  return {};
}

void HubbleMetrics::count(Handler& h, size_t family, const Flow& f, std::initializer_list<std::string_view> own) {
  const MetricSpec& spec = h.spec;
  const size_t n = (spec.source_context.empty() ? 0 : 1) + (spec.destination_context.empty() ? 0 : 1) +
                   spec.labels_context.size();
  if (scratch_.size() < n) scratch_.resize(n);
  values_.clear();
  size_t k = 0;
  if (!spec.source_context.empty()) values_.push_back(context(spec, true, f, scratch_[k++]));
  if (!spec.destination_context.empty()) values_.push_back(context(spec, false, f, scratch_[k++]));
  for (const auto& l : spec.labels_context) values_.push_back(label(l, f, scratch_[k++]));
  values_.insert(values_.end(), own.begin(), own.end());

  key_.clear();
  key_.push_back(static_cast<char>('0' + family));
  for (auto v : values_) {
    key_.push_back('\x1f');
    key_.append(v);
  }
  auto it = h.cache.find(key_);
  if (it == h.cache.end()) {
    metrics::Counter* c = &h.families[family]->with(std::span<const std::string_view>(values_));
    it = h.cache.emplace(key_, c).first;
  }
  it->second->add();
}

void HubbleMetrics::observe(const Flow& f) {
  for (auto& h : handlers_) {
    const std::string& name = h.spec.handler;
    if (name == "flow") {
      std::string_view verdict = to_string(f.verdict);
      count(h, 0, f, {f.dns ? std::string_view("DNS") : l4_name(f), type_name(f), subtype_name(f), verdict});
    } else if (name == "drop") {
      if (f.verdict != Verdict::DROPPED) continue;
      std::string_view reason = flow_fields::hubble_drop_reason_name(flow_fields::hubble_drop_reason(f));
      count(h, 0, f, {reason.empty() ? std::string_view("DROP_REASON_UNKNOWN") : reason, l4_name(f)});
    } else if (name == "tcp") {
      // The flags of the packet the flow carries (aggregated reports also
      // carry per-flag counts of earlier packets, which cannot be paired
      // into SYN-ACK and are left to retina's own tcp flag metrics).
      if (f.proto != L4Protocol::kTCP || f.verdict != Verdict::FORWARDED || !f.has_packet) continue;
      const std::string_view family = f.ip_version == IpVersion::IPv6 ? "IPv6" : "IPv4";
      if (f.tcp_flags & kSYN) count(h, 0, f, {(f.tcp_flags & kACK) ? "SYN-ACK" : "SYN", family});
      if (f.tcp_flags & kFIN) count(h, 0, f, {"FIN", family});
      if (f.tcp_flags & kRST) count(h, 0, f, {"RST", family});
    } else if (name == "dns") {
      if (!f.dns) continue;
      const DnsInfo& d = *f.dns;
      if (h.spec.ignore_aaaa && d.qtype == 28) continue;
      const std::string_view qtype = dns_qtype_name(d.qtype);
      if (!d.is_response) {
        if (h.spec.dns_query) count(h, 0, f, {"", qtype, "0", d.query});
        else count(h, 0, f, {"", qtype, "0"});
      } else {
        const std::string rcode = rcode_name(d.rcode);
        const std::string ips = fmt::format("{}", d.ips.size());
        if (h.spec.dns_query) count(h, 1, f, {rcode, qtype, ips, d.query});
        else count(h, 1, f, {rcode, qtype, ips});
      }
    } else if (name == "port-distribution") {
      if (f.verdict != Verdict::FORWARDED || (f.is_reply_known && f.is_reply)) continue;
      if (f.proto != L4Protocol::kTCP && f.proto != L4Protocol::kUDP) continue;
      char port[8];
      const auto r = fmt::format_to_n(port, sizeof port, "{}", f.dst_port);
      count(h, 0, f, {l4_name(f), std::string_view(port, r.size)});
    }
  }
}

}  // namespace retina::hubble
