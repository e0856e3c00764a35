// ClusterState: how pods, services, nodes, namespaces and replica sets
// become IpCache endpoints, without an API server.
#include <chrono>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "k8s/cluster_state.hpp"
#include "retina/ip_cache.hpp"

using namespace retina;
using namespace retina::k8s;
using namespace std::chrono_literals;

namespace {

IpAddr ip(const char* s) { return *IpAddr::parse(s); }

PodInfo pod(std::string ns, std::string name, std::vector<const char*> ips, std::vector<std::string> labels = {},
            OwnerRef owner = {}, std::string node = "node-a") {
  PodInfo p;
  p.namespace_ = std::move(ns);
  p.name = std::move(name);
  for (const char* s : ips) p.ips.push_back(ip(s));
  std::sort(labels.begin(), labels.end());
  p.labels = std::move(labels);
  p.owner = std::move(owner);
  p.node_name = std::move(node);
  return p;
}

ServiceInfo service(std::string ns, std::string name, std::vector<const char*> ips, std::vector<std::string> selector,
                    bool headless = false) {
  ServiceInfo s;
  s.namespace_ = std::move(ns);
  s.name = std::move(name);
  for (const char* a : ips) s.cluster_ips.push_back(ip(a));
  s.selector = std::move(selector);
  s.headless = headless;
  return s;
}

NodeInfo node(std::string name, std::string zone, std::vector<const char*> ips) {
  NodeInfo n;
  n.name = std::move(name);
  n.zone = std::move(zone);
  for (const char* a : ips) n.internal_ips.push_back(ip(a));
  return n;
}

std::vector<Workload> wl(std::string kind, std::string name) { return {Workload{std::move(kind), std::move(name)}}; }

}  // namespace

TEST_CASE("k8s state: pod endpoints carry workload, node, zone, observe and labels", "[k8s]") {
  IpCache cache;
  ClusterState st(cache, 0s, true);
  st.replace(std::vector<NodeInfo>{node("node-a", "zone-1", {"192.168.0.10"})});
  NamespaceInfo ns;
  ns.name = "shop";
  ns.observe = true;
  st.replace(std::vector<NamespaceInfo>{ns});
  st.replace(std::vector<ReplicaSetInfo>{{"shop", "web-5f7c", "", {"Deployment", "web"}}});
  st.replace(std::vector<PodInfo>{pod("shop", "web-5f7c-abcde", {"10.1.0.5", "fd00::5"},
                                      {"app=web", "pod-template-hash=5f7c"}, {"ReplicaSet", "web-5f7c"})});

  auto ep = cache.find(ip("10.1.0.5"));
  REQUIRE(ep);
  CHECK(ep->kind == EndpointKind::kPod);
  CHECK(ep->namespace_ == "shop");
  CHECK(ep->name == "web-5f7c-abcde");
  CHECK(ep->labels == std::vector<std::string>{"app=web", "pod-template-hash=5f7c"});
  CHECK(ep->workloads == wl("Deployment", "web"));
  CHECK(ep->node_name == "node-a");
  CHECK(ep->zone == "zone-1");
  CHECK(ep->observe);
  CHECK(cache.find(ip("fd00::5")) == ep);

  auto n = cache.find(ip("192.168.0.10"));
  REQUIRE(n);
  CHECK(n->kind == EndpointKind::kNode);
  CHECK(n->name == "node-a");
  CHECK(n->zone == "zone-1");
  CHECK(st.count(Resource::kPods) == 1);
}

TEST_CASE("k8s state: workload resolution rules", "[k8s]") {
  IpCache cache;
  SECTION("ReplicaSet without its object falls back to the pod-template-hash convention") {
    ClusterState st(cache, 0s, true);
    st.apply(EventType::kAdded, pod("d", "api-6b9f8-x", {"10.0.0.1"}, {"pod-template-hash=6b9f8"}, {"ReplicaSet", "api-6b9f8"}));
    CHECK(cache.find(ip("10.0.0.1"))->workloads == wl("Deployment", "api"));
    // A ReplicaSet whose name does not end in the hash stays a ReplicaSet.
    st.apply(EventType::kAdded, pod("d", "x-1", {"10.0.0.2"}, {"pod-template-hash=zzz"}, {"ReplicaSet", "standalone"}));
    CHECK(cache.find(ip("10.0.0.2"))->workloads == wl("ReplicaSet", "standalone"));
    // The ReplicaSet object, once known, wins: here a bare ReplicaSet named like a Deployment's.
    st.apply(EventType::kAdded, ReplicaSetInfo{"d", "api-6b9f8", "", {}});
    CHECK(cache.find(ip("10.0.0.1"))->workloads == wl("ReplicaSet", "api-6b9f8"));
    st.apply(EventType::kModified, ReplicaSetInfo{"d", "api-6b9f8", "", {"Rollout", "api"}});
    CHECK(cache.find(ip("10.0.0.1"))->workloads == wl("Rollout", "api"));
    st.apply(EventType::kDeleted, ReplicaSetInfo{"d", "api-6b9f8", "", {"Rollout", "api"}});
    CHECK(cache.find(ip("10.0.0.1"))->workloads == wl("Deployment", "api"));
  }
  SECTION("without watching ReplicaSets only the convention is used") {
    ClusterState st(cache, 0s, false);
    st.apply(EventType::kAdded, ReplicaSetInfo{"d", "api-6b9f8", "", {}});
    st.apply(EventType::kAdded, pod("d", "api-6b9f8-x", {"10.0.0.1"}, {"pod-template-hash=6b9f8"}, {"ReplicaSet", "api-6b9f8"}));
    CHECK(cache.find(ip("10.0.0.1"))->workloads == wl("Deployment", "api"));
  }
  SECTION("StatefulSet, DaemonSet, Job, CronJob, bare pods") {
    ClusterState st(cache, 0s, true);
    st.apply(EventType::kAdded, pod("d", "db-0", {"10.0.0.3"}, {}, {"StatefulSet", "db"}));
    st.apply(EventType::kAdded, pod("d", "agent-x", {"10.0.0.4"}, {}, {"DaemonSet", "agent"}));
    st.apply(EventType::kAdded, pod("d", "migrate-x", {"10.0.0.5"}, {}, {"Job", "migrate"}));
    st.apply(EventType::kAdded, pod("d", "backup-28504560-x", {"10.0.0.6"}, {}, {"Job", "backup-28504560"}));
    st.apply(EventType::kAdded, pod("d", "short-123-x", {"10.0.0.7"}, {}, {"Job", "short-123"}));
    st.apply(EventType::kAdded, pod("d", "bare", {"10.0.0.8"}));
    CHECK(cache.find(ip("10.0.0.3"))->workloads == wl("StatefulSet", "db"));
    CHECK(cache.find(ip("10.0.0.4"))->workloads == wl("DaemonSet", "agent"));
    CHECK(cache.find(ip("10.0.0.5"))->workloads == wl("Job", "migrate"));
    CHECK(cache.find(ip("10.0.0.6"))->workloads == wl("CronJob", "backup"));
    CHECK(cache.find(ip("10.0.0.7"))->workloads == wl("Job", "short-123"));
    CHECK(cache.find(ip("10.0.0.8"))->workloads.empty());
  }
}

TEST_CASE("k8s state: the service of a pod is the one service selecting it", "[k8s]") {
  IpCache cache;
  ClusterState st(cache, 0s, true);
  st.apply(EventType::kAdded, pod("shop", "web-1", {"10.0.0.1"}, {"app=web", "tier=front"}));
  st.apply(EventType::kAdded, pod("shop", "db-0", {"10.0.0.2"}, {"app=db"}));
  st.apply(EventType::kAdded, pod("other", "web-1", {"10.0.0.3"}, {"app=web"}));
  CHECK(cache.find(ip("10.0.0.1"))->service.empty());

  st.apply(EventType::kAdded, service("shop", "web", {"10.96.0.1"}, {"app=web"}));
  CHECK(cache.find(ip("10.0.0.1"))->service == "web");
  CHECK(cache.find(ip("10.0.0.3"))->service.empty());  // another namespace
  auto svc = cache.find(ip("10.96.0.1"));
  REQUIRE(svc);
  CHECK(svc->kind == EndpointKind::kService);
  CHECK(svc->name == "web");

  // A headless service does not compete with a cluster-IP one...
  st.apply(EventType::kAdded, service("shop", "web-headless", {}, {"app=web"}, true));
  CHECK(cache.find(ip("10.0.0.1"))->service == "web");
  // ...but names the pods no cluster-IP service selects.
  st.apply(EventType::kAdded, service("shop", "db", {}, {"app=db"}, true));
  CHECK(cache.find(ip("10.0.0.2"))->service == "db");

  // Two cluster-IP services selecting the pod: ambiguous, left empty.
  st.apply(EventType::kAdded, service("shop", "front", {"10.96.0.2"}, {"tier=front"}));
  CHECK(cache.find(ip("10.0.0.1"))->service.empty());
  st.apply(EventType::kDeleted, service("shop", "front", {"10.96.0.2"}, {"tier=front"}));
  CHECK(cache.find(ip("10.0.0.1"))->service == "web");
  CHECK_FALSE(cache.find(ip("10.96.0.2")));

  // Selector change moves the pod out.
  st.apply(EventType::kModified, service("shop", "web", {"10.96.0.1"}, {"app=web", "tier=back"}));
  CHECK(cache.find(ip("10.0.0.1"))->service == "web-headless");
  // A service without selector selects nothing.
  st.apply(EventType::kAdded, service("shop", "manual", {"10.96.0.3"}, {}));
  CHECK(cache.find(ip("10.0.0.2"))->service == "db");
}

TEST_CASE("k8s state: node zone and namespace observe changes re-derive pods", "[k8s]") {
  IpCache cache;
  ClusterState st(cache, 0s, true);
  st.apply(EventType::kAdded, pod("a", "p1", {"10.0.0.1"}, {}, {}, "node-a"));
  st.apply(EventType::kAdded, pod("b", "p2", {"10.0.0.2"}, {}, {}, "node-b"));
  CHECK(cache.find(ip("10.0.0.1"))->zone.empty());
  st.apply(EventType::kAdded, node("node-a", "z1", {"192.168.0.1"}));
  CHECK(cache.find(ip("10.0.0.1"))->zone == "z1");
  CHECK(cache.find(ip("10.0.0.2"))->zone.empty());
  st.apply(EventType::kModified, node("node-a", "z2", {"192.168.0.1"}));
  CHECK(cache.find(ip("10.0.0.1"))->zone == "z2");
  CHECK(cache.find(ip("192.168.0.1"))->zone == "z2");

  NamespaceInfo ns;
  ns.name = "b";
  ns.observe = true;
  st.apply(EventType::kAdded, ns);
  CHECK(cache.find(ip("10.0.0.2"))->observe);
  CHECK_FALSE(cache.find(ip("10.0.0.1"))->observe);
  ns.observe = false;
  st.apply(EventType::kModified, ns);
  CHECK_FALSE(cache.find(ip("10.0.0.2"))->observe);

  // A node update that changes nothing the cache shows keeps the same endpoint.
  auto before = cache.find(ip("192.168.0.1"));
  st.apply(EventType::kModified, node("node-a", "z2", {"192.168.0.1"}));
  CHECK(cache.find(ip("192.168.0.1")) == before);
}

TEST_CASE("k8s state: excluded pods, terminal pods, grace and IP reuse", "[k8s]") {
  IpCache cache;
  ClusterState st(cache, std::chrono::hours(1), true);
  PodInfo host = pod("kube-system", "proxy", {"192.168.0.1"});
  host.host_network = true;
  st.apply(EventType::kAdded, host);
  CHECK_FALSE(cache.find(ip("192.168.0.1")));
  st.apply(EventType::kAdded, pod("a", "pending", {}));
  CHECK(st.count(Resource::kPods) == 0);

  st.apply(EventType::kAdded, pod("a", "job-x", {"10.0.0.1"}));
  PodInfo done = pod("a", "job-x", {"10.0.0.1"});
  done.terminal = true;
  st.apply(EventType::kModified, done);
  // Finished: gone from the state, still resolving during the grace period.
  CHECK(st.count(Resource::kPods) == 0);
  auto lingering = cache.find(ip("10.0.0.1"));
  REQUIRE(lingering);
  CHECK(lingering->name == "job-x");
  CHECK(cache.stats().lingering == 1);

  // The IP goes to a new pod at once.
  st.apply(EventType::kAdded, pod("a", "new", {"10.0.0.1"}));
  CHECK(cache.find(ip("10.0.0.1"))->name == "new");
  cache.expire(std::chrono::steady_clock::now() + std::chrono::hours(2));
  CHECK(cache.find(ip("10.0.0.1"))->name == "new");

  st.apply(EventType::kDeleted, pod("a", "new", {"10.0.0.1"}));
  CHECK(cache.find(ip("10.0.0.1")));
  cache.expire(std::chrono::steady_clock::now() + std::chrono::hours(2));
  CHECK_FALSE(cache.find(ip("10.0.0.1")));
}

TEST_CASE("k8s state: a relist replaces everything in one update without dropping live pods", "[k8s]") {
  IpCache cache;
  ClusterState st(cache, 0s, true);
  st.replace(std::vector<PodInfo>{pod("a", "keep", {"10.0.0.1"}), pod("a", "gone", {"10.0.0.2"})});
  st.replace(std::vector<ServiceInfo>{service("a", "svc", {"10.96.0.1"}, {"app=x"})});
  const uint64_t updates = cache.stats().updates;

  st.replace(std::vector<PodInfo>{pod("a", "keep", {"10.0.0.1"}), pod("a", "added", {"10.0.0.3"})});
  CHECK(cache.stats().updates == updates + 1);
  CHECK(cache.find(ip("10.0.0.1")));
  CHECK_FALSE(cache.find(ip("10.0.0.2")));
  CHECK(cache.find(ip("10.0.0.3")));
  CHECK(cache.find(ip("10.96.0.1")));  // other resources stay

  // A relist of another resource republishes pods unchanged.
  st.replace(std::vector<NodeInfo>{node("node-a", "z", {"192.168.0.9"})});
  CHECK(cache.find(ip("10.0.0.1"))->zone == "z");
  CHECK(cache.find(ip("10.0.0.3")));
  CHECK(cache.stats().endpoints == 4);
}
