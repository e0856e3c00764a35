// One Config with Retina's keys and their defaults. validate() returns every
// problem at once; load_config_yaml() rejects unknown keys.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "retina/error.hpp"

namespace retina {

enum class LogLevel : uint8_t { kTrace, kDebug, kInfo, kWarn, kError };
enum class AggregationLevel : uint8_t { kLow, kHigh };
enum class TcxMode : uint8_t { kAuto, kOff };

const char* to_string(LogLevel l);
const char* to_string(AggregationLevel a);

// Advanced-metrics context option (Retina's MetricsConfiguration spec).
struct MetricsContextOption {
  std::string metric_name;                    // e.g. "forward", "drop", "dns", "tcpflags", "tcpretrans"
  std::vector<std::string> source_labels;     // ip namespace podname workload service port zone
  std::vector<std::string> destination_labels;
  std::vector<std::string> additional_labels; // only "is_reply"
  std::chrono::seconds ttl{0};                // 0: never expire
};

struct MetricsNamespaces {
  std::vector<std::string> include;
  std::vector<std::string> exclude;  // mutually exclusive with include
};

struct Config {
  // apiServer
  std::string api_server_host = "0.0.0.0";
  uint16_t api_server_port = 10093;

  LogLevel log_level = LogLevel::kInfo;
  // Plugins that run on a plain host without Kubernetes.
  std::vector<std::string> enabled_plugins = {"packetparser", "dropreason", "packetforward",
                                              "linuxutil",    "dns",        "tcpretrans"};
  std::chrono::milliseconds metrics_interval{std::chrono::seconds(10)};

  // Pod-level (advanced) metrics.
  bool enable_pod_level = false;
  bool remote_context = false;
  bool enable_annotations = false;
  std::vector<MetricsContextOption> context_options;
  MetricsNamespaces metrics_namespaces;
  uint32_t max_series_per_metric = 10000;

  // packetparser
  bool bypass_lookup_ip_of_interest = true;
  AggregationLevel data_aggregation_level = AggregationLevel::kHigh;
  uint32_t data_sampling_rate = 1;
  std::chrono::seconds conntrack_report_interval{30};
  bool packet_parser_ring_buffer = true;
  // 0: by CPU count (512 KiB per online CPU, at least 1 MiB).
  uint64_t packet_parser_ring_buffer_size = 0;
  uint32_t filter_map_max_entries = 255;
  TcxMode enable_tcx = TcxMode::kAuto;
  bool enable_conntrack_metrics = false;  // off by default, as in Retina
  uint32_t conntrack_max_entries = 262144;
  // Node interfaces packetparser attaches to besides pod veths. "auto" is
  // the default-route interface at aggregation low and nothing at high (as
  // Retina does); explicit names attach at both levels.
  std::vector<std::string> host_interfaces = {"auto"};
  // Name prefixes that mark an interface as a pod veth's host side. Empty:
  // every veth whose peer lives in another network namespace.
  std::vector<std::string> pod_interface_prefixes;

  // dropreason
  bool drop_include_expected = false;   // also count frees without a reason (NOT_SPECIFIED)
  uint32_t drop_events_per_second = 10000;  // per-flow drop events; counts stay exact beyond it

  // Endpoint sources
  std::string endpoints_file;           // YAML or JSON list of endpoints (ours)
  std::string kubeconfig;               // outside a cluster; in-cluster config otherwise
  bool enable_kubernetes = false;       // watch the API server
  std::string node_name;                // defaults to $NODE_NAME or the host name

  // Retina's series and values by default; each switch turns on one of our
  // finer measures instead (docs/metrics.md has both side by side).
  bool pod_forward_metrics = false;      // forward_* = pod veth traffic; NIC totals as node_forward_*
  bool kernel_drop_reasons = false;      // drop reasons and directions as the kernel gives them
  bool interface_stats_per_interface = false;       // interface_stats per interface, not all_interfaces
  bool tcp_connection_remote_per_address = false;   // tcp_connection_remote per address, not AllIPs
  bool tcp_flags_separate_syn_ack = false;          // a SYN-ACK counts as SYN and ACK, not SYNACK
  bool adv_metrics_without_configuration = false;   // adv_* with default labels before any MetricsConfiguration

  // Flow log (Hubble JSON lines); empty disables it. Past flowLogMaxSize
  // megabytes the file is renamed to <path>.1 (older ones shift to .2 ...)
  // and a new one begins; flowLogMaxFiles rotated files are kept. 0 MB
  // never rotates.
  std::string flow_log_path;
  uint32_t flow_log_max_size_mb = 100;
  uint32_t flow_log_max_files = 5;

  // Packet capture (the /captures API and Capture objects). Captures only
  // write under captureOutputRoot.
  bool enable_capture = false;
  std::string capture_output_root = "/var/log/retina";
  std::chrono::seconds capture_max_duration{3600};

  // Hubble mode (docs/hubble.md): flows over Hubble's gRPC Observer and
  // Peer APIs, hubble_* metrics on a port of their own.
  bool enable_hubble = false;
  std::string hubble_listen_address = ":4244";   // host:port; port 0 picks one
  std::string hubble_metrics_server = ":9965";   // host:port; empty disables
  // Cilium's metric list syntax (see core/hubble_metric_spec.hpp).
  std::vector<std::string> hubble_metrics = {
      "flow:sourceEgressContext=pod;destinationIngressContext=pod",
      "tcp:sourceEgressContext=pod;destinationIngressContext=pod",
      "dns:query;sourceEgressContext=pod;destinationIngressContext=pod",
      "drop:sourceEgressContext=pod;destinationIngressContext=pod",
      "port-distribution"};
  uint32_t hubble_event_buffer_capacity = 4096;  // flows kept for GetFlows
  // Server TLS when both are set; client certificates signed by one of the
  // CAs are then required (mTLS, as Hubble Relay connects).
  std::string hubble_tls_cert_file;
  std::string hubble_tls_key_file;
  std::vector<std::string> hubble_tls_client_ca_files;

  // Returns all problems, one per line, in one error.
  Status validate() const;
};

// Parses Retina's agent config.yaml. Unknown keys and bad values are errors
// naming the key.
Result<Config> load_config_yaml(std::string_view yaml_text);
Result<Config> load_config_file(const std::string& path);

// "30s", "1m30s", "500ms", "2h" -> duration; Go's time.ParseDuration syntax.
Result<std::chrono::nanoseconds> parse_duration(std::string_view text);

}  // namespace retina
