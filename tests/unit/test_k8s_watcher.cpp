// The watcher end to end against the fake API server (HTTPS, real list and
// chunked watch streams): the IpCache follows the cluster through events,
// relists, dropped connections, malformed lines and an unreachable server.
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <mutex>
#include <optional>
#include <thread>
#include <string>
#include <vector>

#include <absl/strings/escaping.h>
#include <fmt/format.h>
#include <catch2/catch.hpp>

#include "retina/ip_cache.hpp"
#include "retina/k8s/watcher.hpp"
#include "retina/metrics/registry.hpp"
#include "support/fake_apiserver.hpp"

using namespace retina;
using namespace std::chrono_literals;
using retina::test::FakeApiServer;
using retina::test::GoneMode;
using retina::test::wait_until;
namespace kj = retina::test::k8sjson;

namespace {

constexpr auto kWait = std::chrono::seconds(15);

IpAddr ip(const char* s) { return *IpAddr::parse(s); }

kj::Pod web_pod(std::string name, std::string ip_text, std::string node = "node-a") {
  kj::Pod p;
  p.ns = "shop";
  p.name = std::move(name);
  p.node = std::move(node);
  p.ips = {std::move(ip_text)};
  p.labels = {{"app", "web"}, {"pod-template-hash", "5f7c9"}};
  p.owner_kind = "ReplicaSet";
  p.owner_name = "web-5f7c9";
  return p;
}

// The sample value of `series` (name{labels}) in an exposition, if present.
std::optional<double> sample(const std::string& text, const std::string& series) {
  size_t at = 0;
  while ((at = text.find(series + " ", at)) != std::string::npos) {
    if (at == 0 || text[at - 1] == '\n') return std::strtod(text.c_str() + at + series.size() + 1, nullptr);
    at += series.size();
  }
  return std::nullopt;
}

struct Harness {
  explicit Harness(FakeApiServer::Options o = {}) : server(std::move(o)) {}

  k8s::WatcherOptions options() const {
    k8s::WatcherOptions w;
    w.client.server = server.url();
    w.client.ca_pem = server.pki().ca_pem;
    w.remote_context = true;
    w.node_name = "node-a";
    w.delete_grace = 0s;
    w.backoff_initial = 10ms;
    w.backoff_max = 100ms;
    w.backoff_reset = 1s;
    w.connect_timeout = 2s;
    w.list_timeout = 5s;
    w.crd_retry_interval = 100ms;
    w.expire_interval = 10ms;
    return w;
  }

  Result<std::unique_ptr<k8s::Watcher>> make(k8s::WatcherOptions o) {
    return k8s::Watcher::create(std::move(o), cache, &registry);
  }

  void start(k8s::WatcherOptions o) {
    auto w = make(std::move(o));
    REQUIRE(w);
    watcher = std::move(*w);
    REQUIRE(watcher->start());
    REQUIRE(watcher->wait_synced(kWait));
  }
  void start() { start(options()); }

  // Waits until every watch stream is open, so later changes arrive as events.
  void wait_watching() {
    REQUIRE(wait_until(
        [&] {
          for (const auto& s : watcher->status()) {
            if (s.enabled && s.synced && s.resource != k8s::Resource::kMetricsConfigurations && !s.watch_up) return false;
          }
          return true;
        },
        kWait));
  }

  k8s::ResourceStatus status(k8s::Resource r) const {
    for (const auto& s : watcher->status()) {
      if (s.resource == r) return s;
    }
    FAIL("no status");
    return {};
  }

  std::optional<double> metric(const std::string& series) const { return sample(registry.expose(), series); }

  bool resolves(const char* addr, const std::string& name) const {
    auto ep = cache.find(ip(addr));
    return ep && ep->name == name;
  }

  FakeApiServer server;
  IpCache cache;
  metrics::Registry registry;
  std::unique_ptr<k8s::Watcher> watcher;
};

}  // namespace

TEST_CASE("k8s watcher: follows pods, services, nodes, namespaces and replica sets over HTTPS", "[k8s][watcher]") {
  Harness h;
  h.server.upsert("nodes", kj::node("node-a", {"192.168.1.10"}, "zone-a"));
  h.server.upsert("namespaces", kj::namespace_("shop", false));
  h.server.upsert("replicasets", kj::replicaset("shop", "web-5f7c9", "Deployment", "web"));
  h.server.upsert("services", kj::service("shop", "web", {"10.96.0.10"}, {{"app", "web"}}));
  h.server.upsert("pods", kj::pod(web_pod("web-5f7c9-aaaaa", "10.1.0.1")));
  h.start();

  auto ep = h.cache.find(ip("10.1.0.1"));
  REQUIRE(ep);
  CHECK(ep->kind == EndpointKind::kPod);
  CHECK(ep->namespace_ == "shop");
  CHECK(ep->pod_name() == "web-5f7c9-aaaaa");
  CHECK(ep->labels == std::vector<std::string>{"app=web", "pod-template-hash=5f7c9"});
  REQUIRE(ep->workload());
  CHECK(ep->workload()->kind == "Deployment");
  CHECK(ep->workload()->name == "web");
  CHECK(ep->node_name == "node-a");
  CHECK(ep->zone == "zone-a");
  CHECK(ep->service == "web");
  CHECK_FALSE(ep->observe);
  CHECK(h.cache.find(ip("10.96.0.10"))->kind == EndpointKind::kService);
  CHECK(h.cache.find(ip("192.168.1.10"))->kind == EndpointKind::kNode);
  h.wait_watching();

  // Watch events: a new pod, a namespace annotation, a pod deletion.
  kj::Pod p2 = web_pod("web-5f7c9-bbbbb", "10.1.0.2");
  p2.ips.push_back("fd00:1::2");
  h.server.upsert("pods", kj::pod(p2));
  REQUIRE(wait_until([&] { return h.resolves("fd00:1::2", "web-5f7c9-bbbbb"); }, kWait));
  CHECK(h.cache.find(ip("10.1.0.2"))->workload()->name == "web");

  h.server.upsert("namespaces", kj::namespace_("shop", true));
  REQUIRE(wait_until([&] { auto e = h.cache.find(ip("10.1.0.1")); return e && e->observe; }, kWait));
  CHECK(h.cache.find(ip("10.1.0.2"))->observe);

  h.server.remove("pods", "shop", "web-5f7c9-aaaaa");
  REQUIRE(wait_until([&] { return !h.cache.find(ip("10.1.0.1")); }, kWait));

  // Pod-level annotation, label change, and moving to a node in another zone.
  h.server.upsert("nodes", kj::node("node-b", {"192.168.1.11"}, "zone-b"));
  // Nodes and pods arrive on different streams: let the node land first.
  REQUIRE(wait_until([&] { return h.cache.find(ip("192.168.1.11")) != nullptr; }, kWait));
  kj::Pod p3 = web_pod("solo", "10.1.0.3", "node-b");
  p3.labels = {{"app", "solo"}};
  p3.owner_kind = "StatefulSet";
  p3.owner_name = "solo";
  p3.annotations = {{"retina.sh", "observe"}};
  h.server.upsert("pods", kj::pod(p3));
  REQUIRE(wait_until([&] { return h.resolves("10.1.0.3", "solo"); }, kWait));
  ep = h.cache.find(ip("10.1.0.3"));
  CHECK(ep->zone == "zone-b");
  CHECK(ep->workload()->kind == "StatefulSet");
  CHECK(ep->service.empty());
  CHECK(ep->observe);

  CHECK(h.status(k8s::Resource::kPods).resource_version == std::to_string(h.server.resource_version()));
  CHECK(h.server.list_requests("pods") == 1);
  CHECK(h.server.last_param("pods", true, "allowWatchBookmarks") == "true");
  CHECK_FALSE(h.server.last_param("pods", true, "timeoutSeconds").empty());
  CHECK(h.server.last_param("pods", true, "fieldSelector").empty());  // remote context
}

TEST_CASE("k8s watcher: status, bookmarks and health metrics", "[k8s][watcher]") {
  Harness h;
  h.server.upsert("pods", kj::pod(web_pod("a", "10.1.0.1")));
  h.start();
  h.wait_watching();
  h.server.upsert("services", kj::service("x", "y", {"10.96.1.1"}, {}));  // moves the global version on
  REQUIRE(wait_until([&] { return h.cache.find(ip("10.96.1.1")) != nullptr; }, kWait));
  const std::string rv = std::to_string(h.server.resource_version());
  h.server.bookmark("pods");
  REQUIRE(wait_until([&] { return h.status(k8s::Resource::kPods).resource_version == rv; }, kWait));

  auto st = h.status(k8s::Resource::kPods);
  CHECK(st.enabled);
  CHECK(st.synced);
  CHECK(st.watch_up);
  CHECK(st.objects == 1);
  CHECK(st.last_error.empty());
  CHECK(st.last_sync.time_since_epoch().count() > 0);

  const std::string text = h.registry.expose();
  INFO(text);
  CHECK(sample(text, R"(controlplane_networkobservability_k8s_watch_up{resource="pods"})") == 1.0);
  CHECK(sample(text, R"(controlplane_networkobservability_k8s_objects{resource="pods"})") == 1.0);
  CHECK(sample(text, R"(controlplane_networkobservability_k8s_relists_total{resource="pods"})") == 0.0);
  CHECK(sample(text, R"(controlplane_networkobservability_k8s_events_total{resource="pods",type="BOOKMARK"})") == 1.0);
  CHECK(sample(text, R"(controlplane_networkobservability_k8s_events_total{resource="services",type="ADDED"})") == 1.0);
  CHECK(sample(text, R"(controlplane_networkobservability_k8s_last_sync_timestamp_seconds{resource="nodes"})") > 1.6e9);
  CHECK(text.find("# TYPE controlplane_networkobservability_k8s_watch_errors_total counter") != std::string::npos);
  CHECK(text.find("# TYPE controlplane_networkobservability_k8s_watch_up gauge") != std::string::npos);

  h.watcher->stop();
  CHECK_FALSE(h.status(k8s::Resource::kPods).watch_up);
  // The cache keeps what the watcher put there.
  CHECK(h.resolves("10.1.0.1", "a"));
}

TEST_CASE("k8s watcher: 410 Gone relists, as an ERROR event or an HTTP status", "[k8s][watcher]") {
  const GoneMode mode = GENERATE(GoneMode::kErrorEvent, GoneMode::kHttpStatus);
  Harness h(FakeApiServer::Options{.gone_mode = mode});
  h.server.upsert("pods", kj::pod(web_pod("a", "10.1.0.1")));
  h.start();
  h.wait_watching();
  const uint64_t updates_before = h.cache.stats().updates;

  h.server.expire("pods");
  h.server.upsert("pods", kj::pod(web_pod("b", "10.1.0.2")));
  REQUIRE(wait_until([&] { return h.server.list_requests("pods") == 2; }, kWait));
  REQUIRE(wait_until([&] { return h.resolves("10.1.0.2", "b"); }, kWait));
  CHECK(h.resolves("10.1.0.1", "a"));
  CHECK(h.cache.stats().updates > updates_before);
  REQUIRE(wait_until([&] { return h.metric(R"(controlplane_networkobservability_k8s_relists_total{resource="pods"})") == 1.0; }, kWait));
  CHECK(h.metric(R"(controlplane_networkobservability_k8s_watch_errors_total{resource="pods",reason="gone"})") >= 1.0);
  CHECK(h.server.list_requests("services") == 1);

  // And it keeps following after the relist.
  h.wait_watching();
  h.server.remove("pods", "shop", "a");
  REQUIRE(wait_until([&] { return !h.cache.find(ip("10.1.0.1")); }, kWait));
}

TEST_CASE("k8s watcher: a dropped stream resumes from the last resourceVersion", "[k8s][watcher]") {
  Harness h;
  h.server.upsert("pods", kj::pod(web_pod("a", "10.1.0.1")));
  h.start();
  h.wait_watching();
  const size_t watches = h.server.watch_requests("pods");
  h.server.upsert("pods", kj::pod(web_pod("b", "10.1.0.2")));
  REQUIRE(wait_until([&] { return h.resolves("10.1.0.2", "b"); }, kWait));
  const std::string rv = h.status(k8s::Resource::kPods).resource_version;

  h.server.drop_watches("pods");
  REQUIRE(wait_until([&] { return h.server.watch_requests("pods") > watches; }, kWait));
  CHECK(h.server.last_param("pods", true, "resourceVersion") == rv);
  h.server.upsert("pods", kj::pod(web_pod("c", "10.1.0.3")));
  REQUIRE(wait_until([&] { return h.resolves("10.1.0.3", "c"); }, kWait));
  CHECK(h.server.list_requests("pods") == 1);
  CHECK(h.metric(R"(controlplane_networkobservability_k8s_watch_errors_total{resource="pods",reason="stream"})") >= 1.0);
}

TEST_CASE("k8s watcher: split lines are reassembled, malformed lines are counted and relisted", "[k8s][watcher]") {
  Harness h;
  h.start();
  h.wait_watching();
  const std::string line =
      "{\"type\":\"ADDED\",\"object\":" +
      std::string(R"({"metadata":{"name":"split","namespace":"shop","resourceVersion":"5000"},"spec":{"nodeName":"node-a"},"status":{"podIP":"10.1.0.9"}})") +
      "}\n";
  // Two writes on the wire: the first ends inside the object.
  h.server.send_raw("pods", line.substr(0, 37));
  REQUIRE(h.server.wait_drained("pods", kWait));
  h.server.send_raw("pods", line.substr(37));
  REQUIRE(wait_until([&] { return h.resolves("10.1.0.9", "split"); }, kWait));
  CHECK(h.status(k8s::Resource::kPods).resource_version == "5000");

  h.server.send_raw("pods", "{\"type\":\"ADDED\",\"object\":{\"metadata\":\n");
  REQUIRE(wait_until([&] { return h.server.list_requests("pods") == 2; }, kWait));
  CHECK(h.metric(R"(controlplane_networkobservability_k8s_watch_errors_total{resource="pods",reason="decode"})") == 1.0);
  // The relist replaced the pods with the server's view (which never had "split").
  REQUIRE(wait_until([&] { return !h.cache.find(ip("10.1.0.9")); }, kWait));
  h.wait_watching();
  h.server.upsert("pods", kj::pod(web_pod("after", "10.1.0.10")));
  REQUIRE(wait_until([&] { return h.resolves("10.1.0.10", "after"); }, kWait));
}

TEST_CASE("k8s watcher: the cache is served while the API server is down", "[k8s][watcher]") {
  Harness h;
  h.server.upsert("pods", kj::pod(web_pod("a", "10.1.0.1")));
  h.server.upsert("nodes", kj::node("node-a", {"192.168.1.10"}, "z"));
  h.start();
  h.wait_watching();

  h.server.stop();
  REQUIRE(wait_until([&] { return !h.status(k8s::Resource::kPods).watch_up; }, kWait));
  REQUIRE(wait_until([&] { return h.metric(R"(controlplane_networkobservability_k8s_watch_errors_total{resource="pods",reason="connect"})") >= 2.0; }, kWait));
  CHECK(h.resolves("10.1.0.1", "a"));
  CHECK(h.resolves("192.168.1.10", "node-a"));
  CHECK(h.metric(R"(controlplane_networkobservability_k8s_watch_up{resource="pods"})") == 0.0);
  CHECK_FALSE(h.status(k8s::Resource::kPods).last_error.empty());

  h.server.start();
  h.wait_watching();
  h.server.upsert("pods", kj::pod(web_pod("b", "10.1.0.2")));
  REQUIRE(wait_until([&] { return h.resolves("10.1.0.2", "b"); }, kWait));
  CHECK(h.resolves("10.1.0.1", "a"));
  CHECK(h.server.list_requests("pods") == 1);  // resumed, not relisted
}

TEST_CASE("k8s watcher: deleted pods linger for the grace period, a reused IP moves at once", "[k8s][watcher]") {
  Harness h;
  auto o = h.options();
  o.delete_grace = 2s;
  h.server.upsert("pods", kj::pod(web_pod("old", "10.1.0.1")));
  h.server.upsert("pods", kj::pod(web_pod("other", "10.1.0.5")));
  h.start(o);
  h.wait_watching();

  h.server.remove("pods", "shop", "other");
  REQUIRE(wait_until([&] { return h.status(k8s::Resource::kPods).objects == 1; }, kWait));
  CHECK(h.resolves("10.1.0.5", "other"));  // lingering
  CHECK(h.cache.stats().lingering == 1);
  REQUIRE(wait_until([&] { return !h.cache.find(ip("10.1.0.5")); }, kWait));

  // Terminal pods count as deleted; their IP goes to the next pod at once.
  kj::Pod done = web_pod("old", "10.1.0.1");
  done.phase = "Succeeded";
  h.server.upsert("pods", kj::pod(done));
  REQUIRE(wait_until([&] { return h.status(k8s::Resource::kPods).objects == 0; }, kWait));
  CHECK(h.resolves("10.1.0.1", "old"));
  h.server.upsert("pods", kj::pod(web_pod("new", "10.1.0.1")));
  REQUIRE(wait_until([&] { return h.status(k8s::Resource::kPods).objects == 1; }, kWait));
  CHECK(h.resolves("10.1.0.1", "new"));
}

TEST_CASE("k8s watcher: local context watches only this node's pods, host-network pods are skipped", "[k8s][watcher]") {
  Harness h;
  h.server.upsert("pods", kj::pod(web_pod("mine", "10.1.0.1", "node-a")));
  h.server.upsert("pods", kj::pod(web_pod("theirs", "10.2.0.1", "node-b")));
  kj::Pod hostnet = web_pod("kube-proxy", "192.168.1.10", "node-a");
  hostnet.host_network = true;
  h.server.upsert("pods", kj::pod(hostnet));
  auto o = h.options();
  o.remote_context = false;
  o.node_name = "node-a";
  h.start(o);
  CHECK(h.resolves("10.1.0.1", "mine"));
  CHECK_FALSE(h.cache.find(ip("10.2.0.1")));
  CHECK_FALSE(h.cache.find(ip("192.168.1.10")));
  CHECK(h.server.last_param("pods", false, "fieldSelector") == "spec.nodeName=node-a");
  h.wait_watching();
  CHECK(h.server.last_param("pods", true, "fieldSelector") == "spec.nodeName=node-a");
  h.server.upsert("pods", kj::pod(web_pod("theirs-2", "10.2.0.2", "node-b")));
  h.server.upsert("pods", kj::pod(web_pod("mine-2", "10.1.0.2", "node-a")));
  REQUIRE(wait_until([&] { return h.resolves("10.1.0.2", "mine-2"); }, kWait));
  CHECK_FALSE(h.cache.find(ip("10.2.0.2")));
}

TEST_CASE("k8s watcher: LIST is paginated with limit and continue", "[k8s][watcher]") {
  Harness h;
  for (int i = 0; i < 7; ++i) h.server.upsert("pods", kj::pod(web_pod(fmt::format("p{}", i), fmt::format("10.1.0.{}", i + 1))));
  auto o = h.options();
  o.page_size = 3;
  h.start(o);
  CHECK(h.server.page_requests("pods") == 3);
  CHECK(h.server.list_requests("pods") == 1);
  CHECK(h.server.last_param("pods", false, "limit") == "3");
  for (int i = 0; i < 7; ++i) CHECK(h.resolves(fmt::format("10.1.0.{}", i + 1).c_str(), fmt::format("p{}", i)));
  CHECK(h.status(k8s::Resource::kPods).objects == 7);
}

TEST_CASE("k8s watcher: bearer token is required, re-read from its file when it rotates", "[k8s][watcher]") {
  Harness h(FakeApiServer::Options{.token = "first-token"});
  h.server.upsert("pods", kj::pod(web_pod("a", "10.1.0.1")));

  SECTION("a wrong token is refused with 401 and reported") {
    auto o = h.options();
    o.client.token = "wrong";
    auto w = h.make(o);
    REQUIRE(w);
    h.watcher = std::move(*w);
    REQUIRE(h.watcher->start());
    REQUIRE(wait_until(
        [&] { return h.status(k8s::Resource::kPods).last_error.find("unauthorized") != std::string::npos; }, kWait));
    CHECK(h.server.unauthorized_requests() >= 1);
    CHECK_FALSE(h.watcher->wait_synced(10ms));
    CHECK(h.metric(R"(controlplane_networkobservability_k8s_watch_errors_total{resource="pods",reason="unauthorized"})") >= 1.0);
    CHECK_FALSE(h.cache.find(ip("10.1.0.1")));
  }
  SECTION("a token file is re-read after a 401") {
    const std::string token_file = h.server.pki().dir + "/token";
    std::ofstream(token_file) << "first-token\n";
    auto o = h.options();
    o.client.token_file = token_file;
    o.token_reload_interval = std::chrono::hours(1);  // only the 401 triggers a reload here
    h.start(o);
    h.wait_watching();
    CHECK(h.resolves("10.1.0.1", "a"));

    std::ofstream(token_file) << "second-token\n";
    h.server.set_token("second-token");
    h.server.drop_watches("pods");
    h.server.upsert("pods", kj::pod(web_pod("b", "10.1.0.2")));
    REQUIRE(wait_until([&] { return h.resolves("10.1.0.2", "b"); }, kWait));
    CHECK(h.server.unauthorized_requests() >= 1);
  }
}

TEST_CASE("k8s watcher: client certificates from a kubeconfig, and plain HTTP", "[k8s][watcher]") {
  SECTION("mutual TLS") {
    Harness h(FakeApiServer::Options{.require_client_cert = true});
    h.server.upsert("pods", kj::pod(web_pod("a", "10.1.0.1")));
    const std::string kubeconfig = fmt::format(R"(apiVersion: v1
kind: Config
current-context: test
clusters:
- name: fake
  cluster:
    server: {}
    certificate-authority-data: {}
users:
- name: admin
  user:
    client-certificate-data: {}
    client-key-data: {}
contexts:
- name: test
  context: {{cluster: fake, user: admin, namespace: shop}}
)",
                                               h.server.url(), absl::Base64Escape(h.server.pki().ca_pem),
                                               absl::Base64Escape(h.server.pki().client_cert_pem),
                                               absl::Base64Escape(h.server.pki().client_key_pem));
    auto client = k8s::parse_kubeconfig(kubeconfig, "/");
    REQUIRE(client);
    auto o = h.options();
    o.client = *client;
    h.start(o);
    CHECK(h.resolves("10.1.0.1", "a"));

    // Without the client certificate the handshake fails.
    auto o2 = h.options();
    IpCache other;
    auto w = k8s::Watcher::create(o2, other, nullptr);
    REQUIRE(w);
    REQUIRE((*w)->start());
    CHECK_FALSE((*w)->wait_synced(300ms));
    CHECK_FALSE(other.find(ip("10.1.0.1")));
  }
  SECTION("http:// as behind kubectl proxy") {
    Harness h(FakeApiServer::Options{.tls = false});
    h.server.upsert("pods", kj::pod(web_pod("a", "10.1.0.1")));
    auto o = h.options();
    o.client.ca_pem.clear();
    h.start(o);
    CHECK(h.resolves("10.1.0.1", "a"));
  }
  SECTION("an untrusted server certificate is refused") {
    Harness h;
    auto o = h.options();
    o.client.ca_pem = retina::test::TestPki().ca_pem;  // another CA
    auto w = h.make(o);
    REQUIRE(w);
    h.watcher = std::move(*w);
    REQUIRE(h.watcher->start());
    REQUIRE(wait_until([&] { return !h.status(k8s::Resource::kPods).last_error.empty(); }, kWait));
    CHECK_FALSE(h.watcher->wait_synced(10ms));
    CHECK(h.status(k8s::Resource::kPods).last_error.find("connect") != std::string::npos);
  }
}

TEST_CASE("k8s watcher: MetricsConfiguration is delivered, validated, and optional", "[k8s][watcher]") {
  Harness h;
  std::mutex mu;
  std::vector<k8s::MetricsConfigurationSpec> specs;
  std::vector<std::pair<std::string, std::string>> errors;
  auto o = h.options();
  o.on_metrics_configuration = [&](const k8s::MetricsConfigurationSpec& s) {
    std::lock_guard l(mu);
    specs.push_back(s);
  };
  o.on_metrics_configuration_error = [&](const std::string& name, const Error& e) {
    std::lock_guard l(mu);
    errors.emplace_back(name, e.message);
  };
  auto count = [&](auto& v) {
    std::lock_guard l(mu);
    return v.size();
  };

  // The CRD is not installed: synced anyway, no error counted, retried slowly.
  h.server.set_not_found("metricsconfigurations", true);
  h.start(o);
  CHECK(h.status(k8s::Resource::kMetricsConfigurations).synced);
  CHECK(h.status(k8s::Resource::kMetricsConfigurations).last_error.find("not installed") != std::string::npos);
  CHECK_FALSE(h.metric(R"(controlplane_networkobservability_k8s_watch_errors_total{resource="metricsconfigurations",reason="not_found"})"));

  // Installed later, with one valid object.
  h.server.set_not_found("metricsconfigurations", false);
  h.server.upsert("metricsconfigurations",
                  kj::metrics_configuration("cfg", "2024-01-01T00:00:00Z",
                                            R"({"contextOptions":[{"metricName":"drop_count","sourceLabels":["ip","podname"]}],"namespaces":{"exclude":["kube-system"]}})"));
  REQUIRE(wait_until([&] { return count(specs) == 1; }, kWait));
  {
    std::lock_guard l(mu);
    CHECK(specs[0].name == "cfg");
    REQUIRE(specs[0].context_options.size() == 1);
    CHECK(specs[0].context_options[0].source_labels == std::vector<std::string>{"ip", "podname"});
    CHECK(specs[0].namespaces.exclude == std::vector<std::string>{"kube-system"});
  }
  REQUIRE(wait_until([&] { return h.status(k8s::Resource::kMetricsConfigurations).watch_up; }, kWait));

  // An invalid update is reported; the previous configuration stays.
  h.server.upsert("metricsconfigurations",
                  kj::metrics_configuration("cfg", "2024-01-01T00:00:00Z", R"({"contextOptions":[{"metricName":"nope"}]})"));
  REQUIRE(wait_until([&] { return count(errors) == 1; }, kWait));
  {
    std::lock_guard l(mu);
    CHECK(errors[0].first == "cfg");
    CHECK(errors[0].second.find("unknown metric \"nope\"") != std::string::npos);
    CHECK(specs.size() == 1);
  }
  CHECK(h.metric(R"(controlplane_networkobservability_k8s_watch_errors_total{resource="metricsconfigurations",reason="invalid_object"})") == 1.0);

  // A newer second object is ignored while the older one exists.
  h.server.upsert("metricsconfigurations",
                  kj::metrics_configuration("newer", "2024-06-01T00:00:00Z", R"({"contextOptions":[{"metricName":"dns"}]})"));
  REQUIRE(wait_until([&] { return count(errors) == 2; }, kWait));
  {
    std::lock_guard l(mu);
    CHECK(errors[1].first == "newer");
    CHECK(errors[1].second.find("ignored") != std::string::npos);
  }
  // Deleting the older one hands over to the newer.
  h.server.remove("metricsconfigurations", "", "cfg");
  REQUIRE(wait_until([&] { return count(specs) == 2; }, kWait));
  {
    std::lock_guard l(mu);
    CHECK(specs[1].name == "newer");
  }
  h.server.remove("metricsconfigurations", "", "newer");
  REQUIRE(wait_until([&] { return count(specs) == 3; }, kWait));
  std::lock_guard l(mu);
  CHECK(specs[2].name.empty());
  CHECK(specs[2].context_options.empty());
}

TEST_CASE("k8s watcher: invalid options are rejected with every problem", "[k8s][watcher]") {
  IpCache cache;
  k8s::WatcherOptions o;
  o.client.server = "ftp://x";
  o.page_size = 0;
  auto w = k8s::Watcher::create(o, cache);
  REQUIRE_FALSE(w);
  CHECK(w.error().message.find("client.server") != std::string::npos);
  CHECK(w.error().message.find("node_name: required") != std::string::npos);
  CHECK(w.error().message.find("page_size") != std::string::npos);

  o = {};
  o.client.server = "https://127.0.0.1:1";
  o.remote_context = true;
  o.client.token_file = "/nonexistent/token";
  w = k8s::Watcher::create(o, cache);
  REQUIRE_FALSE(w);
  CHECK(w.error().message.find("/nonexistent/token") != std::string::npos);
}

TEST_CASE("k8s watcher: hostile watch streams cost a relist, never the cache", "[k8s][watcher][hostile]") {
  Harness h;
  h.server.upsert("pods", kj::pod(web_pod("base", "10.1.0.1")));
  h.start();
  h.wait_watching();
  const auto lists = [&] { return h.server.list_requests("pods"); };

  SECTION("an unknown event type and an object of an unknown kind") {
    h.server.send_raw("pods", R"({"type":"EXPLODED","object":{"kind":"Pod","metadata":{"name":"x","namespace":"shop"}}})" "\n");
    REQUIRE(wait_until([&] { return lists() == 2; }, kWait));
    h.wait_watching();
    // A Pod-shaped object whose kind is unknown is read by its fields; a
    // kind that is not an object at all is a decode error.
    h.server.send_raw("pods", R"({"type":"ADDED","object":{"kind":["Gadget"],"metadata":7}})" "\n");
    REQUIRE(wait_until([&] { return lists() == 3; }, kWait));
    CHECK(h.metric(R"(controlplane_networkobservability_k8s_watch_errors_total{resource="pods",reason="decode"})") >= 1.0);
  }
  SECTION("a stream that ends inside a line: the partial line is dropped, the watch resumes") {
    h.server.send_raw("pods", R"({"type":"ADDED","object":{"metadata":{"name":"cut")");
    REQUIRE(h.server.wait_drained("pods", kWait));
    h.server.drop_watches("pods");
    REQUIRE(wait_until(
        [&] {
          return h.metric(R"(controlplane_networkobservability_k8s_watch_errors_total{resource="pods",reason="stream"})")
                     .value_or(0) >= 1.0;
        },
        kWait));
    CHECK(lists() == 1);  // resumed from the last resourceVersion, no relist
  }
  SECTION("a line longer than the limit (64 MiB) is refused without holding it") {
    h.server.send_raw("pods", "{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"name\":\"" + std::string((64u << 20) + 1, 'g'));
    REQUIRE(wait_until([&] { return lists() == 2; }, 30s));
    CHECK(h.metric(R"(controlplane_networkobservability_k8s_watch_errors_total{resource="pods",reason="decode"})") == 1.0);
  }
  // Whatever came, the cache still holds the listed pod and follows new events.
  CHECK(h.resolves("10.1.0.1", "base"));
  h.wait_watching();
  h.server.upsert("pods", kj::pod(web_pod("after", "10.1.0.2")));
  REQUIRE(wait_until([&] { return h.resolves("10.1.0.2", "after"); }, kWait));
}
