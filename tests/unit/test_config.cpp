#include <catch2/catch.hpp>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <mutex>
#include <string>
#include <unistd.h>
#include <vector>

#include <yaml-cpp/yaml.h>

#include "core/log.hpp"
#include "retina/config.hpp"

using namespace std::chrono_literals;
using retina::Config;
using retina::load_config_yaml;

namespace {

// Collects log lines while alive.
struct LogCapture {
  std::mutex mu;
  std::vector<std::string> lines;
  LogCapture() {
    retina::log::set_output([this](std::string_view l) {
      std::lock_guard lock(mu);
      lines.emplace_back(l);
    });
  }
  ~LogCapture() { retina::log::set_output(nullptr); }
  bool any(std::string_view needle) {
    std::lock_guard lock(mu);
    for (const auto& l : lines)
      if (l.find(needle) != std::string::npos) return true;
    return false;
  }
};

std::string load_error(std::string_view yaml) {
  auto r = load_config_yaml(yaml);
  REQUIRE_FALSE(r.has_value());
  return r.error().message;
}

}  // namespace

TEST_CASE("config: defaults work on a plain host", "[config]") {
  Config c;
  REQUIRE(c.validate());
  CHECK(c.api_server_host == "0.0.0.0");
  CHECK(c.api_server_port == 10093);
  CHECK(c.log_level == retina::LogLevel::kInfo);
  CHECK(c.metrics_interval == 10s);
  CHECK(c.data_aggregation_level == retina::AggregationLevel::kHigh);
  CHECK(c.data_sampling_rate == 1);
  CHECK(c.conntrack_report_interval == 30s);
  CHECK(c.packet_parser_ring_buffer);
  CHECK(c.packet_parser_ring_buffer_size == 0);  // by CPU count
  CHECK(c.filter_map_max_entries == 255);
  CHECK(c.enable_tcx == retina::TcxMode::kAuto);
  CHECK_FALSE(c.enable_kubernetes);
  // Retina's series and values: conntrack metrics off, our switches off.
  CHECK_FALSE(c.enable_conntrack_metrics);
  CHECK_FALSE(c.pod_forward_metrics);
  CHECK_FALSE(c.kernel_drop_reasons);
  CHECK_FALSE(c.interface_stats_per_interface);
  CHECK_FALSE(c.tcp_connection_remote_per_address);
  CHECK_FALSE(c.tcp_flags_separate_syn_ack);
  CHECK_FALSE(c.adv_metrics_without_configuration);

  for (std::string_view empty : {"", "\n", "# only a comment\n", "---\n", "~\n"}) {
    auto r = load_config_yaml(empty);
    REQUIRE(r.has_value());
    CHECK(r->api_server_port == 10093);
    CHECK(r->enabled_plugins == Config{}.enabled_plugins);
  }
}

TEST_CASE("config: every Retina key", "[config]") {
  auto r = load_config_yaml(R"(
apiServer:
  host: 127.0.0.1
  port: 9999
logLevel: debug
enabledPlugin: [dropreason, packetforward, linuxutil, dns, packetparser, tcpretrans, infiniband]
metricsIntervalDuration: 1m30s
enablePodLevel: true
remoteContext: true
enableAnnotations: true
bypassLookupIPOfInterest: false
dataAggregationLevel: low
dataSamplingRate: 7
conntrackReportInterval: 45s
packetParserRingBuffer: disabled
packetParserRingBufferSize: 4194304
filterMapMaxEntries: 1024
enableTCX: off
enableConntrackMetrics: false
)");
  REQUIRE(r.has_value());
  const Config& c = *r;
  CHECK(c.api_server_host == "127.0.0.1");
  CHECK(c.api_server_port == 9999);
  CHECK(c.log_level == retina::LogLevel::kDebug);
  CHECK(c.enabled_plugins == std::vector<std::string>{"dropreason", "packetforward", "linuxutil", "dns",
                                                      "packetparser", "tcpretrans", "infiniband"});
  CHECK(c.metrics_interval == 90s);
  CHECK(c.enable_pod_level);
  CHECK(c.remote_context);
  CHECK(c.enable_annotations);
  CHECK_FALSE(c.bypass_lookup_ip_of_interest);
  CHECK(c.data_aggregation_level == retina::AggregationLevel::kLow);
  CHECK(c.data_sampling_rate == 7);
  CHECK(c.conntrack_report_interval == 45s);
  CHECK_FALSE(c.packet_parser_ring_buffer);
  CHECK(c.packet_parser_ring_buffer_size == 4u << 20);
  CHECK(c.filter_map_max_entries == 1024);
  CHECK(c.enable_tcx == retina::TcxMode::kOff);
  CHECK_FALSE(c.enable_conntrack_metrics);
}

TEST_CASE("config: every key of ours", "[config]") {
  auto r = load_config_yaml(R"(
endpointsFile: /etc/retina/endpoints.yaml
kubeconfig: /root/.kube/config
enableKubernetes: true
nodeName: node-a
flowLogPath: /var/log/retina/flows.jsonl
hostInterfaces: [eth0, ens5]
podInterfacePrefixes: [veth, cali]
dropIncludeExpected: true
dropEventsPerSecond: 0
conntrackMaxEntries: 65536
maxSeriesPerMetric: 500
podForwardMetrics: true
kernelDropReasons: true
interfaceStatsPerInterface: true
tcpConnectionRemotePerAddress: true
tcpFlagsSeparateSynAck: true
advMetricsWithoutConfiguration: true
metricsConfiguration:
  contextOptions:
    - metricName: forward_count
      sourceLabels: [ip, podname, port]
      destinationLabels: [ip, namespace, workload, service, zone]
      additionalLabels: [is_reply]
      ttl: 5m
    - metricName: dns
      sourceLabels: [namespace]
  namespaces:
    exclude: [kube-system]
)");
  REQUIRE(r.has_value());
  const Config& c = *r;
  CHECK(c.endpoints_file == "/etc/retina/endpoints.yaml");
  CHECK(c.kubeconfig == "/root/.kube/config");
  CHECK(c.enable_kubernetes);
  CHECK(c.node_name == "node-a");
  CHECK(c.flow_log_path == "/var/log/retina/flows.jsonl");
  CHECK(c.host_interfaces == std::vector<std::string>{"eth0", "ens5"});
  CHECK(c.pod_interface_prefixes == std::vector<std::string>{"veth", "cali"});
  CHECK(c.drop_include_expected);
  CHECK(c.drop_events_per_second == 0);
  CHECK(c.conntrack_max_entries == 65536);
  CHECK(c.max_series_per_metric == 500);
  CHECK(c.pod_forward_metrics);
  CHECK(c.kernel_drop_reasons);
  CHECK(c.interface_stats_per_interface);
  CHECK(c.tcp_connection_remote_per_address);
  CHECK(c.tcp_flags_separate_syn_ack);
  CHECK(c.adv_metrics_without_configuration);
  REQUIRE(c.context_options.size() == 2);
  CHECK(c.context_options[0].metric_name == "forward_count");
  CHECK(c.context_options[0].source_labels == std::vector<std::string>{"ip", "podname", "port"});
  CHECK(c.context_options[0].destination_labels ==
        std::vector<std::string>{"ip", "namespace", "workload", "service", "zone"});
  CHECK(c.context_options[0].additional_labels == std::vector<std::string>{"is_reply"});
  CHECK(c.context_options[0].ttl == 300s);
  CHECK(c.context_options[1].metric_name == "dns");
  CHECK(c.context_options[1].ttl == 0s);
  CHECK(c.metrics_namespaces.exclude == std::vector<std::string>{"kube-system"});
  CHECK(c.metrics_namespaces.include.empty());
}

TEST_CASE("config: Retina's Helm-rendered config map loads unchanged", "[config]") {
  LogCapture logs;
  // As rendered by Retina's chart: metricsInterval as a duration, enableTCX
  // empty, the ring buffer size in float notation.
  auto r = load_config_yaml(R"(apiServer:
  host: 0.0.0.0
  port: 10093
logLevel: info
enabledPlugin: ["dropreason","packetforward","linuxutil","dns","packetparser"]
metricsInterval: 10s
metricsIntervalDuration: 10s
enableTCX: 
enableTelemetry: false
enablePodLevel: true
enableConntrackMetrics: false
remoteContext: true
enableAnnotations: false
bypassLookupIPOfInterest: false
dataAggregationLevel: low
telemetryInterval: 15m
dataSamplingRate: 1
packetParserRingBuffer: disabled
packetParserRingBufferSize: 8.388608e+06
filterMapMaxEntries: 255)");
  REQUIRE(r.has_value());
  CHECK(r->packet_parser_ring_buffer_size == 8388608);
  CHECK(r->enable_tcx == retina::TcxMode::kAuto);
  CHECK(r->metrics_interval == 10s);
  CHECK(r->enable_pod_level);
  CHECK(r->remote_context);
  CHECK(r->data_aggregation_level == retina::AggregationLevel::kLow);
  CHECK(r->enabled_plugins.size() == 5);
  // Ignored keys are named in a warning each.
  CHECK(logs.any("key=enableTelemetry"));
  CHECK(logs.any("key=telemetryInterval"));
  CHECK_FALSE(logs.any("metricsInterval is deprecated"));
}

TEST_CASE("config: Retina's sample config (pkg/config/testwith/config.yaml)", "[config]") {
  LogCapture logs;
  auto r = load_config_yaml(R"(apiServer:
  host: "0.0.0.0"
  port: 10093
# Supported - debug, info, error, warn, panic, fatal.
logLevel: info
enabledPlugin: ["dropreason", "packetforward", "linuxutil"]
# Interval, in seconds, to scrape/publish metrics.
metricsIntervalDuration: "10s"
# used to export telemetry to AppInsights
telemetryEnabled: true
dataAggregationLevel: "low"
telemetryInterval: "15m"
packetParserRingBuffer: "disabled"
packetParserRingBufferSize: 8388608
)");
  REQUIRE(r.has_value());
  CHECK(r->enabled_plugins == std::vector<std::string>{"dropreason", "packetforward", "linuxutil"});
  CHECK(logs.any("key=telemetryEnabled"));
  CHECK(logs.any("level=warn"));
}

TEST_CASE("config: deprecated metricsInterval is seconds and yields to metricsIntervalDuration", "[config]") {
  {
    LogCapture logs;
    auto r = load_config_yaml("metricsInterval: 15\n");
    REQUIRE(r.has_value());
    CHECK(r->metrics_interval == 15s);
    CHECK(logs.any("metricsInterval is deprecated"));
  }
  {
    auto r = load_config_yaml("metricsInterval: 15\nmetricsIntervalDuration: 2s\n");
    REQUIRE(r.has_value());
    CHECK(r->metrics_interval == 2s);
  }
  {
    auto r = load_config_yaml("metricsInterval: 20\nmetricsIntervalDuration: 0s\n");
    REQUIRE(r.has_value());
    CHECK(r->metrics_interval == 20s);  // zero is unset, as in Retina
  }
  {
    auto r = load_config_yaml("metricsInterval: 500ms\n");
    REQUIRE(r.has_value());
    CHECK(r->metrics_interval == 500ms);
  }
}

TEST_CASE("config: Retina's value spellings", "[config]") {
  SECTION("log levels") {
    struct {
      const char* text;
      retina::LogLevel level;
    } cases[] = {{"debug", retina::LogLevel::kDebug}, {"INFO", retina::LogLevel::kInfo},
                 {"warn", retina::LogLevel::kWarn},   {"warning", retina::LogLevel::kWarn},
                 {"error", retina::LogLevel::kError}, {"panic", retina::LogLevel::kError},
                 {"fatal", retina::LogLevel::kError}, {"dpanic", retina::LogLevel::kError},
                 {"trace", retina::LogLevel::kTrace}};
    for (const auto& c : cases) {
      auto r = load_config_yaml(std::string("logLevel: ") + c.text);
      REQUIRE(r.has_value());
      CHECK(r->log_level == c.level);
    }
  }
  SECTION("aggregation level is case-insensitive") {
    CHECK(load_config_yaml("dataAggregationLevel: HIGH")->data_aggregation_level == retina::AggregationLevel::kHigh);
    CHECK(load_config_yaml("dataAggregationLevel: Low")->data_aggregation_level == retina::AggregationLevel::kLow);
  }
  SECTION("enableTCX accepts true and false") {
    CHECK(load_config_yaml("enableTCX: true")->enable_tcx == retina::TcxMode::kAuto);
    CHECK(load_config_yaml("enableTCX: false")->enable_tcx == retina::TcxMode::kOff);
    CHECK(load_config_yaml("enableTCX: auto")->enable_tcx == retina::TcxMode::kAuto);
  }
  SECTION("dataSamplingRate 0 means every packet, as in Retina") {
    CHECK(load_config_yaml("dataSamplingRate: 0")->data_sampling_rate == 1);
  }
  SECTION("booleans in YAML 1.1 spellings") {
    CHECK(load_config_yaml("enablePodLevel: yes")->enable_pod_level);
    CHECK(load_config_yaml("enablePodLevel: \"true\"")->enable_pod_level);
    CHECK_FALSE(load_config_yaml("enableConntrackMetrics: off")->enable_conntrack_metrics);
    CHECK(load_config_yaml("enablePodLevel: 1")->enable_pod_level);
    CHECK_FALSE(load_config_yaml("enableConntrackMetrics: 0")->enable_conntrack_metrics);
  }
  SECTION("comma-separated plugin list") {
    auto r = load_config_yaml("enabledPlugin: \"dropreason, dns\"");
    REQUIRE(r.has_value());
    CHECK(r->enabled_plugins == std::vector<std::string>{"dropreason", "dns"});
  }
  SECTION("keys match case-insensitively, as viper does") {
    auto r = load_config_yaml("enablepodlevel: true\nAPISERVER:\n  PORT: 1234\n");
    REQUIRE(r.has_value());
    CHECK(r->enable_pod_level);
    CHECK(r->api_server_port == 1234);
  }
  SECTION("empty plugin list") {
    auto r = load_config_yaml("enabledPlugin: []");
    REQUIRE(r.has_value());
    CHECK(r->enabled_plugins.empty());
  }
}

TEST_CASE("config: unknown keys are errors naming the key and the closest one", "[config]") {
  std::string e = load_error("enablePodLevle: true\n");
  CHECK(e == "enablePodLevle: unknown key (did you mean enablePodLevel?)");

  e = load_error("apiServer:\n  hots: 1.2.3.4\n");
  CHECK(e == "apiServer.hots: unknown key (did you mean apiServer.host?)");

  e = load_error("completelyDifferent: 1\n");
  CHECK(e == "completelyDifferent: unknown key");

  e = load_error("metricsConfiguration:\n  contextOptions:\n    - metricName: dns\n      sourcelabel: [ip]\n");
  CHECK(e == "metricsConfiguration.contextOptions[0].sourcelabel: unknown key (did you mean "
             "metricsConfiguration.contextOptions[0].sourceLabels?)");

  e = load_error("logLevel: info\nloglevel: debug\n");
  CHECK(e == "loglevel: given more than once");
}

TEST_CASE("config: type errors name the key and the expected type", "[config]") {
  CHECK(load_error("enablePodLevel: maybe") == "enablePodLevel: expected a boolean (true or false), got \"maybe\"");
  CHECK(load_error("enablePodLevel: 2") == "enablePodLevel: expected a boolean (true or false), got \"2\"");
  CHECK(load_error("apiServer:\n  port: 70000") ==
        "apiServer.port: expected an integer from 0 to 65535, got \"70000\"");
  CHECK(load_error("apiServer:\n  port: -1") == "apiServer.port: expected an integer from 0 to 65535, got \"-1\"");
  CHECK(load_error("apiServer: 5") == "apiServer: expected a map, got \"5\"");
  CHECK(load_error("enabledPlugin: {a: b}") == "enabledPlugin: expected a list of strings, got a map");
  CHECK(load_error("enabledPlugin: [dns, [x]]") == "enabledPlugin[1]: expected a string, got a list");
  CHECK(load_error("logLevel: verbose") ==
        "logLevel: expected one of trace, debug, info, warn, warning, error, dpanic, panic, fatal, got \"verbose\"");
  CHECK(load_error("dataAggregationLevel: medium") == "dataAggregationLevel: expected one of low, high, got \"medium\"");
  CHECK(load_error("packetParserRingBuffer: true") ==
        "packetParserRingBuffer: expected one of enabled, disabled, got \"true\"");
  CHECK(load_error("packetParserRingBuffer: auto").find("auto is not supported") != std::string::npos);
  CHECK(load_error("enableTCX: always").find("enableTCX: always is not supported") == 0);
  CHECK(load_error("filterMapMaxEntries: 1.5") ==
        "filterMapMaxEntries: expected an integer from 0 to 4294967295, got \"1.5\"");
  CHECK(load_error("filterMapMaxEntries: 4294967296") ==
        "filterMapMaxEntries: expected an integer from 0 to 4294967295, got \"4294967296\"");
  CHECK(load_error("nodeName: [a]") == "nodeName: expected a string, got a list");
  CHECK(load_error("metricsIntervalDuration: 10").find("metricsIntervalDuration: missing unit in duration \"10\"") ==
        0);
  CHECK(load_error("metricsIntervalDuration: -5s") == "metricsIntervalDuration: must not be negative, got \"-5s\"");
  CHECK(load_error("conntrackReportInterval: 1500ms") ==
        "conntrackReportInterval: must be a whole number of seconds, got \"1500ms\"");
  CHECK(load_error("[1, 2]") == "config: expected a map of keys at the top level, got a list");
  CHECK(load_error("just text") == "config: expected a map of keys at the top level, got \"just text\"");
}

TEST_CASE("config: validation reports every problem at once", "[config]") {
  const std::string e = load_error(R"(
enabledPlugin: [packetparser, dropreasn, bogus, packetparser]
dataSamplingRate: 1
conntrackReportInterval: 0s
packetParserRingBufferSize: 3000000
filterMapMaxEntries: 0
metricsIntervalDuration: 50ms
hostInterfaces: ["eth 0", averyveryverylongname0]
enablePodLevel: maybe
metricsConfiguration:
  contextOptions:
    - metricName: forward_count
      sourceLabels: [ip, pod]
      additionalLabels: [direction]
    - metricName: nonsense
    - sourceLabels: [ip]
  namespaces:
    include: [a]
    exclude: [b]
)");
  const std::vector<std::string> expected = {
      "enablePodLevel: expected a boolean (true or false), got \"maybe\"",
      "enabledPlugin: unknown plugin \"dropreasn\" (did you mean dropreason?)",
      "enabledPlugin: unknown plugin \"bogus\" (known: packetparser, dropreason, packetforward, dns, tcpretrans, "
      "linuxutil, infiniband)",
      "enabledPlugin: \"packetparser\" listed twice",
      "metricsIntervalDuration: must be at least 100ms, got 50ms",
      "conntrackReportInterval: must be at least 1s, got 0s",
      "packetParserRingBufferSize: must be a power of two from",
      "filterMapMaxEntries: must be from 1 to 16777216, got 0",
      "hostInterfaces: \"eth 0\" is not an interface name",
      "hostInterfaces: \"averyveryverylongname0\" is not an interface name",
      "metricsConfiguration.contextOptions[0].sourceLabels: unknown label \"pod\" (expected one of ip, namespace, "
      "podname, workload, service, port, zone)",
      "metricsConfiguration.contextOptions[0].additionalLabels: unknown label \"direction\" (expected one of "
      "is_reply)",
      "metricsConfiguration.contextOptions[1].metricName: unknown metric \"nonsense\"",
      "metricsConfiguration.contextOptions[2].metricName: required",
      "metricsConfiguration.namespaces: include and exclude are mutually exclusive",
  };
  for (const auto& want : expected) {
    INFO(want);
    CHECK(e.find(want) != std::string::npos);
  }
  // one per line, no repeats
  size_t lines = 1;
  for (char ch : e) lines += ch == '\n';
  CHECK(lines == expected.size());
}

TEST_CASE("config: validate() on a Config built in code", "[config]") {
  Config c;
  c.packet_parser_ring_buffer_size = 2ull << 30;
  c.data_sampling_rate = 0;
  c.max_series_per_metric = 0;
  c.api_server_host = "";
  c.context_options.push_back({"drop_count", {"ip", "ip"}, {}, {}, std::chrono::seconds(-1)});
  c.metrics_namespaces.include = {""};
  auto st = c.validate();
  REQUIRE_FALSE(st);
  const std::string& e = st.error().message;
  CHECK(st.error().kind == retina::Error::Kind::kInvalidArgument);
  CHECK(e.find("apiServer.host: must not be empty") != std::string::npos);
  CHECK(e.find("packetParserRingBufferSize: must be a power of two") != std::string::npos);
  CHECK(e.find("to 1 GiB, got 2147483648") != std::string::npos);
  CHECK(e.find("dataSamplingRate: must be at least 1") != std::string::npos);
  CHECK(e.find("maxSeriesPerMetric: must be at least 1") != std::string::npos);
  CHECK(e.find("sourceLabels: label \"ip\" listed twice") != std::string::npos);
  CHECK(e.find("ttl: must not be negative") != std::string::npos);
  CHECK(e.find("namespaces: empty namespace name") != std::string::npos);

  Config ok;
  ok.packet_parser_ring_buffer_size = static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
  CHECK(ok.validate());
  ok.packet_parser_ring_buffer_size = 1ull << 30;
  CHECK(ok.validate());
  ok.api_server_port = 0;  // ephemeral
  CHECK(ok.validate());
}

TEST_CASE("config: YAML syntax errors carry line and column", "[config]") {
  auto r = load_config_yaml("apiServer:\n  host: [unclosed\n");
  REQUIRE_FALSE(r);
  CHECK(r.error().kind == retina::Error::Kind::kParse);
  CHECK(r.error().message.rfind("yaml: line ", 0) == 0);

  r = load_config_yaml("a: 1\n---\nb: 2\n");
  REQUIRE_FALSE(r);
  CHECK(r.error().message == "config: expected one YAML document, found several");

  // yaml-cpp's LoadAll never returns on a lone ","; the loader must.
  (void)load_config_yaml(",");
  (void)load_config_yaml(",\n,,");

  // Nesting deep enough to exhaust a recursive parser is refused.
  r = load_config_yaml(std::string(100000, '[') + std::string(100000, ']'));
  REQUIRE_FALSE(r);
}

TEST_CASE("config: load_config_file", "[config]") {
  char path[] = "/tmp/retina-config-test-XXXXXX";
  const int fd = mkstemp(path);
  REQUIRE(fd >= 0);
  close(fd);
  {
    std::ofstream out(path);
    out << "logLevel: warn\nbogusKey: 1\nenablePodLevel: 3\n";
  }
  auto r = retina::load_config_file(path);
  REQUIRE_FALSE(r);
  CHECK(r.error().message == std::string(path) + ": bogusKey: unknown key\n" + path +
                                 ": enablePodLevel: expected a boolean (true or false), got \"3\"");
  {
    std::ofstream out(path);
    out << "logLevel: warn\n";
  }
  r = retina::load_config_file(path);
  REQUIRE(r);
  CHECK(r->log_level == retina::LogLevel::kWarn);
  unlink(path);

  r = retina::load_config_file("/nonexistent/retina/config.yaml");
  REQUIRE_FALSE(r);
  CHECK(r.error().message.find("open(/nonexistent/retina/config.yaml): No such file or directory") == 0);
}

TEST_CASE("config: to_string", "[config]") {
  CHECK(std::string(retina::to_string(retina::LogLevel::kWarn)) == "warn");
  CHECK(std::string(retina::to_string(retina::LogLevel::kTrace)) == "trace");
  CHECK(std::string(retina::to_string(retina::AggregationLevel::kLow)) == "low");
  CHECK(std::string(retina::to_string(retina::AggregationLevel::kHigh)) == "high");
}

TEST_CASE("config: the config map shipped in deploy/ loads", "[config]") {
  const YAML::Node cm = YAML::LoadFile(std::string(RETINA_SOURCE_DIR) + "/deploy/kubernetes/configmap.yaml");
  const std::string text = cm["data"]["config.yaml"].as<std::string>();
  auto r = load_config_yaml(text);
  INFO((r ? std::string() : r.error().message));
  REQUIRE(r.has_value());
  CHECK(r->api_server_port == 10093);
}

TEST_CASE("config: huge and binary files are clear errors", "[config][hostile]") {
  char path[] = "/tmp/retina-config-hostile-XXXXXX";
  const int fd = mkstemp(path);
  REQUIRE(fd >= 0);
  close(fd);
  {
    std::ofstream out(path);
    out << "logLevel: warn\n# " << std::string(5u << 20, 'x') << "\n";
  }
  auto r = retina::load_config_file(path);
  REQUIRE_FALSE(r);
  CHECK(r.error().message == std::string(path) + ": larger than the 4 MiB limit");
  {
    std::ofstream out(path, std::ios::binary);
    const unsigned char junk[] = {0x7f, 'E', 'L', 'F', 2, 1, 1, 0, 0, 0, 0xff, 0xfe, '\n', 0x00, 0x01, 0x9c};
    out.write(reinterpret_cast<const char*>(junk), sizeof junk);
  }
  r = retina::load_config_file(path);
  REQUIRE_FALSE(r);
  CHECK(r.error().message.rfind(std::string(path) + ": ", 0) == 0);
  unlink(path);
}

TEST_CASE("config: flow log rotation keys", "[config][flowlog]") {
  auto r = load_config_yaml("flowLogPath: /var/log/retina/flows.jsonl\nflowLogMaxSize: 20\nflowLogMaxFiles: 3\n");
  REQUIRE(r);
  CHECK(r->flow_log_max_size_mb == 20);
  CHECK(r->flow_log_max_files == 3);
  r = load_config_yaml("flowLogMaxFiles: 0\nflowLogMaxSize: 2000000\n");
  REQUIRE_FALSE(r);
  CHECK(r.error().message.find("flowLogMaxFiles: must be from 1 to 1000, got 0") != std::string::npos);
  CHECK(r.error().message.find("flowLogMaxSize: must be at most 1048576 (megabytes; 0 never rotates), got 2000000") !=
        std::string::npos);
}
