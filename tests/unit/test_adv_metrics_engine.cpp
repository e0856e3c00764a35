// The engine with the Kubernetes watcher and advanced metrics wired in: a
// fake API server feeds the cache, records from a fake plugin become adv_*
// series with pod labels, a MetricsConfiguration changes them live, and the
// cache keeps serving while the API server is down. /healthz shows it all.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "retina/abi/events.h"
#include "retina/api_server.hpp"
#include "retina/engine.hpp"
#include "retina/metrics/advanced.hpp"
#include "retina/metrics/registry.hpp"
#include "support/fake_apiserver.hpp"
#include "support/fake_plugin.hpp"
#include "support/prom_text.hpp"
#include "test_decoder_records.hpp"

using namespace std::chrono_literals;
using retina::Engine;
using retina::test::FakeApiServer;
using retina::test::FakePlugin;
namespace kj = retina::test::k8sjson;

namespace {

constexpr auto kWait = 20s;

bool eventually(const std::function<bool()>& pred, std::chrono::milliseconds limit = kWait) {
  return retina::test::wait_until(pred, limit);
}

// A kubeconfig file for a plain-HTTP server, removed on destruction.
struct Kubeconfig {
  explicit Kubeconfig(const std::string& server) {
    path = fmt::format("/tmp/retina-test-kubeconfig-{}-{}.yaml", ::getpid(), ++counter);
    std::ofstream(path) << fmt::format(R"(apiVersion: v1
kind: Config
current-context: fake
clusters:
- name: fake
  cluster: {{server: "{}"}}
contexts:
- name: fake
  context: {{cluster: fake, user: nobody}}
users:
- name: nobody
  user: {{}}
)",
                                       server);
  }
  ~Kubeconfig() { std::remove(path.c_str()); }
  std::string path;
  static inline int counter = 0;
};

kj::Pod web_pod(std::string name, std::string ip, std::string ns = "shop") {
  kj::Pod p;
  p.ns = std::move(ns);
  p.name = std::move(name);
  p.node = "node-1";
  p.ips = {std::move(ip)};
  p.labels = {{"app", "web"}, {"pod-template-hash", "5f7c9"}};
  p.owner_kind = "ReplicaSet";
  p.owner_name = "web-5f7c9";
  return p;
}

// A from-endpoint TCP report src -> dst: `packets` packets, 100 bytes each.
std::vector<std::byte> report(const char* src, const char* dst, uint32_t packets) {
  retina_packet_event ev = retina::testing::packet_event();
  ev.tuple = retina::testing::tcp_tuple(src, dst, 40000, 8080);
  ev.obs_point = RETINA_OBS_FROM_ENDPOINT;
  ev.tcp_flags = RETINA_TCP_ACK;
  ev.bytes = 100;
  ev.prev_packets = packets - 1;
  ev.prev_bytes = 100ull * (packets - 1);
  return retina::test::record_bytes(ev);
}

struct Setup {
  FakeApiServer server{FakeApiServer::Options{.tls = false}};
  Kubeconfig kubeconfig{server.url()};
  FakePlugin* plugin = nullptr;
  std::unique_ptr<Engine> engine;

  // without_configuration: advMetricsWithoutConfiguration (ours), adv_*
  // with the default labels before any MetricsConfiguration exists.
  explicit Setup(bool remote, bool without_configuration = true) {
    server.upsert("nodes", kj::node("node-1", {"192.168.1.10"}, "zone-a"));
    server.upsert("namespaces", kj::namespace_("shop", false));
    server.upsert("replicasets", kj::replicaset("shop", "web-5f7c9", "Deployment", "web"));
    server.upsert("pods", kj::pod(web_pod("web-5f7c9-aaaaa", "10.1.0.1")));
    server.upsert("pods", kj::pod(web_pod("web-5f7c9-bbbbb", "10.1.0.2")));
    kj::Pod elsewhere = web_pod("web-5f7c9-ccccc", "10.1.0.3");
    elsewhere.node = "node-2";
    server.upsert("pods", kj::pod(elsewhere));

    retina::Config c;
    c.enabled_plugins.clear();
    c.node_name = "node-1";
    c.kubeconfig = kubeconfig.path;  // enables Kubernetes
    c.enable_pod_level = true;
    c.remote_context = remote;
    c.adv_metrics_without_configuration = without_configuration;
    c.pod_forward_metrics = true;  // basic forward_* show when a report got through
    retina::EngineOptions o;
    o.features = std::make_unique<retina::test::AllFeatures>();
    plugin = new FakePlugin("fake");
    o.extra_plugins.emplace_back(plugin);
    auto e = Engine::create(std::move(c), std::move(o));
    REQUIRE(e);
    engine = std::move(*e);
    REQUIRE(engine->start());
    REQUIRE(eventually([&] { return engine->kubernetes_health().state == "synced"; }));
  }

  retina::test::PromText scrape() {
    auto p = retina::test::parse_prom_text(engine->metrics().expose());
    REQUIRE(p.error.empty());
    return p;
  }
  std::string health() {
    std::string out;
    retina::engine_backend(*engine).health_details(out);
    return out;
  }
};

const std::string kFwd = "networkobservability_adv_forward_count";

}  // namespace

TEST_CASE("engine: Kubernetes pods become adv_* labels, local context", "[adv][engine][k8s]") {
  Setup s(false);
  // Local context: only this node's pods are watched.
  CHECK(s.engine->cache().find(*retina::IpAddr::parse("10.1.0.1")));
  CHECK_FALSE(s.engine->cache().find(*retina::IpAddr::parse("10.1.0.3")));
  const auto h = s.engine->kubernetes_health();
  CHECK(h.context == "local");
  CHECK(h.server == s.server.url());
  CHECK(s.server.last_param("pods", false, "fieldSelector") == "spec.nodeName=node-1");

  s.plugin->source().push(report("10.1.0.1", "10.1.0.2", 7));
  REQUIRE(eventually([&] { return s.scrape().value(kFwd, {{"podname", "web-5f7c9-aaaaa"}}).has_value(); }));
  auto p = s.scrape();
  CHECK(p.value(kFwd, {{"direction", "egress"}, {"ip", "10.1.0.1"}, {"namespace", "shop"},
                       {"podname", "web-5f7c9-aaaaa"}, {"workload_kind", "Deployment"}, {"workload_name", "web"}}) == 7.0);
  CHECK(p.value("networkobservability_adv_forward_bytes", {{"podname", "web-5f7c9-aaaaa"}}) == 700.0);
  // The watcher's health metrics are exported too.
  CHECK(p.value("controlplane_networkobservability_k8s_watch_up", {{"resource", "pods"}}) == 1.0);

  const std::string health = s.health();
  CHECK_THAT(health, Catch::Contains(R"("kubernetes":{"state":"synced")"));
  CHECK_THAT(health, Catch::Contains(R"("resource":"pods","synced":true,"watch_up":true,"objects":2)"));
  CHECK_THAT(health, Catch::Contains(R"("advanced_metrics":{"enabled":true,"context":"local","configuration":"agent config")"));
}

TEST_CASE("engine: MetricsConfiguration applies live, the cache outlives the API server", "[adv][engine][k8s]") {
  Setup s(true);
  CHECK(s.engine->cache().find(*retina::IpAddr::parse("10.1.0.3")));  // remote: all pods
  s.plugin->source().push(report("10.1.0.1", "10.1.0.3", 3));
  REQUIRE(eventually([&] { return s.scrape().value(kFwd, {{"source_podname", "web-5f7c9-aaaaa"}}).has_value(); }));
  CHECK(s.scrape().value(kFwd, {{"source_podname", "web-5f7c9-aaaaa"}, {"destination_podname", "web-5f7c9-ccccc"},
                                {"destination_workload_name", "web"}}) == 3.0);
  const uint64_t gen = s.engine->advanced_metrics()->stats().generation;

  // Only forward, with pod names and ports.
  s.server.upsert("metricsconfigurations",
                  kj::metrics_configuration("retina", "2024-01-01T00:00:00Z",
                                            R"({"contextOptions":[{"metricName":"forward","sourceLabels":["podname"],"destinationLabels":["podname","port"]}]})"));
  REQUIRE(eventually([&] { return s.engine->advanced_metrics()->stats().generation > gen; }));
  s.plugin->source().push(report("10.1.0.1", "10.1.0.3", 4));
  REQUIRE(eventually([&] { return s.scrape().value(kFwd, {{"destination_port", "8080"}}).has_value(); }));
  auto p = s.scrape();
  CHECK(p.value(kFwd, {{"source_podname", "web-5f7c9-aaaaa"}, {"destination_podname", "web-5f7c9-ccccc"},
                       {"destination_port", "8080"}}) == 4.0);
  CHECK(p.family(kFwd)->samples.front().labels.size() == 4);
  CHECK(p.family("networkobservability_adv_drop_count") == nullptr);
  CHECK_THAT(s.health(), Catch::Contains(R"("configuration":"MetricsConfiguration/retina")"));

  // An invalid change is reported and the running configuration stays.
  s.server.upsert("metricsconfigurations", kj::metrics_configuration("retina", "2024-01-01T00:00:00Z",
                                                                     R"({"contextOptions":[{"metricName":"nope"}]})"));
  REQUIRE(eventually([&] { return s.health().find("unknown metric") != std::string::npos; }));
  CHECK_THAT(s.health(), Catch::Contains(R"("configuration":"MetricsConfiguration/retina")"));

  // The API server goes away: degraded, still healthy, the cache still serves.
  s.server.stop();
  REQUIRE(eventually([&] { return s.engine->kubernetes_health().state == "degraded"; }));
  CHECK(s.engine->cache().find(*retina::IpAddr::parse("10.1.0.1")));
  CHECK(retina::engine_backend(*s.engine).health_details);
  std::string details;
  CHECK(retina::engine_backend(*s.engine).health_details(details));  // not a failure
  s.plugin->source().push(report("10.1.0.1", "10.1.0.3", 5));
  REQUIRE(eventually([&] {
    return s.scrape().value(kFwd, {{"source_podname", "web-5f7c9-aaaaa"}, {"destination_port", "8080"}}) == 9.0;
  }));

  // Deleting the MetricsConfiguration (once the server is back) returns to the agent config.
  s.server.start();
  s.server.remove("metricsconfigurations", "", "retina");
  REQUIRE(eventually([&] { return s.health().find(R"("configuration":"agent config")") != std::string::npos; }, 60s));
}

TEST_CASE("engine: Retina's default: adv_* only once a MetricsConfiguration exists", "[adv][engine][k8s]") {
  Setup s(true, false);
  s.plugin->source().push(report("10.1.0.1", "10.1.0.3", 3));
  // The report reaches the pipeline (basic forward_count) but makes no adv series.
  REQUIRE(eventually([&] {
    const auto p = s.scrape();
    const auto* f = p.family("networkobservability_forward_count");
    double n = 0;
    if (f)
      for (const auto& x : f->samples) n += x.value;
    return n >= 3;
  }));
  s.engine->advanced_metrics()->maintain();
  CHECK(s.scrape().family(kFwd) == nullptr);
  const uint64_t gen = s.engine->advanced_metrics()->stats().generation;
  s.server.upsert("metricsconfigurations",
                  kj::metrics_configuration("retina", "2024-01-01T00:00:00Z",
                                            R"({"contextOptions":[{"metricName":"forward","sourceLabels":["podname"]}]})"));
  REQUIRE(eventually([&] { return s.engine->advanced_metrics()->stats().generation > gen; }));
  s.plugin->source().push(report("10.1.0.1", "10.1.0.3", 4));
  REQUIRE(eventually([&] { return s.scrape().value(kFwd, {{"source_podname", "web-5f7c9-aaaaa"}}) == 4.0; }));
  CHECK(s.scrape().value(kFwd, {{"direction", "EGRESS"}}) == 4.0);
}

TEST_CASE("engine: a kubeconfig that cannot be used fails the Kubernetes component only", "[adv][engine][k8s]") {
  retina::Config c;
  c.enabled_plugins.clear();
  c.node_name = "node-1";
  c.kubeconfig = "/nonexistent/kubeconfig";
  retina::EngineOptions o;
  o.features = std::make_unique<retina::test::AllFeatures>();
  o.extra_plugins.emplace_back(new FakePlugin("fake"));
  auto e = Engine::create(std::move(c), std::move(o));
  REQUIRE(e);
  REQUIRE((*e)->start());
  const auto h = (*e)->kubernetes_health();
  CHECK(h.state == "failed");
  CHECK_THAT(h.reason, Catch::Contains("/nonexistent/kubeconfig"));
  std::string out;
  CHECK_FALSE(retina::engine_backend(**e).health_details(out));
  CHECK_THAT(out, Catch::Contains(R"("advanced_metrics":{"enabled":false})"));
  CHECK((*e)->advanced_metrics() == nullptr);
}
