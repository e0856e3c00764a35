// infiniband: sysfs parsers, and the plugin end to end over a sysfs-shaped
// fixture tree (two HCAs, two IPoIB interfaces, one Ethernet interface).
#include <catch2/catch.hpp>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "plugins/infiniband/infiniband.hpp"
#include "plugins/infiniband/sysfs_parsers.hpp"
#include "retina/metrics/names.hpp"
#include "retina/metrics/registry.hpp"
#include "support/prom_text.hpp"

using namespace retina;
using namespace retina::infiniband;
namespace fs = std::filesystem;

namespace {

const std::string kSys = std::string(RETINA_SOURCE_DIR) + "/tests/fixtures/sys/infiniband";

// A scratch copy of the fixture tree that a test may break; removed after.
struct ScratchSys {
  fs::path root;
  explicit ScratchSys(std::string_view tag)
      : root(fs::temp_directory_path() / fmt::format("retina-ib-{}-{}", tag, ::getpid())) {
    fs::remove_all(root);
    fs::copy(kSys, root, fs::copy_options::recursive | fs::copy_options::copy_symlinks);
  }
  ~ScratchSys() {
    std::error_code ec;
    fs::remove_all(root, ec);
  }
};

struct Harness {
  metrics::Registry registry;
  PluginContext ctx;
  std::unique_ptr<Plugin> plugin = make_infiniband_plugin();

  explicit Harness(std::string sys) {
    ctx.registry = &registry;
    ctx.sys_root = std::move(sys);
  }
  ~Harness() { plugin->stop(); }
};

std::string counter(const char* stat, const char* dev, const char* port, std::string_view v) {
  return fmt::format(
      "networkobservability_infiniband_counter_stats{{statistic_name=\"{}\",device=\"{}\",port=\"{}\"}} {}", stat, dev,
      port, v);
}
std::string param(const char* stat, const char* iface, std::string_view v) {
  return fmt::format("networkobservability_infiniband_status_params{{statistic_name=\"{}\",interface_name=\"{}\"}} {}",
                     stat, iface, v);
}

}  // namespace

TEST_CASE("infiniband counter parser: decimal, N/A, garbage", "[infiniband][parsers]") {
  CHECK(parse_ib_counter("0\n").value() == std::optional<uint64_t>{0});
  CHECK(parse_ib_counter("18446744073709551615\n").value() == std::optional<uint64_t>{UINT64_MAX});
  CHECK(parse_ib_counter("N/A (no PMA)\n").value() == std::nullopt);
  CHECK_FALSE(parse_ib_counter(""));
  CHECK_FALSE(parse_ib_counter("18446744073709551616\n"));
  CHECK_FALSE(parse_ib_counter("12 34\n"));
  CHECK_FALSE(parse_ib_counter("-1\n"));
  CHECK(parse_ib_counter("4: ACTIVE\n").error().message == "'4: ACTIVE' is not a decimal number");
}

TEST_CASE("IPoIB attribute parsers", "[infiniband][parsers]") {
  CHECK(parse_ipoib_mode("datagram\n").value() == 0);
  CHECK(parse_ipoib_mode("connected\n").value() == 1);
  CHECK(parse_ipoib_mode("bogus\n").error().message == "IPoIB mode 'bogus' is neither 'datagram' nor 'connected'");
  CHECK_FALSE(parse_ipoib_mode(""));

  CHECK(parse_operstate("unknown\n").value() == 0);
  CHECK(parse_operstate("down\n").value() == 2);
  CHECK(parse_operstate("lowerlayerdown\n").value() == 3);
  CHECK(parse_operstate("up\n").value() == 6);
  CHECK(parse_operstate("sideways").error().message == "unknown operstate 'sideways'");

  CHECK(parse_sysfs_hex("0xffff\n").value() == 0xffff);
  CHECK(parse_sysfs_hex("0X8001").value() == 0x8001);
  CHECK(parse_sysfs_hex("0xffffffffffffffff").value() == UINT64_MAX);
  for (std::string_view bad : {"", "ffff", "0x", "0xg1", "0x10000000000000000", "0x 1", "-0x1"}) {
    INFO(bad);
    CHECK_FALSE(parse_sysfs_hex(bad));
  }
}

TEST_CASE("infiniband is disabled where /sys/class/infiniband does not exist", "[infiniband]") {
  Harness h("/nonexistent-sys");
  auto st = h.plugin->init(h.ctx);
  REQUIRE_FALSE(st);
  CHECK(st.error().kind == Error::Kind::kUnsupported);
  CHECK(st.error().message == "infiniband: no InfiniBand devices (/nonexistent-sys/class/infiniband missing)");

  // With the real root the message reads exactly as documented.
  Harness real("/sys");
  if (!fs::exists("/sys/class/infiniband")) {
    auto r = real.plugin->init(real.ctx);
    REQUIRE_FALSE(r);
    CHECK(r.error().message == "infiniband: no InfiniBand devices (/sys/class/infiniband missing)");
  }

  // Present but empty: the RDMA core is loaded without any device.
  const fs::path empty = fs::temp_directory_path() / fmt::format("retina-ib-empty-{}", ::getpid());
  fs::create_directories(empty / "class/infiniband");
  Harness e(empty.string());
  auto r = e.plugin->init(e.ctx);
  fs::remove_all(empty);
  REQUIRE_FALSE(r);
  CHECK(r.error().kind == Error::Kind::kUnsupported);
  CHECK(r.error().message.ends_with("class/infiniband is empty)"));
}

TEST_CASE("infiniband exports port counters and IPoIB parameters from the fixture tree", "[infiniband]") {
  Harness h(kSys);
  REQUIRE(h.plugin->init(h.ctx));
  REQUIRE(h.plugin->start());
  REQUIRE(h.plugin->reconcile());
  const std::string text = h.registry.expose();
  INFO(text);
  CHECK(test::parse_prom_text(text).error.empty());

  // Devices and ports sorted; counters/ then hw_counters/, each sorted by
  // name; mlx5_1's "N/A (no PMA)" files are left out.
  CHECK(test::sample_lines(text, metrics::names::kInfinibandCounterStats) ==
        std::vector<std::string>{
            counter("VL15_dropped", "mlx5_0", "1", "0"),
            counter("excessive_buffer_overrun_errors", "mlx5_0", "1", "0"),
            counter("link_downed", "mlx5_0", "1", "1"),
            counter("link_error_recovery", "mlx5_0", "1", "0"),
            counter("local_link_integrity_errors", "mlx5_0", "1", "0"),
            counter("multicast_rcv_packets", "mlx5_0", "1", "1020"),
            counter("multicast_xmit_packets", "mlx5_0", "1", "12"),
            counter("port_rcv_constraint_errors", "mlx5_0", "1", "0"),
            counter("port_rcv_data", "mlx5_0", "1", "18446744073709551615"),
            counter("port_rcv_errors", "mlx5_0", "1", "3"),
            counter("port_rcv_packets", "mlx5_0", "1", "9876543210"),
            counter("port_rcv_remote_physical_errors", "mlx5_0", "1", "0"),
            counter("port_rcv_switch_relay_errors", "mlx5_0", "1", "0"),
            counter("port_xmit_constraint_errors", "mlx5_0", "1", "0"),
            counter("port_xmit_data", "mlx5_0", "1", "123456789012"),
            counter("port_xmit_discards", "mlx5_0", "1", "4"),
            counter("port_xmit_packets", "mlx5_0", "1", "1234567890"),
            counter("port_xmit_wait", "mlx5_0", "1", "55"),
            counter("symbol_error", "mlx5_0", "1", "0"),
            counter("unicast_rcv_packets", "mlx5_0", "1", "9876542190"),
            counter("unicast_xmit_packets", "mlx5_0", "1", "1234567878"),
            counter("duplicate_request", "mlx5_0", "1", "0"),
            counter("implied_nak_seq_err", "mlx5_0", "1", "0"),
            counter("lifespan", "mlx5_0", "1", "10"),
            counter("local_ack_timeout_err", "mlx5_0", "1", "2"),
            counter("np_cnp_sent", "mlx5_0", "1", "0"),
            counter("out_of_buffer", "mlx5_0", "1", "7"),
            counter("out_of_sequence", "mlx5_0", "1", "1"),
            counter("packet_seq_err", "mlx5_0", "1", "0"),
            counter("rnr_nak_retry_err", "mlx5_0", "1", "0"),
            counter("rp_cnp_handled", "mlx5_0", "1", "0"),
            counter("rx_atomic_requests", "mlx5_0", "1", "0"),
            counter("rx_read_requests", "mlx5_0", "1", "100"),
            counter("rx_write_requests", "mlx5_0", "1", "200"),
            counter("link_downed", "mlx5_1", "1", "0"),
        });

  // ib0 and ib1 (type 32); eth0 is not IPoIB. ib1 has no carrier file and
  // an unknown speed (-1); ib0's debug/driver_version is text, not a value.
  CHECK(test::sample_lines(text, metrics::names::kInfinibandStatusParams) ==
        std::vector<std::string>{
            param("mode", "ib0", "0"),
            param("umcast", "ib0", "0"),
            param("pkey", "ib0", "65535"),
            param("mtu", "ib0", "2044"),
            param("carrier", "ib0", "1"),
            param("operstate", "ib0", "6"),
            param("speed", "ib0", "200000"),
            param("tx_queue_len", "ib0", "256"),
            param("lro_timeout", "ib0", "32"),
            param("mode", "ib1", "1"),
            param("umcast", "ib1", "1"),
            param("pkey", "ib1", "32769"),
            param("mtu", "ib1", "65520"),
            param("operstate", "ib1", "2"),
            param("tx_queue_len", "ib1", "256"),
        });

  CHECK(test::sample_lines(text, metrics::names::kPluginSourceErrors) ==
        std::vector<std::string>{
            "controlplane_networkobservability_plugin_source_errors_total{plugin=\"infiniband\",source=\"counters\"} 0",
            "controlplane_networkobservability_plugin_source_errors_total{plugin=\"infiniband\",source=\"ipoib\"} 0",
        });

  h.plugin->stop();
  CHECK(h.registry.expose().find("infiniband_counter_stats{") == std::string::npos);
}

TEST_CASE("a malformed counter file is skipped and counted, the rest export", "[infiniband]") {
  const ScratchSys scratch("malformed");
  const fs::path& root = scratch.root;
  const fs::path port = root / "devices/pci0000:00/0000:00:08.0/infiniband/mlx5_0/ports/1";
  std::ofstream(port / "counters/symbol_error", std::ios::trunc) << "garbage\n";
  std::ofstream(root / "class/net/ib1/mode", std::ios::trunc) << "bogus\n";

  Harness h(root.string());
  REQUIRE(h.plugin->init(h.ctx));
  REQUIRE(h.plugin->start());
  const std::string text = h.registry.expose();
  INFO(text);
  const auto counters = test::sample_lines(text, metrics::names::kInfinibandCounterStats);
  CHECK(counters.size() == 34);
  CHECK(std::find(counters.begin(), counters.end(), counter("symbol_error", "mlx5_0", "1", "0")) == counters.end());
  CHECK(std::find(counters.begin(), counters.end(), counter("port_xmit_wait", "mlx5_0", "1", "55")) != counters.end());
  const auto params = test::sample_lines(text, metrics::names::kInfinibandStatusParams);
  CHECK(params.size() == 14);
  CHECK(std::find(params.begin(), params.end(), param("mtu", "ib1", "65520")) != params.end());
  CHECK(text.find("source_errors_total{plugin=\"infiniband\",source=\"counters\"} 1\n") != std::string::npos);
  CHECK(text.find("source_errors_total{plugin=\"infiniband\",source=\"ipoib\"} 1\n") != std::string::npos);
}

TEST_CASE("infiniband reconcile fails only when both sources fail", "[infiniband]") {
  const ScratchSys scratch("gone");
  const fs::path& root = scratch.root;
  Harness h(root.string());
  REQUIRE(h.plugin->init(h.ctx));
  REQUIRE(h.plugin->start());

  fs::remove_all(root / "class/net");  // IPoIB side gone: counters still export
  REQUIRE(h.plugin->reconcile());
  std::string text = h.registry.expose();
  CHECK(test::sample_lines(text, metrics::names::kInfinibandCounterStats).size() == 35);
  CHECK(test::sample_lines(text, metrics::names::kInfinibandStatusParams).empty());

  fs::remove_all(root / "class");  // and now the devices too
  auto st = h.plugin->reconcile();
  REQUIRE_FALSE(st);
  CHECK(st.error().message ==
        fmt::format("infiniband: every source failed this poll; first: opendir({}/class/infiniband): "
                    "No such file or directory (errno 2)",
                    root.string()));
  text = h.registry.expose();
  CHECK(test::sample_lines(text, metrics::names::kInfinibandCounterStats).empty());
  CHECK(text.find("source_errors_total{plugin=\"infiniband\",source=\"counters\"} 1\n") != std::string::npos);
  CHECK(text.find("source_errors_total{plugin=\"infiniband\",source=\"ipoib\"} 2\n") != std::string::npos);
}
