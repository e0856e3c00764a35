// Loader pieces that need no privileges: feature detection through a fake,
// the packetparser's refusal to load without what it needs, config checks,
// and rtnetlink attribute parsing.
#include <catch2/catch.hpp>

#include <linux/rtnetlink.h>

#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <set>
#include <vector>

#include "loader/netlink.hpp"
#include "loader/tc_attach.hpp"
#include "loader/tcx_link.hpp"
#include "plugins/bpf_plugin.hpp"
#include "plugins/packetparser/packetparser.hpp"
#include "plugins/packetparser/pp_metrics.hpp"
#include "plugins/services.hpp"
#include "retina/features.hpp"

using namespace retina;

namespace {

class FakeFeatures final : public FeatureDetector {
 public:
  explicit FakeFeatures(std::set<KernelFeature> missing) : missing_(std::move(missing)) {}
  Status probe(KernelFeature f) override {
    probed.push_back(f);
    if (missing_.count(f)) return unexpected(Error::unsupported(std::string("fake kernel lacks ") + to_string(f)));
    return ok();
  }
  std::vector<KernelFeature> probed;

 private:
  std::set<KernelFeature> missing_;
};

}  // namespace

TEST_CASE("every kernel feature has a distinct name", "[loader]") {
  std::set<std::string> names;
  for (int i = 0; i < static_cast<int>(KernelFeature::kCount); ++i) {
    std::string n = to_string(static_cast<KernelFeature>(i));
    CHECK(n != "unknown");
    names.insert(n);
  }
  CHECK(names.size() == static_cast<size_t>(KernelFeature::kCount));
  CHECK(std::string(to_string(KernelFeature::kRingBuf)) == "ringbuf");
}

TEST_CASE("RETINA_KERNEL_FEATURES_OFF turns named features off without probing", "[loader]") {
  ::setenv("RETINA_KERNEL_FEATURES_OFF", "tcx,bpf_timer", 1);
  auto features = make_kernel_feature_detector();
  for (auto f : {KernelFeature::kTcx, KernelFeature::kBpfTimer}) {
    auto st = features->probe(f);
    REQUIRE_FALSE(st);
    CHECK(st.error().kind == Error::Kind::kUnsupported);
    CHECK_THAT(st.error().message, Catch::Contains("turned off by RETINA_KERNEL_FEATURES_OFF"));
  }
  // Whole names only, not prefixes.
  ::setenv("RETINA_KERNEL_FEATURES_OFF", "bpf_time,ring", 1);
  auto other = make_kernel_feature_detector();
  for (auto f : {KernelFeature::kBpfTimer, KernelFeature::kRingBuf}) {
    auto st = other->probe(f);
    CHECK((st || st.error().message.find("RETINA_KERNEL_FEATURES_OFF") == std::string::npos));
  }
  ::unsetenv("RETINA_KERNEL_FEATURES_OFF");
}

TEST_CASE("packetparser refuses to load on a kernel without ring buffers", "[loader][packetparser]") {
  Config cfg;
  FakeFeatures features({KernelFeature::kRingBuf});
  PluginContext ctx;
  ctx.config = &cfg;
  ctx.features = &features;
  PluginServices services;
  REQUIRE(services.provide(PacketParserPlugin::kNeeds, ctx));
  PacketParserPlugin p;
  auto st = p.init(ctx);
  REQUIRE_FALSE(st.has_value());
  CHECK(st.error().kind == Error::Kind::kUnsupported);
  CHECK(st.error().message == "packetparser: fake kernel lacks ringbuf");
  CHECK(p.event_sources().empty());
}

TEST_CASE("packetparser refuses to load without tc or atomics", "[loader][packetparser]") {
  for (KernelFeature f : {KernelFeature::kTcCls, KernelFeature::kAtomics, KernelFeature::kBpfSyscall}) {
    Config cfg;
    FakeFeatures features({f});
    PluginContext ctx;
    ctx.config = &cfg;
    ctx.features = &features;
    PluginServices services;
    REQUIRE(services.provide(PacketParserPlugin::kNeeds, ctx));
    PacketParserPlugin p;
    auto st = p.init(ctx);
    REQUIRE_FALSE(st.has_value());
    CHECK(st.error().kind == Error::Kind::kUnsupported);
    CHECK(st.error().message.find(to_string(f)) != std::string::npos);
  }
}

TEST_CASE("ring buffers sized by CPU count: per CPU, at least the minimum, a power of two", "[loader]") {
  const uint64_t cpus = static_cast<uint64_t>(::sysconf(_SC_NPROCESSORS_ONLN));
  REQUIRE(cpus >= 1);
  for (uint64_t per_cpu : {uint64_t{4096}, uint64_t{128} << 10, uint64_t{512} << 10, uint64_t{3} << 20}) {
    for (uint64_t min : {uint64_t{0}, uint64_t{256} << 10, uint64_t{1} << 20}) {
      const uint64_t size = ring_size_by_cpus(per_cpu, min);
      INFO("per_cpu " << per_cpu << " min " << min << " -> " << size);
      CHECK((size & (size - 1)) == 0);
      CHECK(size >= per_cpu * cpus);
      CHECK(size >= min);
      CHECK(size >= static_cast<uint64_t>(::sysconf(_SC_PAGESIZE)));
      CHECK((size / 2 < std::max({per_cpu * cpus, min}) || size == static_cast<uint64_t>(::sysconf(_SC_PAGESIZE))));
      CHECK(validate_ring_buffer_size("ring", size).has_value());
    }
  }
  CHECK(ring_size_by_cpus(uint64_t{1} << 40, 0) == uint64_t{1} << 30);  // the kernel's limit
  CHECK(ring_size_or_auto(1 << 16, 1 << 20, 1 << 20) == 1 << 16);        // a configured size is kept
}

TEST_CASE("packetparser rejects bad config before touching the kernel", "[loader][packetparser]") {
  Config cfg;
  cfg.packet_parser_ring_buffer_size = 3 << 20;
  cfg.data_sampling_rate = 0;
  cfg.conntrack_report_interval = std::chrono::seconds(0);
  FakeFeatures features({});
  PluginContext ctx;
  ctx.config = &cfg;
  ctx.features = &features;
  PacketParserPlugin p;
  auto st = p.init(ctx);
  REQUIRE_FALSE(st.has_value());
  CHECK(st.error().kind == Error::Kind::kInvalidArgument);
  CHECK(st.error().message.find("packetParserRingBufferSize") != std::string::npos);
  CHECK(st.error().message.find("dataSamplingRate") != std::string::npos);
  CHECK(st.error().message.find("conntrackReportInterval") != std::string::npos);
  CHECK(features.probed.empty());
}

TEST_CASE("packetparser without init fails cleanly", "[loader][packetparser]") {
  PacketParserPlugin p;
  CHECK(p.name() == "packetparser");
  CHECK_FALSE(p.start().has_value());
  CHECK_FALSE(p.stats().has_value());
  CHECK_FALSE(p.sweep().has_value());
  std::vector<IpAddr> ips = {*IpAddr::parse("10.0.0.1")};
  CHECK_FALSE(p.set_ips_of_interest(ips).has_value());
  p.stop();
  auto any = make_packetparser_plugin();
  CHECK(any->name() == "packetparser");
}

TEST_CASE("stat names label bpf_events_total", "[loader]") {
  CHECK(std::string(retina_stat_name(RETINA_STAT_NOT_IP)) == "not_ip");
  CHECK(std::string(retina_stat_name(RETINA_STAT_REPORTS)) == "reports");
  CHECK(std::string(retina_stat_name(RETINA_STAT_MAX)) == "unknown");
}

TEST_CASE("attach constants match the kernel uapi", "[loader]") {
  CHECK(loader::tcx_attach_type(loader::TcDirection::kIngress) == 46);
  CHECK(loader::tcx_attach_type(loader::TcDirection::kEgress) == 47);
  CHECK(loader::kPacketParserTcSlot.priority != 0);
  CHECK(loader::kPacketParserTcSlot.handle != 0);
  CHECK(std::string(loader::to_string(loader::TcDirection::kEgress)) == "egress");
}

TEST_CASE("rtnetlink attributes parse by type and ignore what is out of range", "[loader][netlink]") {
  alignas(4) unsigned char buf[256] = {};
  auto* h = reinterpret_cast<nlmsghdr*>(buf);
  h->nlmsg_len = NLMSG_LENGTH(0);
  const char name[] = "eth0";
  uint32_t v = 42;
  REQUIRE(loader::append_rtattr(h, sizeof buf, 3, name, sizeof name));
  REQUIRE(loader::append_rtattr(h, sizeof buf, 7, &v, sizeof v));
  REQUIRE(loader::append_rtattr(h, sizeof buf, 200, &v, sizeof v));  // beyond the table
  CHECK_FALSE(loader::append_rtattr(h, sizeof buf, 1, buf, 300));     // does not fit
  const rtattr* tb[8];
  loader::parse_rtattrs(static_cast<const rtattr*>(NLMSG_DATA(h)), h->nlmsg_len - NLMSG_LENGTH(0), tb);
  CHECK(loader::rtattr_string(tb[3]) == "eth0");
  CHECK(loader::rtattr_u32(tb[7]) == 42);
  CHECK(tb[1] == nullptr);
  CHECK(loader::rtattr_u32(nullptr) == 0);
  CHECK(loader::rtattr_string(nullptr).empty());

  // A truncated attribute list ends parsing without reading past it.
  const rtattr* tb2[8];
  loader::parse_rtattrs(static_cast<const rtattr*>(NLMSG_DATA(h)), 6, tb2);
  for (auto* p : tb2) CHECK(p == nullptr);
}
