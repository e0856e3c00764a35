// The dns plugin without privileges: option checks, missing kernel
// features and cgroup directories come back as clear errors of the right
// kind, before anything is loaded; and the engine keeps running with the
// plugin disabled.
#include <catch2/catch.hpp>

#include <set>
#include <string>

#include "plugins/dns/dns.hpp"
#include "retina/engine.hpp"
#include "retina/features.hpp"
#include "support/fake_plugin.hpp"

using namespace retina;

namespace {

class MissingFeatures final : public FeatureDetector {
 public:
  explicit MissingFeatures(std::set<KernelFeature> missing) : missing_(std::move(missing)) {}
  Status probe(KernelFeature f) override {
    if (missing_.count(f)) return unexpected(Error::unsupported(std::string("fake kernel lacks ") + to_string(f)));
    return ok();
  }

 private:
  std::set<KernelFeature> missing_;
};

Error init_error(DnsOptions o, FeatureDetector& features) {
  DnsPlugin p(std::move(o));
  PluginContext ctx;
  ctx.features = &features;
  auto st = p.init(ctx);
  REQUIRE_FALSE(st);
  return st.error();
}

}  // namespace

TEST_CASE("dns plugin: names and factory", "[dns]") {
  auto p = make_builtin_plugin("dns");
  REQUIRE(p);
  CHECK(p->name() == "dns");
  CHECK(p->event_sources().empty());  // nothing before init
}

TEST_CASE("dns plugin: bad options are invalid, all at once", "[dns]") {
  test::AllFeatures all;
  DnsOptions o;
  o.ring_buffer_size = 3000;
  o.dedup_entries = 0;
  o.udp_pending_ttl = std::chrono::milliseconds(0);
  o.tcp_seen_ttl = std::chrono::milliseconds(-1);
  Error e = init_error(o, all);
  CHECK(e.kind == Error::Kind::kInvalidArgument);
  CHECK(e.message.find("ring buffer size 3000") != std::string::npos);
  CHECK(e.message.find("dedup entries") != std::string::npos);
  CHECK(e.message.find("UDP pending TTL") != std::string::npos);
  CHECK(e.message.find("TCP seen TTL") != std::string::npos);
}

TEST_CASE("dns plugin: a missing kernel feature disables it with the reason", "[dns]") {
  for (KernelFeature f : {KernelFeature::kCgroupSkb, KernelFeature::kRingBuf, KernelFeature::kBpfSyscall}) {
    MissingFeatures missing({f});
    Error e = init_error({}, missing);
    CHECK(e.kind == Error::Kind::kUnsupported);
    CHECK(e.message == std::string("dns: fake kernel lacks ") + to_string(f));
  }
}

TEST_CASE("dns plugin: a cgroup path that is no cgroup v2 directory is refused", "[dns]") {
  test::AllFeatures all;
  DnsOptions o;
  o.cgroup_path = "/tmp";
  Error e = init_error(o, all);
  CHECK(e.kind == Error::Kind::kInvalidArgument);
  CHECK(e.message == "dns: /tmp is not a cgroup v2 directory");
  CHECK_FALSE(is_cgroup2_dir("/nonexistent/retina"));
  CHECK_FALSE(is_cgroup2_dir("/proc"));
}

TEST_CASE("dns plugin: the engine runs on with dns and tcpretrans disabled", "[dns][tcpretrans]") {
  Config cfg;
  cfg.enabled_plugins = {"dns", "tcpretrans"};
  cfg.node_name = "test-node";
  EngineOptions o;
  o.features = std::make_unique<MissingFeatures>(
      std::set<KernelFeature>{KernelFeature::kCgroupSkb, KernelFeature::kTpBtf, KernelFeature::kRawTp});
  auto e = Engine::create(cfg, std::move(o));
  REQUIRE(e);
  REQUIRE((*e)->start());
  auto status = (*e)->plugin_status();
  REQUIRE(status.size() == 2);
  CHECK(status[0].name == "dns");
  CHECK(status[0].state == PluginState::kDisabled);
  CHECK(status[0].reason == "dns: fake kernel lacks cgroup_skb");
  CHECK(status[1].name == "tcpretrans");
  CHECK(status[1].state == PluginState::kDisabled);
  CHECK(status[1].reason ==
        "tcpretrans: no tracepoint program type: tp_btf: fake kernel lacks tp_btf; raw_tp: fake kernel lacks raw_tp");
  (*e)->stop();
}
