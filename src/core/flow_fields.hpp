// What a Flow says in Hubble's flow format, decided once for every writer:
// the JSON lines (/flows, the flow log) and the protobuf flows of the
// Observer API. Writers only choose the syntax; which fields appear and
// with which values is decided here, so the outputs cannot disagree.
#pragma once

#include <array>
#include <cstdint>
#include <string_view>

#include "retina/flow.hpp"

namespace retina::flow_fields {

// Hubble's DropReason value for a kernel drop reason name ("NETFILTER_DROP"
// -> 133 POLICY_DENIED), 0 (DROP_REASON_UNKNOWN) when Cilium has none. The
// kernel name itself travels in the extensions ("drop_reason").
uint32_t hubble_drop_reason(std::string_view kernel_name) noexcept;
// The enum name of a value hubble_drop_reason() returns; empty for 0.
std::string_view hubble_drop_reason_name(uint32_t value) noexcept;
// Both, for a flow: 0 unless it is a drop.
inline uint32_t hubble_drop_reason(const Flow& f) noexcept {
  return f.verdict == Verdict::DROPPED ? hubble_drop_reason(f.drop_reason_desc) : 0;
}

// Verdicts Hubble's enum names; the others (Retina's RETRANSMISSION and
// DNS) are written as numbers.
inline bool verdict_is_named(Verdict v) noexcept {
  return v == Verdict::FORWARDED || v == Verdict::DROPPED || v == Verdict::ERROR;
}

// The service an endpoint belongs to: the endpoint itself when it is a
// service, else the service selecting the pod. Empty when none.
inline std::string_view service_of(const Endpoint* ep) noexcept {
  if (!ep) return {};
  if (ep->kind == EndpointKind::kService && !ep->name.empty()) return ep->name;
  return std::string_view(ep->service);
}

// pod_name is set for pods only.
inline std::string_view pod_name_of(const Endpoint& ep) noexcept {
  return ep.kind == EndpointKind::kPod ? std::string_view(ep.name) : std::string_view();
}

inline bool is_l7(const Flow& f) noexcept { return f.dns != nullptr; }

// Retina's keyed values (Hubble's "extensions", a google.protobuf.Struct),
// in sorted key order, zeros and empty strings left out. The visitor gets
//   number(key, uint64_t), text(key, string_view) and
//   tcp_flag_counts(key, names, counts): all nine flags, names sorted,
//   counts[i] for names[i].
// Returns whether anything was visited.
inline constexpr std::array<std::pair<std::string_view, size_t>, 9> kSortedTcpFlags = {{
    {"ACK", 4}, {"CWR", 7}, {"ECE", 6}, {"FIN", 0}, {"NS", 8}, {"PSH", 3}, {"RST", 2}, {"SYN", 1}, {"URG", 5},
}};

template <class V>
bool visit_extensions(const Flow& f, V&& v) {
  bool any = false;
  auto num = [&](std::string_view k, uint64_t x) {
    if (x) {
      v.number(k, x);
      any = true;
    }
  };
  auto str = [&](std::string_view k, std::string_view x) {
    if (!x.empty()) {
      v.text(k, x);
      any = true;
    }
  };
  num("bytes", f.bytes);
  if (f.destination) str("destination_zone", std::string_view(f.destination->zone));
  if (f.dns) str("dns_type", f.dns->is_response ? "RESPONSE" : "QUERY");
  if (f.verdict == Verdict::DROPPED) str("drop_reason", f.drop_reason_desc);
  if (f.dns) num("num_responses", f.dns->answer_count);
  num("previously_observed_bytes", f.prev_bytes);
  num("previously_observed_packets", f.prev_packets);
  bool flags = false;
  for (uint32_t c : f.prev_flag_counts) flags |= c != 0;
  if (flags) {
    // Retina writes all nine keys once any is set.
    v.tcp_flag_counts("previously_observed_tcp_flags", f.prev_flag_counts);
    any = true;
  }
  if (f.source) str("source_zone", std::string_view(f.source->zone));
  num("tcp_id", f.tcp_id);
  return any;
}

}  // namespace retina::flow_fields
