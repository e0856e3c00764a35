#include <catch2/catch.hpp>

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <fstream>
#include <functional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "retina/abi/events.h"
#include "retina/engine.hpp"
#include "retina/metrics/registry.hpp"
#include "support/fake_plugin.hpp"
#include "support/prom_text.hpp"
#include "test_decoder_records.hpp"

using namespace std::chrono_literals;
using retina::Engine;
using retina::EngineOptions;
using retina::Error;
using retina::PluginState;
using retina::Status;
using retina::test::CallLog;
using retina::test::FakePlugin;

namespace {

// Polls `pred` until it holds; fails the test after a generous deadline.
// Waiting on a condition, not a duration: nothing here asserts timing.
bool eventually(const std::function<bool()>& pred, std::chrono::milliseconds limit = 20s) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(1ms);
  }
  return pred();
}

// An egress TCP packet 10.0.0.1:40000 -> 10.0.0.2:80 of `bytes` bytes.
std::vector<std::byte> packet_record(uint32_t bytes = 100) {
  retina_packet_event ev = retina::testing::packet_event();
  ev.bytes = bytes;
  ev.obs_point = RETINA_OBS_TO_NETWORK;
  ev.tcp_flags = RETINA_TCP_ACK;
  return retina::test::record_bytes(ev);
}

retina::Config test_config() {
  retina::Config c;
  c.enabled_plugins.clear();
  c.node_name = "test-node";
  return c;
}

EngineOptions options_with(std::vector<std::unique_ptr<retina::Plugin>> plugins) {
  EngineOptions o;
  o.features = std::make_unique<retina::test::AllFeatures>();
  o.extra_plugins = std::move(plugins);
  return o;
}

std::unique_ptr<Engine> make_engine(std::vector<std::unique_ptr<retina::Plugin>> plugins,
                                    retina::Config cfg = test_config()) {
  auto e = Engine::create(std::move(cfg), options_with(std::move(plugins)));
  REQUIRE(e.has_value());
  return std::move(*e);
}

PluginState state_of(const Engine& e, std::string_view name) {
  for (const auto& s : e.plugin_status())
    if (s.name == name) return s.state;
  FAIL("no plugin " << name);
  return PluginState::kPending;
}

std::string reason_of(const Engine& e, std::string_view name) {
  for (const auto& s : e.plugin_status())
    if (s.name == name) return s.reason;
  return "<none>";
}

}  // namespace

TEST_CASE("engine: plugin lifecycle and idempotent stop", "[engine]") {
  CallLog calls;
  std::vector<std::unique_ptr<retina::Plugin>> plugins;
  auto* a = new FakePlugin("a", &calls);
  auto* b = new FakePlugin("b", &calls);
  plugins.emplace_back(a);
  plugins.emplace_back(b);
  auto engine = make_engine(std::move(plugins));

  CHECK_FALSE(engine->ready());
  CHECK(state_of(*engine, "a") == PluginState::kPending);
  REQUIRE(engine->start());
  CHECK(engine->ready());
  CHECK(a->ctx_complete);
  CHECK(state_of(*engine, "a") == PluginState::kRunning);
  CHECK(state_of(*engine, "b") == PluginState::kRunning);
  REQUIRE(engine->start());  // a second start is a no-op
  CHECK(engine->config().node_name == "test-node");

  engine->stop();
  CHECK_FALSE(engine->ready());
  CHECK(state_of(*engine, "a") == PluginState::kStopped);
  CHECK(calls.get() ==
        std::vector<std::string>{"init:a", "init:b", "start:a", "start:b", "stop:b", "stop:a"});
  engine->stop();
  engine->stop();
  CHECK(calls.get().size() == 6);
  auto again = engine->start();
  REQUIRE_FALSE(again);
  CHECK(again.error().message.find("after stop") != std::string::npos);
}

TEST_CASE("engine: disabled and failed plugins never stop the others", "[engine]") {
  CallLog calls;
  std::vector<std::unique_ptr<retina::Plugin>> plugins;
  FakePlugin::Behaviour unsupported;
  unsupported.init = [] { return Status(retina::unexpected(Error::unsupported("kernel lacks BTF"))); };
  FakePlugin::Behaviour broken;
  broken.init = [] { return Status(retina::unexpected(Error::system("bpf_prog_load(x)", EPERM))); };
  FakePlugin::Behaviour bad_start;
  bad_start.start = [] { return Status(retina::unexpected(Error::internal("attach went wrong"))); };
  FakePlugin::Behaviour throws;
  throws.init = []() -> Status { throw std::runtime_error("boom"); };
  plugins.emplace_back(new FakePlugin("unsupported", &calls, unsupported));
  plugins.emplace_back(new FakePlugin("broken", &calls, broken));
  plugins.emplace_back(new FakePlugin("badstart", &calls, bad_start));
  plugins.emplace_back(new FakePlugin("throws", &calls, throws));
  auto* good = new FakePlugin("good", &calls);
  plugins.emplace_back(good);
  auto engine = make_engine(std::move(plugins));

  REQUIRE(engine->start());
  CHECK(engine->ready());
  CHECK(state_of(*engine, "unsupported") == PluginState::kDisabled);
  CHECK(reason_of(*engine, "unsupported") == "kernel lacks BTF");
  CHECK(state_of(*engine, "broken") == PluginState::kFailed);
  CHECK(reason_of(*engine, "broken") == "bpf_prog_load(x): Operation not permitted (errno 1)");
  CHECK(state_of(*engine, "badstart") == PluginState::kFailed);
  CHECK(reason_of(*engine, "badstart") == "attach went wrong");
  CHECK(state_of(*engine, "throws") == PluginState::kFailed);
  CHECK(reason_of(*engine, "throws") == "init threw: boom");
  CHECK(state_of(*engine, "good") == PluginState::kRunning);
  CHECK(reason_of(*engine, "good").empty());

  // A plugin whose start failed is stopped right away (it may have attached
  // something); plugins that never started are not stopped again.
  const auto log = calls.get();
  CHECK(std::count(log.begin(), log.end(), "stop:badstart") == 1);

  // States are exported as a gauge.
  const auto prom = retina::test::parse_prom_text(engine->metrics().expose());
  REQUIRE(prom.error.empty());
  const std::string_view state = "controlplane_networkobservability_plugin_state";
  CHECK(prom.value(state, {{"plugin", "good"}, {"state", "running"}}) == 1);
  CHECK(prom.value(state, {{"plugin", "good"}, {"state", "failed"}}) == 0);
  CHECK(prom.value(state, {{"plugin", "broken"}, {"state", "failed"}}) == 1);
  CHECK(prom.value(state, {{"plugin", "unsupported"}, {"state", "disabled"}}) == 1);

  engine->stop();
  const auto after = calls.get();
  CHECK(std::count(after.begin(), after.end(), "stop:good") == 1);
  CHECK(std::count(after.begin(), after.end(), "stop:broken") == 0);
  CHECK(std::count(after.begin(), after.end(), "stop:badstart") == 1);
}

TEST_CASE("engine: nothing running means not ready", "[engine]") {
  CallLog calls;
  std::vector<std::unique_ptr<retina::Plugin>> plugins;
  FakePlugin::Behaviour unsupported;
  unsupported.init = [] { return Status(retina::unexpected(Error::unsupported("no"))); };
  plugins.emplace_back(new FakePlugin("only", &calls, unsupported));
  auto engine = make_engine(std::move(plugins));
  REQUIRE(engine->start());
  CHECK_FALSE(engine->ready());
}

TEST_CASE("engine: records reach the pipeline and the metrics", "[engine]") {
  CallLog calls;
  std::vector<std::unique_ptr<retina::Plugin>> plugins;
  auto* pollable = new FakePlugin("pollable", &calls);
  FakePlugin::Behaviour timer_only;
  timer_only.pollable = false;  // no fd: drained by the idle timer
  auto* quiet = new FakePlugin("quiet", &calls, timer_only);
  plugins.emplace_back(pollable);
  plugins.emplace_back(quiet);
  auto cfg = test_config();
  cfg.pod_forward_metrics = true;  // forward_* from the (fake) packetparser records
  auto engine = make_engine(std::move(plugins), cfg);
  REQUIRE(engine->start());

  constexpr int kRecords = 10000;  // more than one drain batch
  for (int i = 0; i < kRecords; ++i) pollable->source().push(packet_record(100));
  for (int i = 0; i < 5; ++i) quiet->source().push(packet_record(1000));
  REQUIRE(eventually([&] { return engine->pipeline().stats().records == kRecords + 5; }));
  CHECK(engine->pipeline().stats().decoded == kRecords + 5);
  CHECK(pollable->source().drained() == kRecords);
  CHECK(quiet->source().drained() == 5);

  const auto prom = retina::test::parse_prom_text(engine->metrics().expose());
  REQUIRE(prom.error.empty());
  CHECK(prom.value("networkobservability_forward_count", {{"direction", "egress"}}) == 10005);
  CHECK(prom.value("networkobservability_forward_bytes", {{"direction", "egress"}}) == 1005000);
  engine->stop();
}

TEST_CASE("engine: Retina's default leaves forward_* to packetforward, process_* metrics", "[engine]") {
  CallLog calls;
  std::vector<std::unique_ptr<retina::Plugin>> plugins;
  auto* pollable = new FakePlugin("pollable", &calls);
  plugins.emplace_back(pollable);
  auto engine = make_engine(std::move(plugins));
  REQUIRE(engine->start());
  for (int i = 0; i < 10; ++i) pollable->source().push(packet_record(100));
  REQUIRE(eventually([&] { return engine->pipeline().stats().decoded == 10; }));
  const auto prom = retina::test::parse_prom_text(engine->metrics().expose());
  REQUIRE(prom.error.empty());
  // Pod traffic is not Retina's forward_count (the node NIC totals are).
  CHECK(prom.family("networkobservability_forward_count") == nullptr);
  CHECK(prom.value("process_cpu_seconds_total").value_or(-1) >= 0);
  CHECK(prom.value("process_resident_memory_bytes").value_or(0) > 0);
  CHECK(prom.value("process_virtual_memory_bytes").value_or(0) > 0);
  CHECK(prom.value("process_open_fds").value_or(0) >= 3);
  CHECK(prom.value("process_max_fds").value_or(0) >= prom.value("process_open_fds").value_or(0));
  const double start = prom.value("process_start_time_seconds").value_or(0);
  const double now = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  CHECK(start > now - 86400);  // this test binary started today, not at boot or epoch
  CHECK(start <= now + 1);
  engine->stop();
}

TEST_CASE("engine: records flushed by a stopping plugin are delivered", "[engine]") {
  CallLog calls;
  std::vector<std::unique_ptr<retina::Plugin>> plugins;
  FakePlugin::Behaviour flush;
  flush.records_on_stop = 9000;
  flush.record_on_stop = [] { return packet_record(); };
  plugins.emplace_back(new FakePlugin("flushes", &calls, flush));
  auto engine = make_engine(std::move(plugins));
  REQUIRE(engine->start());
  engine->stop();
  // stop() returns after the final drain: the count is exact right away.
  CHECK(engine->pipeline().stats().records == 9000);
}

TEST_CASE("engine: reconcile runs every metrics interval and failures are counted", "[engine]") {
  CallLog calls;
  std::vector<std::unique_ptr<retina::Plugin>> plugins;
  FakePlugin::Behaviour failing;
  failing.reconcile = [] { return Status(retina::unexpected(Error::internal("lost an attachment"))); };
  auto* bad = new FakePlugin("flaky", &calls, failing);
  auto* fine = new FakePlugin("steady", &calls);
  plugins.emplace_back(bad);
  plugins.emplace_back(fine);
  auto cfg = test_config();
  cfg.metrics_interval = 100ms;
  auto engine = make_engine(std::move(plugins), cfg);
  REQUIRE(engine->start());
  REQUIRE(eventually([&] { return bad->reconciles.load() >= 2 && fine->reconciles.load() >= 2; }));
  const auto prom = retina::test::parse_prom_text(engine->metrics().expose());
  REQUIRE(prom.error.empty());
  const std::string_view failures = "controlplane_networkobservability_plugin_manager_failed_to_reconcile";
  CHECK(prom.value(failures, {{"reason", "flaky"}}) >= 1);
  CHECK_FALSE(prom.value(failures, {{"reason", "steady"}}).has_value());
  engine->stop();
}

TEST_CASE("engine: create validates the config and names duplicates once", "[engine]") {
  auto cfg = test_config();
  cfg.data_sampling_rate = 0;
  auto e = Engine::create(cfg, options_with({}));
  REQUIRE_FALSE(e);
  CHECK(e.error().kind == Error::Kind::kInvalidArgument);
  CHECK(e.error().message.find("dataSamplingRate") != std::string::npos);

  CallLog calls;
  std::vector<std::unique_ptr<retina::Plugin>> plugins;
  plugins.emplace_back(new FakePlugin("same", &calls));
  plugins.emplace_back(new FakePlugin("same", &calls));
  auto engine = make_engine(std::move(plugins));
  CHECK(engine->plugin_status().size() == 1);
  REQUIRE(engine->start());
  engine->stop();
  CHECK(calls.get() == std::vector<std::string>{"init:same", "start:same", "stop:same"});
}

TEST_CASE("engine: destruction without stop() stops everything", "[engine]") {
  CallLog calls;
  {
    std::vector<std::unique_ptr<retina::Plugin>> plugins;
    plugins.emplace_back(new FakePlugin("x", &calls));
    auto engine = make_engine(std::move(plugins));
    REQUIRE(engine->start());
  }
  CHECK(calls.get() == std::vector<std::string>{"init:x", "start:x", "stop:x"});
}

TEST_CASE("engine: endpointsFile fills the IP cache and follows edits", "[engine]") {
  char tmpl[] = "/tmp/retina-engine-endpoints-XXXXXX";
  const int fd = ::mkstemp(tmpl);
  REQUIRE(fd >= 0);
  ::close(fd);
  const std::string path = tmpl;
  {
    std::ofstream out(path);
    out << "endpoints:\n  - {kind: pod, namespace: shop, name: web-0, ips: [10.0.0.1]}\n";
  }
  CallLog calls;
  std::vector<std::unique_ptr<retina::Plugin>> plugins;
  plugins.emplace_back(new FakePlugin("x", &calls));
  auto cfg = test_config();
  cfg.endpoints_file = path;
  auto engine = make_engine(std::move(plugins), cfg);
  REQUIRE(engine->start());
  const auto ip = *retina::IpAddr::parse("10.0.0.1");
  REQUIRE(eventually([&] { return engine->cache().find(ip) != nullptr; }));
  CHECK(engine->cache().find(ip)->name == "web-0");
  CHECK(engine->cache().find(ip)->namespace_ == "shop");

  // Replaced the way editors and ConfigMap volumes do: a new file renamed over.
  {
    std::ofstream out(path + ".new");
    out << "endpoints:\n  - {kind: pod, namespace: shop, name: web-1, ips: [10.0.0.1]}\n";
  }
  REQUIRE(::rename((path + ".new").c_str(), path.c_str()) == 0);
  REQUIRE(eventually([&] {
    auto ep = engine->cache().find(ip);
    return ep && ep->name == "web-1";
  }));
  engine->stop();
  ::unlink(path.c_str());
}
