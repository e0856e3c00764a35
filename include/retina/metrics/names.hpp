// Metric names and label names shared with Retina, so its dashboards and
// alerts work unchanged. One place, so no plugin spells them differently.
#pragma once

#include <string_view>

namespace retina::metrics::names {

inline constexpr std::string_view kPrefix = "networkobservability_";
inline constexpr std::string_view kControlPlanePrefix = "controlplane_networkobservability_";

// Basic, node level.
inline constexpr std::string_view kForwardCount = "networkobservability_forward_count";
inline constexpr std::string_view kForwardBytes = "networkobservability_forward_bytes";
inline constexpr std::string_view kDropCount = "networkobservability_drop_count";
inline constexpr std::string_view kDropBytes = "networkobservability_drop_bytes";
inline constexpr std::string_view kTcpState = "networkobservability_tcp_state";
inline constexpr std::string_view kTcpConnectionRemote = "networkobservability_tcp_connection_remote";
inline constexpr std::string_view kTcpConnectionStats = "networkobservability_tcp_connection_stats";
inline constexpr std::string_view kIpConnectionStats = "networkobservability_ip_connection_stats";
inline constexpr std::string_view kUdpConnectionStats = "networkobservability_udp_connection_stats";
inline constexpr std::string_view kInterfaceStats = "networkobservability_interface_stats";
inline constexpr std::string_view kDnsRequestCount = "networkobservability_dns_request_count";
inline constexpr std::string_view kDnsResponseCount = "networkobservability_dns_response_count";
inline constexpr std::string_view kConntrackPacketsTx = "networkobservability_conntrack_packets_tx";
inline constexpr std::string_view kConntrackPacketsRx = "networkobservability_conntrack_packets_rx";
inline constexpr std::string_view kConntrackBytesTx = "networkobservability_conntrack_bytes_tx";
inline constexpr std::string_view kConntrackBytesRx = "networkobservability_conntrack_bytes_rx";
inline constexpr std::string_view kConntrackTotalConnections = "networkobservability_conntrack_total_connections";
inline constexpr std::string_view kInfinibandCounterStats = "networkobservability_infiniband_counter_stats";
inline constexpr std::string_view kInfinibandStatusParams = "networkobservability_infiniband_status_params";
// Ours, where the kernel gives more than Retina exposes.
inline constexpr std::string_view kTcpRetransCount = "networkobservability_tcpretrans_count";

// Advanced, pod level.
inline constexpr std::string_view kAdvForwardCount = "networkobservability_adv_forward_count";
inline constexpr std::string_view kAdvForwardBytes = "networkobservability_adv_forward_bytes";
inline constexpr std::string_view kAdvDropCount = "networkobservability_adv_drop_count";
inline constexpr std::string_view kAdvDropBytes = "networkobservability_adv_drop_bytes";
inline constexpr std::string_view kAdvTcpFlagsCount = "networkobservability_adv_tcpflags_count";
inline constexpr std::string_view kAdvTcpRetransCount = "networkobservability_adv_tcpretrans_count";
inline constexpr std::string_view kAdvDnsRequestCount = "networkobservability_adv_dns_request_count";
inline constexpr std::string_view kAdvDnsResponseCount = "networkobservability_adv_dns_response_count";
inline constexpr std::string_view kAdvApiServerLatency = "networkobservability_adv_node_apiserver_latency";
inline constexpr std::string_view kAdvApiServerHandshakeLatency =
    "networkobservability_adv_node_apiserver_tcp_handshake_latency";
inline constexpr std::string_view kAdvApiServerNoResponse = "networkobservability_adv_node_apiserver_no_response";

// Control plane.
inline constexpr std::string_view kLostEvents = "controlplane_networkobservability_lost_events_counter";
inline constexpr std::string_view kParsedPackets = "controlplane_networkobservability_parsed_packets_counter";
inline constexpr std::string_view kPluginFailedToReconcile =
    "controlplane_networkobservability_plugin_manager_failed_to_reconcile";
inline constexpr std::string_view kExpiredMetrics = "controlplane_networkobservability_expired_metrics_counter";
// Ours: updates of an advanced metric folded into its overflow series
// (maxSeriesPerMetric reached), by metric.
inline constexpr std::string_view kSeriesOverflow = "controlplane_networkobservability_series_overflow_total";
// Ours: plugin_state{plugin, state} is 1 for the current state, 0 otherwise.
inline constexpr std::string_view kPluginState = "controlplane_networkobservability_plugin_state";
// Ours: a polled source (a /proc or sysfs file, an ioctl) that failed one poll.
inline constexpr std::string_view kPluginSourceErrors =
    "controlplane_networkobservability_plugin_source_errors_total";

// lost_events_counter{type}: where the event was lost.
inline constexpr std::string_view kLostKernel = "kernel";                    // ring buffer reserve failed
inline constexpr std::string_view kLostBufferedChannel = "buffered_channel"; // engine queue full
inline constexpr std::string_view kLostExternalChannel = "external_channel"; // a subscriber's queue full
inline constexpr std::string_view kLostEnricherRing = "enricher_ring";
inline constexpr std::string_view kLostDecoder = "decoder";                  // ours: malformed record

// Label names.
inline constexpr std::string_view kDirection = "direction";
inline constexpr std::string_view kReason = "reason";
inline constexpr std::string_view kType = "type";

}  // namespace retina::metrics::names
