#include <catch2/catch.hpp>

#include <string>

#include "cache/endpoints_file.hpp"

using namespace retina;

namespace {

const char* kExampleYaml = R"(
endpoints:
  - kind: pod            # pod | service | node | external
    namespace: default
    name: web-7d9f
    ips: [10.0.0.5, "fd00::5"]
    labels: {app: web, tier: frontend}
    workload: {kind: Deployment, name: web}
    node: node-1
    zone: eastus-1
    service: web-svc
    observe: true
  - kind: service
    name: web-svc
    ips: [10.96.0.10]
  - kind: Node
    name: node-1
    ips: [192.168.1.10]
    labels: ["kubernetes.io/os=linux", "node-role=worker"]
  - kind: external
    name: dns
    ips: [1.1.1.1]
    workloads:
      - {kind: ReplicaSet, name: web-7d9f}
      - {kind: Deployment, name: web}
)";

std::string error_of(std::string_view text) {
  auto r = parse_endpoints(text);
  if (r) return "(parsed " + std::to_string(r->size()) + " endpoints)";
  return r.error().message;
}

}  // namespace

TEST_CASE("Endpoints file: the documented YAML example", "[endpoints_file]") {
  auto r = parse_endpoints(kExampleYaml);
  REQUIRE(r);
  REQUIRE(r->size() == 4);
  const Endpoint& web = *(*r)[0];
  CHECK(web.kind == EndpointKind::kPod);
  CHECK(web.namespace_ == "default");
  CHECK(web.name == "web-7d9f");
  REQUIRE(web.ips.size() == 2);
  CHECK(web.ips[0] == *IpAddr::parse("10.0.0.5"));
  CHECK(web.ips[1] == *IpAddr::parse("fd00::5"));
  CHECK(web.labels == std::vector<std::string>{"app=web", "tier=frontend"});
  REQUIRE(web.workload());
  CHECK(web.workload()->kind == "Deployment");
  CHECK(web.workload()->name == "web");
  CHECK(web.node_name == "node-1");
  CHECK(web.zone == "eastus-1");
  CHECK(web.service == "web-svc");
  CHECK(web.observe);
  CHECK(web.key() == "pod/default/web-7d9f");

  const Endpoint& svc = *(*r)[1];
  CHECK(svc.kind == EndpointKind::kService);
  CHECK(svc.namespace_ == "default");  // defaulted
  CHECK_FALSE(svc.observe);

  const Endpoint& node = *(*r)[2];
  CHECK(node.kind == EndpointKind::kNode);
  CHECK(node.namespace_.empty());
  CHECK(node.labels == std::vector<std::string>{"kubernetes.io/os=linux", "node-role=worker"});

  const Endpoint& ext = *(*r)[3];
  CHECK(ext.kind == EndpointKind::kExternal);
  REQUIRE(ext.workloads.size() == 2);
  CHECK(ext.workloads[0] == Workload{"ReplicaSet", "web-7d9f"});
  CHECK(ext.workloads[1] == Workload{"Deployment", "web"});
}

TEST_CASE("Endpoints file: JSON is accepted", "[endpoints_file]") {
  const char* json = R"({
	"endpoints": [
		{"kind": "pod", "namespace": "prod", "name": "api-0", "ips": ["10.1.0.7", "fd00::7"],
		 "labels": {"app": "api", "empty": ""}, "workload": {"kind": "StatefulSet", "name": "api"},
		 "node": "node-2", "observe": false},
		{"name": "bare", "ips": ["10.1.0.8"], "zone": null}
	]
})";
  auto r = parse_endpoints(json);
  REQUIRE(r);
  REQUIRE(r->size() == 2);
  CHECK((*r)[0]->key() == "pod/prod/api-0");
  CHECK((*r)[0]->labels == std::vector<std::string>{"app=api", "empty="});
  CHECK((*r)[0]->workload()->kind == "StatefulSet");
  CHECK((*r)[1]->kind == EndpointKind::kPod);  // kind defaults to pod
  CHECK((*r)[1]->namespace_ == "default");
  CHECK((*r)[1]->zone.empty());
}

TEST_CASE("Endpoints file: JSON validates like YAML, naming entry and field", "[endpoints_file]") {
  struct Case {
    const char* text;
    const char* expect;
  };
  const Case cases[] = {
      {R"({"endpoints": [{"name": "a", "ips": ["nope"]}]})",
       "endpoints[0].ips[0]: \"nope\" is not an IPv4 or IPv6 address"},
      {R"({"endpoints": [{"name": "a", "ips": [7]}]})", "endpoints[0].ips[0]: \"7\" is not an IPv4"},
      {R"({"endpoints": [{"name": "a", "ips": ["10.0.0.1"], "observe": 1}]})",
       "endpoints[0].observe: expected true or false, got \"1\""},
      {R"({"endpoints": [{"name": "a", "ips": ["10.0.0.1"], "labels": {"k": []}}]})",
       "endpoints[0].labels.k: expected a string value, got a list"},
      {R"({"endpoints": [{"name": "a", "ips": ["10.0.0.1"]}, {"name": "a", "ips": ["10.0.0.2"]}]})",
       "endpoints[1]: pod default/a is already listed as endpoints[0]"},
      {R"({"endpoints": [{"name": "a", "ips": "10.0.0.1"}]})",
       "endpoints[0].ips: expected a list of addresses, got a scalar"},
      {R"({"endpoints": {"name": "a"}})", "endpoints: expected a list, got a mapping"},
      {R"({"other": []})", "unknown top-level field \"other\""},
  };
  for (const auto& c : cases) {
    INFO("input: " << c.text);
    auto r = parse_endpoints(c.text);
    REQUIRE_FALSE(r);
    INFO("error: " << r.error().message);
    CHECK(r.error().message.find(c.expect) == 0);
  }
  // The same entries in both formats give the same endpoints.
  auto j = parse_endpoints(R"( {"endpoints": [{"kind": "Service", "namespace": "n", "name": "s", "ips": ["10.2.0.1"],
      "labels": ["b=2", "a=1"], "workloads": [{"kind": "ReplicaSet", "name": "r"}, {"kind": "Deployment", "name": "d"}],
      "observe": "yes"}]})");
  auto y = parse_endpoints(
      "endpoints:\n  - {kind: Service, namespace: n, name: s, ips: [10.2.0.1], labels: [b=2, a=1],\n"
      "     workloads: [{kind: ReplicaSet, name: r}, {kind: Deployment, name: d}], observe: yes}\n");
  REQUIRE(j);
  REQUIRE(y);
  REQUIRE(j->size() == 1);
  REQUIRE(y->size() == 1);
  const Endpoint& a = *(*j)[0];
  const Endpoint& b = *(*y)[0];
  CHECK(a.key() == b.key());
  CHECK(a.ips == b.ips);
  CHECK(a.labels == b.labels);
  CHECK(a.observe == b.observe);
  REQUIRE(a.workloads.size() == 2);
  CHECK(a.workloads[1].kind == "Deployment");
  CHECK(a.workloads == b.workloads);
}

TEST_CASE("Endpoints file: an empty list is valid", "[endpoints_file]") {
  for (const char* text : {"endpoints: []", "endpoints:", "{\"endpoints\": []}", "endpoints: []\n# trailing\n"}) {
    INFO(text);
    auto r = parse_endpoints(text);
    REQUIRE(r);
    CHECK(r->empty());
  }
}

TEST_CASE("Endpoints file: errors name the entry and the field", "[endpoints_file]") {
  struct Case {
    const char* text;
    const char* expect;
  };
  const Case cases[] = {
      {"endpoints:\n  - name: a\n    ips: [10.0.0.1]\n  - name: b\n    ips: [10.0.0.2, 10.0.0.300]\n",
       "endpoints[1].ips[1]: \"10.0.0.300\" is not an IPv4 or IPv6 address (line 5, column 21)"},
      {"endpoints:\n  - name: a\n    kind: pods\n    ips: [10.0.0.1]\n",
       "endpoints[0].kind: unknown kind \"pods\" (expected pod, service, node or external) (line 3, column 11)"},
      {"endpoints:\n  - name: a\n    ips: 10.0.0.1\n",
       "endpoints[0].ips: expected a list of addresses, got a scalar (line 3, column 10)"},
      {"endpoints:\n  - name: a\n    ips: [[10.0.0.1]]\n", "endpoints[0].ips[0]: expected an address, got a list"},
      {"endpoints:\n  - name: [a]\n    ips: [10.0.0.1]\n", "endpoints[0].name: expected a string, got a list"},
      {"endpoints:\n  - name: a\n    ips: [10.0.0.1]\n    labels: 5\n",
       "endpoints[0].labels: expected a mapping of key: value or a list of \"key=value\", got a scalar"},
      {"endpoints:\n  - name: a\n    ips: [10.0.0.1]\n    labels: {app: [x]}\n",
       "endpoints[0].labels.app: expected a string value, got a list"},
      {"endpoints:\n  - name: a\n    ips: [10.0.0.1]\n    labels: [app]\n",
       "endpoints[0].labels[0]: expected \"key=value\", got \"app\""},
      {"endpoints:\n  - name: a\n    ips: [10.0.0.1]\n    labels: [\"=x\"]\n", "endpoints[0].labels[0]: empty label key"},
      {"endpoints:\n  - name: a\n    ips: [10.0.0.1]\n    observe: maybe\n",
       "endpoints[0].observe: expected true or false, got \"maybe\""},
      {"endpoints:\n  - name: a\n    ips: [10.0.0.1]\n    nmae: b\n", "endpoints[0].nmae: unknown field (line 4, column 5)"},
      {"endpoints:\n  - ips: [10.0.0.1]\n", "endpoints[0].name: missing or empty"},
      {"endpoints:\n  - name: a\n", "endpoints[0].ips: missing or empty"},
      {"endpoints:\n  - name: a\n    ips: []\n", "endpoints[0].ips: missing or empty"},
      {"endpoints:\n  - name: a\n    ips: [0.0.0.0]\n", "endpoints[0].ips[0]: \"0.0.0.0\" is the unspecified address"},
      {"endpoints:\n  - name: a\n    ips: [10.0.0.1, 10.0.0.1]\n", "endpoints[0].ips[1]: 10.0.0.1 is listed twice"},
      {"endpoints:\n  - name: a\n    ips: [10.0.0.1]\n  - name: a\n    ips: [10.0.0.2]\n",
       "endpoints[1]: pod default/a is already listed as endpoints[0]"},
      {"endpoints:\n  - name: a\n    ips: [10.0.0.1]\n  - name: b\n    ips: [10.0.0.1]\n",
       "endpoints[1].ips[0]: 10.0.0.1 is already used by endpoints[0]"},
      {"endpoints:\n  - name: a\n    ips: [10.0.0.1]\n    workload: {kind: Deployment}\n",
       "endpoints[0].workload.name: missing or empty"},
      {"endpoints:\n  - name: a\n    ips: [10.0.0.1]\n    workload: {kind: Deployment, name: a, uid: x}\n",
       "endpoints[0].workload: unknown field \"uid\" (expected kind and name)"},
      {"endpoints:\n  - name: a\n    ips: [10.0.0.1]\n    workloads: {kind: Deployment, name: a}\n",
       "endpoints[0].workloads: expected a list of {kind, name}, got a mapping"},
      {"endpoints:\n  - name: a\n    ips: [10.0.0.1]\n    workloads: [x]\n",
       "endpoints[0].workloads[0]: expected {kind, name}, got a scalar"},
      {"endpoints:\n  - name: a\n    ips: [10.0.0.1]\n    workload: {kind: D, name: a}\n    workloads: []\n",
       "endpoints[0].workloads: give either workload or workloads, not both"},
      {"endpoints:\n  - kind: node\n    namespace: default\n    name: n\n    ips: [10.0.0.1]\n",
       "endpoints[0].namespace: nodes have no namespace"},
      {"endpoints:\n  - just-a-string\n", "endpoints[0]: expected a mapping, got a scalar"},
      {"endpoints: {name: a}\n", "endpoints: expected a list, got a mapping"},
      {"endpoint: []\n", "unknown top-level field \"endpoint\""},
      {"- name: a\n", "expected a mapping with an \"endpoints\" list, got a list"},
      {"", "empty document"},
      {"# only a comment\n", "empty document"},
      {"endpoints: []\n---\nendpoints: []\n", "more than one YAML document"},
      {"endpoints: [\n", "malformed YAML/JSON: yaml-cpp: error at line"},
      {"{\"endpoints\": [{\"name\": \"a\",}", "malformed YAML/JSON"},
  };
  for (const auto& c : cases) {
    INFO("input:\n" << c.text);
    std::string err = error_of(c.text);
    INFO("error: " << err);
    CHECK(err.find(c.expect) != std::string::npos);
  }
}

TEST_CASE("Endpoints file: load_endpoints_file names the path", "[endpoints_file]") {
  auto r = load_endpoints_file("/nonexistent-dir-retina/endpoints.yaml");
  REQUIRE_FALSE(r);
  CHECK(r.error().kind == Error::Kind::kSystem);
  CHECK(r.error().message.find("open(/nonexistent-dir-retina/endpoints.yaml): No such file or directory") == 0);
  auto d = load_endpoints_file("/");
  REQUIRE_FALSE(d);
  CHECK(d.error().message.find("not a regular file") != std::string::npos);
}

TEST_CASE("Endpoints file: deep nesting and alias tricks are errors, not crashes", "[endpoints_file]") {
  CHECK_FALSE(parse_endpoints(std::string(100000, '[')));
  CHECK_FALSE(parse_endpoints("endpoints: " + std::string(5000, '[') + std::string(5000, ']')));
  // Aliased entries repeat a key: rejected at the second one.
  auto r = parse_endpoints("endpoints:\n  - &e {name: a, ips: [10.0.0.1]}\n  - *e\n  - *e\n");
  REQUIRE_FALSE(r);
  CHECK(r.error().message.find("endpoints[1]: pod default/a is already listed") == 0);
}

TEST_CASE("Endpoints file: YAML entries are parsed as they stream, with a tree's meaning", "[endpoints_file]") {
  // Anchors defined in one entry serve aliases in later ones.
  auto r = parse_endpoints(
      "endpoints:\n"
      "  - {name: a, ips: [10.0.0.1], labels: &l {app: web}, workload: &w {kind: Deployment, name: web}}\n"
      "  - {name: b, ips: [10.0.0.2], labels: *l, workload: *w}\n");
  REQUIRE(r);
  REQUIRE(r->size() == 2);
  CHECK((*r)[1]->labels->size() == 1);
  CHECK((*r)[1]->labels->front() == "app=web");
  REQUIRE((*r)[1]->workloads.size() == 1);
  CHECK((*r)[1]->workloads[0].name == "web");

  // An anchored list, and the list through an alias, are read whole.
  auto anchored = parse_endpoints("endpoints: &all\n  - {name: a, ips: [10.0.0.1]}\n  - {name: b, ips: [10.0.0.2]}\n");
  REQUIRE(anchored);
  CHECK(anchored->size() == 2);

  // A key given twice: the last value counts, as in a tree.
  auto twice = parse_endpoints("endpoints:\n  - {name: a, ips: [10.0.0.1]}\nendpoints:\n  - {name: b, ips: [10.0.0.9]}\n"
                               "  - {name: c, ips: [10.0.0.8]}\n");
  REQUIRE(twice);
  REQUIRE(twice->size() == 2);
  CHECK((*twice)[0]->name == "b");
  auto twice_null = parse_endpoints("endpoints:\n  - {name: a, ips: [10.0.0.1]}\nendpoints:\n");
  REQUIRE(twice_null);
  CHECK(twice_null->empty());
  // The first list's error does not outlive its replacement.
  auto replaced = parse_endpoints("endpoints:\n  - {name: a}\nendpoints:\n  - {name: b, ips: [10.0.0.2]}\n");
  REQUIRE(replaced);
  CHECK(replaced->size() == 1);

  // An unknown top-level field after the list wins over an entry's error,
  // and malformed YAML after it wins over both.
  CHECK(error_of("endpoints:\n  - {name: a}\nextra: 1\n").find("unknown top-level field \"extra\" (line 3") == 0);
  CHECK(error_of("endpoints:\n  - {name: a}\nextra: [\n").find("malformed YAML/JSON") == 0);

  // A node that contains an alias to itself is an error.
  CHECK(error_of("endpoints:\n  - &e {name: a, ips: [10.0.0.1], labels: *e}\n").find("malformed YAML/JSON") == 0);
  CHECK(error_of("endpoints: &l [*l]\n").find("malformed YAML/JSON") == 0);

  // Many entries: every one arrives, in order.
  std::string big = "endpoints:\n";
  for (int i = 0; i < 3000; ++i)
    big += "  - {namespace: ns-" + std::to_string(i % 7) + ", name: pod-" + std::to_string(i) + ", ips: [10.1." +
           std::to_string(i / 250) + "." + std::to_string(i % 250 + 1) + "], labels: {app: a" + std::to_string(i % 5) +
           "}}\n";
  auto many = parse_endpoints(big);
  REQUIRE(many);
  REQUIRE(many->size() == 3000);
  CHECK((*many)[2999]->name == "pod-2999");
  CHECK((*many)[2999]->namespace_ == "ns-3");
}
