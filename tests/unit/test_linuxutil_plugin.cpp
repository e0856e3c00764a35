// linuxutil end to end over fixture roots: init, poll, scrape through a
// Registry, and compare exact sample lines.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "plugins/linuxutil/linuxutil.hpp"
#include "retina/metrics/names.hpp"
#include "retina/metrics/registry.hpp"
#include "support/prom_text.hpp"

using namespace retina;
namespace fs = std::filesystem;

namespace {

const std::string kFixtures = std::string(RETINA_SOURCE_DIR) + "/tests/fixtures";

// A scratch copy of the proc fixture that a test may break; removed after.
struct ScratchProc {
  fs::path root;
  ScratchProc() {
    root = fs::temp_directory_path() / ("retina-linuxutil-" + std::to_string(::getpid()) + "-" +
                                        std::to_string(reinterpret_cast<uintptr_t>(this)));
    fs::remove_all(root);
    fs::create_directories(root);
    fs::copy(kFixtures + "/proc/linuxutil", root, fs::copy_options::recursive);
  }
  ~ScratchProc() {
    std::error_code ec;
    fs::remove_all(root, ec);
  }
  void write(const std::string& rel, const std::string& text) const {
    std::ofstream(root / rel, std::ios::trunc) << text;
  }
};

struct Harness {
  metrics::Registry registry;
  PluginContext ctx;
  std::unique_ptr<Plugin> plugin;

  Harness(std::string proc, std::string sys, LinuxUtilOptions opts = {}) {
    ctx.registry = &registry;
    ctx.proc_root = std::move(proc);
    ctx.sys_root = std::move(sys);
    opts.sockets = LinuxUtilOptions::Sockets::kProcFiles;
    plugin = make_linuxutil_plugin(opts);
    REQUIRE(plugin->init(ctx));
    REQUIRE(plugin->start());
  }
  ~Harness() { plugin->stop(); }
  std::string scrape() const { return registry.expose(); }
};

std::string source_errors(std::string_view source, std::string_view value) {
  return fmt::format("{}{{plugin=\"linuxutil\",source=\"{}\"}} {}", metrics::names::kPluginSourceErrors, source, value);
}

}  // namespace

TEST_CASE("linuxutil: tcp_connection_remote is Retina's address=AllIPs by default", "[linuxutil]") {
  Harness h(kFixtures + "/proc/linuxutil", kFixtures + "/sys/linuxutil");
  // Every established connection to a non-loopback remote: 3 + 1 + 1.
  CHECK(test::sample_lines(h.scrape(), metrics::names::kTcpConnectionRemote) ==
        std::vector<std::string>{"networkobservability_tcp_connection_remote{address=\"AllIPs\"} 5"});
}

TEST_CASE("linuxutil exports tcp_state and tcp_connection_remote from the socket tables", "[linuxutil]") {
  LinuxUtilOptions per_address;
  per_address.per_address = true;  // tcpConnectionRemotePerAddress
  Harness h(kFixtures + "/proc/linuxutil", kFixtures + "/sys/linuxutil", per_address);
  const std::string text = h.scrape();
  INFO(text);
  CHECK(test::parse_prom_text(text).error.empty());
  CHECK(test::sample_lines(text, metrics::names::kTcpState) == std::vector<std::string>{
                                                       "networkobservability_tcp_state{state=\"ESTABLISHED\"} 7",
                                                       "networkobservability_tcp_state{state=\"SYN_SENT\"} 1",
                                                       "networkobservability_tcp_state{state=\"SYN_RECV\"} 1",
                                                       "networkobservability_tcp_state{state=\"FIN_WAIT1\"} 1",
                                                       "networkobservability_tcp_state{state=\"FIN_WAIT2\"} 1",
                                                       "networkobservability_tcp_state{state=\"TIME_WAIT\"} 2",
                                                       "networkobservability_tcp_state{state=\"CLOSE\"} 1",
                                                       "networkobservability_tcp_state{state=\"CLOSE_WAIT\"} 1",
                                                       "networkobservability_tcp_state{state=\"LAST_ACK\"} 1",
                                                       "networkobservability_tcp_state{state=\"LISTEN\"} 3",
                                                       "networkobservability_tcp_state{state=\"CLOSING\"} 1",
                                                   });
  CHECK(test::sample_lines(text, metrics::names::kTcpConnectionRemote) ==
        std::vector<std::string>{
            "networkobservability_tcp_connection_remote{address=\"10.0.0.9\"} 3",
            "networkobservability_tcp_connection_remote{address=\"10.0.0.1\"} 1",
            "networkobservability_tcp_connection_remote{address=\"fd00::9\"} 1",
        });
  CHECK(text.find("# TYPE networkobservability_tcp_state gauge\n") != std::string::npos);
}

TEST_CASE("linuxutil folds remote addresses beyond the top N into 'other'", "[linuxutil]") {
  LinuxUtilOptions opts;
  opts.per_address = true;
  opts.remote_top_n = 1;
  Harness h(kFixtures + "/proc/linuxutil", kFixtures + "/sys/linuxutil", opts);
  CHECK(test::sample_lines(h.scrape(), metrics::names::kTcpConnectionRemote) ==
        std::vector<std::string>{
            "networkobservability_tcp_connection_remote{address=\"10.0.0.9\"} 3",
            "networkobservability_tcp_connection_remote{address=\"other\"} 2",
        });
}

TEST_CASE("linuxutil exports Tcp/TcpExt/MPTcpExt, Ip/IpExt/Ip6 and Udp/Udp6 counters", "[linuxutil]") {
  Harness h(kFixtures + "/proc/linuxutil", kFixtures + "/sys/linuxutil");
  const std::string text = h.scrape();
  INFO(text);
  const auto tcp = test::sample_lines(text, metrics::names::kTcpConnectionStats);
  const auto has = [](const std::vector<std::string>& v, const std::string& line) {
    return std::find(v.begin(), v.end(), line) != v.end();
  };
  // Tcp of /proc/net/snmp first, in kernel order, then TcpExt and MPTcpExt.
  REQUIRE(tcp.size() > 15);
  CHECK(tcp[0] == "networkobservability_tcp_connection_stats{statistic_name=\"RtoAlgorithm\"} 1");
  CHECK(tcp[3] == "networkobservability_tcp_connection_stats{statistic_name=\"MaxConn\"} -1");
  CHECK(has(tcp, "networkobservability_tcp_connection_stats{statistic_name=\"RetransSegs\"} 42"));
  CHECK(has(tcp, "networkobservability_tcp_connection_stats{statistic_name=\"CurrEstab\"} 7"));
  CHECK(has(tcp, "networkobservability_tcp_connection_stats{statistic_name=\"OutRsts\"} 17"));
  CHECK(has(tcp, "networkobservability_tcp_connection_stats{statistic_name=\"TCPTimeouts\"} 7"));
  CHECK(has(tcp, "networkobservability_tcp_connection_stats{statistic_name=\"ListenDrops\"} 6"));
  CHECK(has(tcp, "networkobservability_tcp_connection_stats{statistic_name=\"ListenOverflows\"} 5"));
  CHECK(has(tcp, "networkobservability_tcp_connection_stats{statistic_name=\"TCPSynRetrans\"} 9"));
  CHECK(has(tcp, "networkobservability_tcp_connection_stats{statistic_name=\"MPCapableSYNRX\"} 0"));
  // Names stay unique across the merged tables.
  CHECK(std::set<std::string>(tcp.begin(), tcp.end()).size() == tcp.size());

  const auto ip = test::sample_lines(text, metrics::names::kIpConnectionStats);
  CHECK(ip[0] == "networkobservability_ip_connection_stats{statistic_name=\"Forwarding\"} 2");
  CHECK(has(ip, "networkobservability_ip_connection_stats{statistic_name=\"InReceives\"} 1234567"));
  CHECK(has(ip, "networkobservability_ip_connection_stats{statistic_name=\"InDiscards\"} 3"));
  CHECK(has(ip, "networkobservability_ip_connection_stats{statistic_name=\"OutRequests\"} 7654321"));
  CHECK(has(ip, "networkobservability_ip_connection_stats{statistic_name=\"InOctets\"} 18446744073709551615"));
  CHECK(has(ip, "networkobservability_ip_connection_stats{statistic_name=\"OutOctets\"} 123456789012"));
  CHECK(has(ip, "networkobservability_ip_connection_stats{statistic_name=\"InNoRoutes\"} 2"));
  CHECK(has(ip, "networkobservability_ip_connection_stats{statistic_name=\"Ip6InReceives\"} 4321"));
  CHECK(has(ip, "networkobservability_ip_connection_stats{statistic_name=\"Ip6OutRequests\"} 4000"));
  for (const auto& line : ip) CHECK(line.find("Icmp") == std::string::npos);

  CHECK(test::sample_lines(text, metrics::names::kUdpConnectionStats) ==
        std::vector<std::string>{
            "networkobservability_udp_connection_stats{statistic_name=\"InDatagrams\"} 5000",
            "networkobservability_udp_connection_stats{statistic_name=\"NoPorts\"} 12",
            "networkobservability_udp_connection_stats{statistic_name=\"InErrors\"} 1",
            "networkobservability_udp_connection_stats{statistic_name=\"OutDatagrams\"} 4800",
            "networkobservability_udp_connection_stats{statistic_name=\"RcvbufErrors\"} 4",
            "networkobservability_udp_connection_stats{statistic_name=\"SndbufErrors\"} 0",
            "networkobservability_udp_connection_stats{statistic_name=\"InCsumErrors\"} 0",
            "networkobservability_udp_connection_stats{statistic_name=\"IgnoredMulti\"} 0",
            "networkobservability_udp_connection_stats{statistic_name=\"MemErrors\"} 0",
            "networkobservability_udp_connection_stats{statistic_name=\"Udp6InDatagrams\"} 77",
            "networkobservability_udp_connection_stats{statistic_name=\"Udp6NoPorts\"} 0",
            "networkobservability_udp_connection_stats{statistic_name=\"Udp6InErrors\"} 1",
            "networkobservability_udp_connection_stats{statistic_name=\"Udp6OutDatagrams\"} 66",
            "networkobservability_udp_connection_stats{statistic_name=\"Udp6RcvbufErrors\"} 0",
            "networkobservability_udp_connection_stats{statistic_name=\"Udp6SndbufErrors\"} 0",
            "networkobservability_udp_connection_stats{statistic_name=\"Udp6InCsumErrors\"} 0",
            "networkobservability_udp_connection_stats{statistic_name=\"Udp6IgnoredMulti\"} 0",
            "networkobservability_udp_connection_stats{statistic_name=\"Udp6MemErrors\"} 0",
            "networkobservability_udp_connection_stats{statistic_name=\"ACTIVE\"} 3",
        });
}

TEST_CASE("linuxutil: interface_stats is Retina's all_interfaces sum by default", "[linuxutil]") {
  Harness h(kFixtures + "/proc/linuxutil", kFixtures + "/sys/linuxutil");
  const std::string text = h.scrape();
  INFO(text);
  std::vector<std::string> expected;
  // eth0 + vethab12cd (lo skipped), in first-seen order; vethab12cd's
  // all-ones tx_dropped saturates the sum instead of wrapping it.
  for (const auto& [stat, v] : std::vector<std::pair<const char*, const char*>>{
           {"rx_crc_errors", "1"},       {"rx_dropped", "11"},       {"rx_errors", "3"},
           {"rx_fifo_errors", "0"},      {"rx_frame_errors", "0"},   {"rx_length_errors", "0"},
           {"rx_missed_errors", "4"},    {"rx_nohandler", "5"},      {"rx_over_errors", "0"},
           {"tx_aborted_errors", "0"},   {"tx_carrier_errors", "0"}, {"tx_dropped", "18446744073709551615"},
           {"tx_errors", "0"},           {"tx_fifo_errors", "0"},    {"tx_heartbeat_errors", "0"},
           {"tx_window_errors", "0"}})
    expected.push_back(fmt::format(
        "networkobservability_interface_stats{{interface_name=\"all_interfaces\",statistic_name=\"{}\"}} {}", stat, v));
  CHECK(test::sample_lines(text, metrics::names::kInterfaceStats) == expected);
}

TEST_CASE("linuxutil exports sysfs error and drop counters per interface, lo skipped", "[linuxutil]") {
  LinuxUtilOptions per_interface;
  per_interface.per_interface = true;  // interfaceStatsPerInterface
  Harness h(kFixtures + "/proc/linuxutil", kFixtures + "/sys/linuxutil", per_interface);
  const std::string text = h.scrape();
  INFO(text);
  std::vector<std::string> expected;
  const auto add = [&](const char* iface, const char* stat, std::string_view v) {
    expected.push_back(fmt::format(
        "networkobservability_interface_stats{{interface_name=\"{}\",statistic_name=\"{}\"}} {}", iface, stat, v));
  };
  // Sorted by interface, then by file name; counters without err/drop/... are not exported.
  for (const char* iface : {"eth0", "vethab12cd"}) {
    const bool eth = std::string_view(iface) == "eth0";
    add(iface, "rx_crc_errors", eth ? "1" : "0");
    add(iface, "rx_dropped", eth ? "11" : "0");
    add(iface, "rx_errors", eth ? "3" : "0");
    add(iface, "rx_fifo_errors", "0");
    add(iface, "rx_frame_errors", "0");
    add(iface, "rx_length_errors", "0");
    add(iface, "rx_missed_errors", eth ? "4" : "0");
    add(iface, "rx_nohandler", eth ? "5" : "0");
    add(iface, "rx_over_errors", "0");
    add(iface, "tx_aborted_errors", "0");
    add(iface, "tx_carrier_errors", "0");
    add(iface, "tx_dropped", eth ? "2" : "18446744073709551615");
    add(iface, "tx_errors", "0");
    add(iface, "tx_fifo_errors", "0");
    add(iface, "tx_heartbeat_errors", "0");
    add(iface, "tx_window_errors", "0");
  }
  CHECK(test::sample_lines(text, metrics::names::kInterfaceStats) == expected);
}

TEST_CASE("linuxutil counts source errors at zero on a clean poll", "[linuxutil]") {
  Harness h(kFixtures + "/proc/linuxutil", kFixtures + "/sys/linuxutil");
  const std::string text = h.scrape();
  CHECK(test::sample_lines(text, metrics::names::kPluginSourceErrors) ==
        std::vector<std::string>{source_errors("snmp", "0"), source_errors("netstat", "0"),
                                 source_errors("snmp6", "0"), source_errors("tcp_sockets", "0"),
                                 source_errors("udp_sockets", "0"), source_errors("interfaces", "0")});
  CHECK(text.find("# TYPE controlplane_networkobservability_plugin_source_errors_total counter") != std::string::npos);
}

TEST_CASE("a malformed file fails only its own source, counted per poll", "[linuxutil]") {
  ScratchProc proc;
  proc.write("net/snmp", "Ip: Forwarding DefaultTTL\nIp: 1\n");           // header/value mismatch
  proc.write("net/tcp6", "  sl  local_address remote_address st\n   0: zz\n");  // garbage socket line
  Harness h(proc.root.string(), kFixtures + "/sys/linuxutil");
  REQUIRE(h.plugin->reconcile());  // the other sources still work: not a failed poll
  const std::string text = h.scrape();
  INFO(text);
  const auto errors = test::sample_lines(text, metrics::names::kPluginSourceErrors);
  CHECK(std::find(errors.begin(), errors.end(), source_errors("snmp", "2")) != errors.end());  // start + reconcile
  CHECK(std::find(errors.begin(), errors.end(), source_errors("tcp_sockets", "2")) != errors.end());
  CHECK(std::find(errors.begin(), errors.end(), source_errors("netstat", "0")) != errors.end());
  // No partial socket counts: tcp_state is absent rather than IPv4 only.
  CHECK(test::sample_lines(text, metrics::names::kTcpState).empty());
  CHECK(test::sample_lines(text, metrics::names::kTcpConnectionRemote).empty());
  // snmp's Tcp/Ip/Udp tables are gone, the netstat, snmp6 and socket-count values stay.
  const auto tcp = test::sample_lines(text, metrics::names::kTcpConnectionStats);
  CHECK(std::find(tcp.begin(), tcp.end(),
                  "networkobservability_tcp_connection_stats{statistic_name=\"RetransSegs\"} 42") == tcp.end());
  CHECK(std::find(tcp.begin(), tcp.end(),
                  "networkobservability_tcp_connection_stats{statistic_name=\"TCPTimeouts\"} 7") != tcp.end());
  CHECK(test::sample_lines(text, metrics::names::kUdpConnectionStats).back() ==
        "networkobservability_udp_connection_stats{statistic_name=\"ACTIVE\"} 3");
  CHECK_FALSE(test::sample_lines(text, metrics::names::kInterfaceStats).empty());

  // Fixed on disk: the next poll exports everything again.
  fs::copy_file(kFixtures + "/proc/linuxutil/net/snmp", proc.root / "net/snmp", fs::copy_options::overwrite_existing);
  fs::copy_file(kFixtures + "/proc/linuxutil/net/tcp6", proc.root / "net/tcp6", fs::copy_options::overwrite_existing);
  REQUIRE(h.plugin->reconcile());
  const std::string fixed = h.scrape();
  CHECK(test::sample_lines(fixed, metrics::names::kTcpState).size() == 11);
  CHECK(fixed.find("networkobservability_tcp_connection_stats{statistic_name=\"RetransSegs\"} 42\n") !=
        std::string::npos);
  CHECK(fixed.find(source_errors("snmp", "2") + "\n") != std::string::npos);
}

TEST_CASE("missing IPv6 files mean IPv6 is off, not an error", "[linuxutil]") {
  ScratchProc proc;
  for (const char* f : {"net/snmp6", "net/tcp6", "net/udp6"}) fs::remove(proc.root / f);
  Harness h(proc.root.string(), kFixtures + "/sys/linuxutil");
  const std::string text = h.scrape();
  INFO(text);
  CHECK(test::sample_lines(text, metrics::names::kPluginSourceErrors) ==
        std::vector<std::string>{source_errors("snmp", "0"), source_errors("netstat", "0"),
                                 source_errors("snmp6", "0"), source_errors("tcp_sockets", "0"),
                                 source_errors("udp_sockets", "0"), source_errors("interfaces", "0")});
  CHECK(text.find("networkobservability_tcp_state{state=\"ESTABLISHED\"} 5\n") != std::string::npos);
  CHECK(text.find("networkobservability_tcp_state{state=\"LISTEN\"} 2\n") != std::string::npos);
  for (const auto& line : test::sample_lines(text, metrics::names::kUdpConnectionStats))
    CHECK(line.find("Udp6") == std::string::npos);
  CHECK(text.find("networkobservability_udp_connection_stats{statistic_name=\"ACTIVE\"} 2\n") != std::string::npos);
}

TEST_CASE("a poll that reads nothing makes reconcile fail, the plugin keeps running", "[linuxutil]") {
  Harness h("/nonexistent-proc", "/nonexistent-sys");
  auto st = h.plugin->reconcile();
  REQUIRE_FALSE(st);
  CHECK(st.error().message.starts_with(
      "linuxutil: no source could be read this poll; first: open(/nonexistent-proc/net/snmp)"));
  const std::string text = h.scrape();
  CHECK(text.find(source_errors("interfaces", "2")) != std::string::npos);
  CHECK(test::sample_lines(text, metrics::names::kTcpState).empty());
}

TEST_CASE("stop() removes the collector from the registry", "[linuxutil]") {
  metrics::Registry registry;
  PluginContext ctx;
  ctx.registry = &registry;
  ctx.proc_root = kFixtures + "/proc/linuxutil";
  ctx.sys_root = kFixtures + "/sys/linuxutil";
  auto plugin = make_linuxutil_plugin();
  CHECK(plugin->name() == "linuxutil");
  REQUIRE(plugin->init(ctx));
  REQUIRE(plugin->start());
  CHECK(registry.expose().find("networkobservability_tcp_state{") != std::string::npos);
  plugin->stop();
  CHECK(registry.expose().find("networkobservability_tcp_state{") == std::string::npos);
  plugin.reset();  // a second stop from the destructor is harmless

  PluginContext no_registry;
  CHECK_FALSE(make_linuxutil_plugin()->init(no_registry));
}
