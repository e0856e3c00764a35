#include "metrics/retina_values.hpp"

namespace retina::metrics {

std::string_view retina_reason(std::string_view kernel_name) {
  // nf_hook_slow frees with NETFILTER_DROP whatever the rule (filter, NAT,
  // conntrack confirm): Retina's iptables rule drop.
  if (kernel_name == "NETFILTER_DROP") return "IPTABLE_RULE_DROP";
  // A segment for a socket in CLOSE state.
  if (kernel_name == "TCP_CLOSE") return "TCP_CLOSE_BASIC";
  // Freed without a reason: Retina's unknown drop.
  if (kernel_name == "NOT_SPECIFIED") return kRetinaUnknownDrop;
  return {};
}

std::string_view retina_reason_or_unknown(std::string_view kernel_name) {
  const std::string_view r = retina_reason(kernel_name);
  return r.empty() ? kRetinaUnknownDrop : r;
}

std::string_view retina_drop_direction(std::string_view retina_reason) {
  if (retina_reason == "TCP_CONNECT_BASIC") return "egress";
  if (retina_reason == "TCP_ACCEPT_BASIC") return "ingress";
  return "unknown";
}

}  // namespace retina::metrics
