// Parsing of API server JSON: objects, LIST pages, watch-event lines split
// anywhere, Status bodies, MetricsConfiguration specs.
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "k8s/json_parse.hpp"
#include "k8s/line_buffer.hpp"
#include "support/fake_apiserver.hpp"

using namespace retina;
using namespace retina::k8s;
namespace kj = retina::test::k8sjson;

namespace {

IpAddr ip(const char* s) { return *IpAddr::parse(s); }

std::string event(const char* type, const std::string& object) {
  return std::string("{\"type\":\"") + type + "\",\"object\":" + object + "}";
}

}  // namespace

TEST_CASE("k8s parse: pod fields the cache needs, everything else skipped", "[k8s]") {
  kj::Pod p;
  p.ns = "shop";
  p.name = "web-7d4b9c-x2x";
  p.node = "node-a";
  p.ips = {"10.1.2.3", "fd00::7"};
  p.labels = {{"app", "web"}, {"pod-template-hash", "7d4b9c"}, {"tier", "front"}};
  p.annotations = {{"retina.sh", "observe"}, {"other", "x"}};
  p.owner_kind = "ReplicaSet";
  p.owner_name = "web-7d4b9c";
  JsonParser parser;
  auto ev = parser.parse_event<PodInfo>(event("ADDED", kj::pod(p)));
  REQUIRE(ev);
  CHECK(ev->type == EventType::kAdded);
  const PodInfo& pod = ev->object;
  CHECK(pod.namespace_ == "shop");
  CHECK(pod.name == "web-7d4b9c-x2x");
  CHECK(pod.node_name == "node-a");
  CHECK(pod.labels == std::vector<std::string>{"app=web", "pod-template-hash=7d4b9c", "tier=front"});
  CHECK(pod.observe);
  CHECK(pod.owner == OwnerRef{"ReplicaSet", "web-7d4b9c"});
  CHECK_FALSE(pod.host_network);
  CHECK_FALSE(pod.terminal);
  CHECK(pod.ips == std::vector<IpAddr>{ip("10.1.2.3"), ip("fd00::7")});
  CHECK(ev->invalid_values == 0);
}

TEST_CASE("k8s parse: podIP alone, terminal phases, host network, bad IPs counted", "[k8s]") {
  JsonParser parser;
  kj::Pod p;
  p.name = "old";
  p.ips = {"10.9.9.9"};
  p.only_pod_ip = true;
  auto ev = parser.parse_event<PodInfo>(event("MODIFIED", kj::pod(p)));
  REQUIRE(ev);
  CHECK(ev->object.ips == std::vector<IpAddr>{ip("10.9.9.9")});

  p.phase = "Succeeded";
  ev = parser.parse_event<PodInfo>(event("MODIFIED", kj::pod(p)));
  REQUIRE(ev);
  CHECK(ev->object.terminal);
  p.phase = "Failed";
  CHECK(parser.parse_event<PodInfo>(event("MODIFIED", kj::pod(p)))->object.terminal);

  p.phase = "Running";
  p.host_network = true;
  CHECK(parser.parse_event<PodInfo>(event("MODIFIED", kj::pod(p)))->object.host_network);

  p.host_network = false;
  p.only_pod_ip = false;
  p.ips = {"10.0.0.300", "10.0.0.4"};
  ev = parser.parse_event<PodInfo>(event("MODIFIED", kj::pod(p)));
  REQUIRE(ev);
  CHECK(ev->object.ips == std::vector<IpAddr>{ip("10.0.0.4")});
  CHECK(ev->invalid_values == 1);
}

TEST_CASE("k8s parse: owner is the controller reference", "[k8s]") {
  JsonParser parser;
  const std::string pod =
      R"({"metadata":{"name":"p","namespace":"n","ownerReferences":[)"
      R"({"kind":"Foo","name":"not-controller"},{"kind":"StatefulSet","name":"db","controller":true}]},)"
      R"("spec":{"nodeName":null},"status":{"podIP":null,"podIPs":null}})";
  auto ev = parser.parse_event<PodInfo>(event("ADDED", pod));
  REQUIRE(ev);
  CHECK(ev->object.owner == OwnerRef{"StatefulSet", "db"});
  CHECK(ev->object.ips.empty());
}

TEST_CASE("k8s parse: services, nodes, namespaces, replica sets", "[k8s]") {
  JsonParser parser;
  auto svc = parser.parse_event<ServiceInfo>(
      event("ADDED", kj::service("shop", "web", {"10.96.0.10", "fd00:96::a"}, {{"app", "web"}}, {{"team", "a"}})));
  REQUIRE(svc);
  CHECK(svc->object.cluster_ips == std::vector<IpAddr>{ip("10.96.0.10"), ip("fd00:96::a")});
  CHECK(svc->object.selector == std::vector<std::string>{"app=web"});
  CHECK(svc->object.labels == std::vector<std::string>{"team=a"});
  CHECK_FALSE(svc->object.headless);

  auto headless = parser.parse_event<ServiceInfo>(event("ADDED", kj::service("shop", "db", {"None"}, {{"app", "db"}})));
  REQUIRE(headless);
  CHECK(headless->object.headless);
  CHECK(headless->object.cluster_ips.empty());

  auto node = parser.parse_event<NodeInfo>(event("ADDED", kj::node("node-a", {"10.0.0.5", "fd00::5"}, "eu-1a")));
  REQUIRE(node);
  CHECK(node->object.name == "node-a");
  CHECK(node->object.zone == "eu-1a");
  CHECK(node->object.internal_ips == std::vector<IpAddr>{ip("10.0.0.5"), ip("fd00::5")});

  auto legacy = parser.parse_event<NodeInfo>(event(
      "ADDED", kj::node("node-b", {"10.0.0.6"}, "", {{"failure-domain.beta.kubernetes.io/zone", "old-zone"}})));
  REQUIRE(legacy);
  CHECK(legacy->object.zone == "old-zone");

  auto ns = parser.parse_event<NamespaceInfo>(event("ADDED", kj::namespace_("shop", true)));
  REQUIRE(ns);
  CHECK(ns->object.name == "shop");
  CHECK(ns->object.observe);

  auto rs = parser.parse_event<ReplicaSetInfo>(event("ADDED", kj::replicaset("shop", "web-7d4b9c", "Deployment", "web")));
  REQUIRE(rs);
  CHECK(rs->object.owner == OwnerRef{"Deployment", "web"});
}

TEST_CASE("k8s parse: bookmark, ERROR and malformed events", "[k8s]") {
  JsonParser parser;
  auto bm = parser.parse_event<PodInfo>(
      R"({"type":"BOOKMARK","object":{"kind":"Pod","apiVersion":"v1","metadata":{"resourceVersion":"12345","annotations":{"k8s.io/initial-events-end":"true"}}}})");
  REQUIRE(bm);
  CHECK(bm->type == EventType::kBookmark);
  CHECK(bm->resource_version == "12345");

  auto err = parser.parse_event<PodInfo>(
      R"J({"type":"ERROR","object":{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"too old resource version: 1 (5)","reason":"Expired","code":410}})J");
  REQUIRE(err);
  CHECK(err->type == EventType::kError);
  CHECK(err->status.code == 410);
  CHECK(err->status.reason == "Expired");

  // Object before type is fine too.
  auto swapped = parser.parse_event<NamespaceInfo>(R"({"object":{"metadata":{"name":"x","resourceVersion":"7"}},"type":"DELETED"})");
  REQUIRE(swapped);
  CHECK(swapped->type == EventType::kDeleted);
  CHECK(swapped->resource_version == "7");

  for (const char* bad : {"", "{", "not json", "[]", R"({"type":"ADDED"})", R"({"type":"SYNC","object":{}})",
                          R"({"type":"ADDED","object":{"metadata":{"name":5}}})",
                          R"({"type":"ADDED","object":{"metadata":{"labels":{"a":1}}}})",
                          R"({"type":"ADDED","object":{"status":{"podIPs":"10.0.0.1"}}})",
                          R"({"type":"ADDED","object":{"metadata":{"name":"a"}})"}) {
    INFO(bad);
    auto r = parser.parse_event<PodInfo>(bad);
    REQUIRE_FALSE(r);
    CHECK(r.error().kind == Error::Kind::kParse);
  }
}

TEST_CASE("k8s parse: LIST pages with continue tokens", "[k8s]") {
  JsonParser parser;
  kj::Pod a, b;
  a.name = "a";
  a.ips = {"10.0.0.1"};
  b.name = "b";
  b.ips = {"10.0.0.2"};
  std::string body = R"({"kind":"PodList","apiVersion":"v1","metadata":{"resourceVersion":"99","continue":"tok/1","remainingItemCount":1},"items":[)" +
                     kj::pod(a) + "," + kj::pod(b) + "]}";
  ListPage<PodInfo> page;
  REQUIRE(parser.parse_list(body, page));
  CHECK(page.resource_version == "99");
  CHECK(page.continue_token == "tok/1");
  REQUIRE(page.items.size() == 2);
  CHECK(page.items[1].name == "b");

  std::string empty = R"({"kind":"PodList","metadata":{"resourceVersion":"100"},"items":null})";
  ListPage<PodInfo> page2;
  REQUIRE(parser.parse_list(empty, page2));
  CHECK(page2.items.empty());
  CHECK(page2.continue_token.empty());

  std::string broken = R"({"kind":"PodList","items":[{"metadata":)";
  ListPage<PodInfo> page3;
  CHECK_FALSE(parser.parse_list(broken, page3));

  const ApiStatus st = parser.parse_status(R"({"kind":"Status","code":403,"reason":"Forbidden","message":"pods is forbidden"})");
  CHECK(st.code == 403);
  CHECK(st.message == "pods is forbidden");
  CHECK(parser.parse_status("<html>bad gateway</html>").code == 0);
}

TEST_CASE("k8s parse: watch lines split anywhere across chunks", "[k8s]") {
  kj::Pod p;
  p.name = "split";
  p.ips = {"10.0.0.9"};
  const std::string stream = event("ADDED", kj::pod(p)) + "\n" + event("DELETED", kj::pod(p)) + "\r\n\n" +
                             R"({"type":"BOOKMARK","object":{"metadata":{"resourceVersion":"5"}}})" + "\n";
  for (size_t chunk = 1; chunk <= stream.size(); chunk = chunk * 2 + 1) {
    INFO("chunk size " << chunk);
    LineBuffer lines(1 << 20);
    JsonParser parser;
    std::vector<EventType> types;
    for (size_t off = 0; off < stream.size(); off += chunk) {
      auto r = lines.feed(std::string_view(stream).substr(off, chunk), [&](std::string_view line) {
        auto ev = parser.parse_event<PodInfo>(line);
        REQUIRE(ev);
        types.push_back(ev->type);
        return true;
      });
      REQUIRE(r == LineBuffer::Result::kOk);
    }
    CHECK(types == std::vector<EventType>{EventType::kAdded, EventType::kDeleted, EventType::kBookmark});
    CHECK(lines.pending() == 0);
  }

  LineBuffer small(8);
  CHECK(small.feed("0123456789", [](std::string_view) { return true; }) == LineBuffer::Result::kTooLong);
  CHECK(small.pending() == 0);
  CHECK(small.feed("abc\ndef\n", [](std::string_view l) { return l != "abc"; }) == LineBuffer::Result::kStopped);
}

TEST_CASE("k8s parse: MetricsConfiguration objects and bare specs", "[k8s]") {
  const std::string spec =
      R"({"contextOptions":[{"metricName":"forward_count","sourceLabels":["ip","podname","workload"],)"
      R"("destinationLabels":["namespace"],"additionalLabels":["is_reply"],"ttl":"5m"},{"metricName":"dns"}],)"
      R"("namespaces":{"include":["shop","db"]}})";
  auto r = parse_metrics_configuration(kj::metrics_configuration("cfg", "2024-01-01T00:00:00Z", spec));
  REQUIRE(r);
  CHECK(r->name == "cfg");
  REQUIRE(r->context_options.size() == 2);
  CHECK(r->context_options[0].metric_name == "forward_count");
  CHECK(r->context_options[0].source_labels == std::vector<std::string>{"ip", "podname", "workload"});
  CHECK(r->context_options[0].destination_labels == std::vector<std::string>{"namespace"});
  CHECK(r->context_options[0].additional_labels == std::vector<std::string>{"is_reply"});
  CHECK(r->context_options[0].ttl == std::chrono::minutes(5));
  CHECK(r->context_options[1].ttl == std::chrono::seconds(0));
  CHECK(r->namespaces.include == std::vector<std::string>{"shop", "db"});

  auto bare = parse_metrics_configuration(spec);
  REQUIRE(bare);
  CHECK(bare->name.empty());
  CHECK(bare->context_options.size() == 2);
}

TEST_CASE("k8s parse: invalid MetricsConfiguration specs name every problem", "[k8s]") {
  auto check = [](const std::string& spec_json, std::vector<std::string> expected) {
    INFO(spec_json);
    auto r = parse_metrics_configuration(kj::metrics_configuration("bad", "2024-01-01T00:00:00Z", spec_json));
    REQUIRE_FALSE(r);
    CHECK(r.error().kind == Error::Kind::kInvalidArgument);
    for (const auto& e : expected) {
      INFO(r.error().message);
      CHECK(r.error().message.find(e) != std::string::npos);
    }
  };
  check(R"({"contextOptions":[]})", {"spec.contextOptions: at least one context option is required"});
  check(R"({"contextOptions":[{"metricName":"bogus","sourceLabels":["pod"]}]})",
        {"spec.contextOptions[0].metricName: unknown metric \"bogus\"", "spec.contextOptions[0].sourceLabels: unknown label \"pod\""});
  check(R"({"contextOptions":[{"metricName":"drop_count","ttl":"soon"}]})", {"spec.contextOptions[0].ttl:"});
  check(R"({"contextOptions":[{"metricName":"drop_count","ttl":"1500ms"}]})", {"whole number of seconds"});
  check(R"({"contextOptions":[{"metricName":"drop_count","ttl":"-5s"}]})", {"spec.contextOptions[0].ttl: must not be negative"});
  check(R"({"contextOptions":[{"metricName":"drop_count"}],"namespaces":{"include":["a"],"exclude":["b"]}})",
        {"spec.namespaces: include and exclude are mutually exclusive"});
  check(R"({"contextOptions":"drop"})", {"spec.contextOptions: expected a list of context options"});
  check(R"({"contextOptions":[{"metricName":7,"sourceLabels":[1],"color":"red"}],"extra":1})",
        {"spec.contextOptions[0].metricName: expected a string", "spec.contextOptions[0].sourceLabels[0]: expected a string",
         "spec.contextOptions[0].color: unknown field", "spec.extra: unknown field"});

  auto not_json = parse_metrics_configuration("{\"spec\":");
  REQUIRE_FALSE(not_json);
  CHECK(not_json.error().kind == Error::Kind::kParse);
}
