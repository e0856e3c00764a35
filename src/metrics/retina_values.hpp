// Retina's label values where retina measures more finely. The defaults
// give these; the config switches of docs/metrics.md give ours instead.
#pragma once

#include <string_view>

namespace retina::metrics {

// Retina's dropreason reasons, in its enum order.
inline constexpr std::string_view kRetinaDropReasons[] = {
    "IPTABLE_RULE_DROP", "IPTABLE_NAT_DROP", "TCP_CONNECT_BASIC", "TCP_ACCEPT_BASIC",
    "TCP_CLOSE_BASIC",   "CONNTRACK_ADD_DROP", "UNKNOWN_DROP"};
inline constexpr std::string_view kRetinaUnknownDrop = "UNKNOWN_DROP";

// interface_stats{interface_name} and tcp_connection_remote{address}: Retina
// sums over every interface and every remote address.
inline constexpr std::string_view kAllInterfaces = "all_interfaces";
inline constexpr std::string_view kAllIps = "AllIPs";

// Retina's reason for a kernel drop reason name ("NETFILTER_DROP" ->
// "IPTABLE_RULE_DROP"), or empty when none corresponds.
std::string_view retina_reason(std::string_view kernel_name);
// The same, UNKNOWN_DROP when none corresponds: Retina's reason label.
std::string_view retina_reason_or_unknown(std::string_view kernel_name);
// The direction Retina gives a drop of that reason: it knows one only for
// failed connects (egress) and accepts (ingress).
std::string_view retina_drop_direction(std::string_view retina_reason);

}  // namespace retina::metrics
