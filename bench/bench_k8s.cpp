// Kubernetes watcher: the initial LIST of a large cluster (parse every page,
// derive endpoints, publish them into the IpCache with one replace_source),
// and the cost of one watch event. Pod JSON is generated in memory in the
// API server's shape (~3.8 KB per pod, most of it fields the watcher skips:
// managedFields, containers, volumes, conditions, container statuses).
//
//   retina_bench --benchmark_filter=K8s
//
// Reports pods/s, the JSON size and the heap the watcher state and the cache
// hold afterwards (glibc mallinfo2, in use after the transient buffers are
// freed), and how much of it is the watcher's own index.
#include <malloc.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <benchmark/benchmark.h>
#include <fmt/format.h>

#include "k8s/cluster_state.hpp"
#include "k8s/json_parse.hpp"
#include "retina/ip_cache.hpp"

using namespace retina;
using namespace retina::k8s;

namespace {

constexpr int kNamespaces = 200;
constexpr int kNodes = 1000;
constexpr int kPodsPerDeployment = 5;
constexpr int kServicesPerNamespace = 20;
constexpr uint32_t kPageSize = 500;

std::string pod_json(int i) {
  const int ns = i % kNamespaces;
  const int deploy = i / kPodsPerDeployment;
  const int node = i % kNodes;
  const std::string hash = fmt::format("{:x}", 0x5f7c9d00 + deploy % 4096);
  const std::string name = fmt::format("svc{}-api-{}-{}-{:05x}", deploy % kServicesPerNamespace, deploy, hash, i);
  const std::string ip = fmt::format("10.{}.{}.{}", 64 + (i >> 16), (i >> 8) & 255, i & 255);
  return fmt::format(
      R"({{"metadata":{{"name":"{name}","generateName":"svc{svc}-api-{deploy}-{hash}-","namespace":"team-{ns}","uid":"6f1e0c2a-8b7d-4c55-9a0e-{i:012x}","resourceVersion":"{rv}","creationTimestamp":"2024-05-01T10:00:00Z",)"
      R"("labels":{{"app":"svc{svc}","app.kubernetes.io/name":"api-{deploy}","app.kubernetes.io/part-of":"shop","pod-template-hash":"{hash}","version":"v1.4.2"}},)"
      R"("annotations":{{"kubectl.kubernetes.io/restartedAt":"2024-05-01T09:58:12Z","prometheus.io/scrape":"true","prometheus.io/port":"9090"{observe}}},)"
      R"("ownerReferences":[{{"apiVersion":"apps/v1","kind":"ReplicaSet","name":"svc{svc}-api-{deploy}-{hash}","uid":"0d9b1e44-2f5c-4b8e-8f31-5a6c7e8d9f00","controller":true,"blockOwnerDeletion":true}}],)"
      R"("managedFields":[{{"manager":"kube-controller-manager","operation":"Update","apiVersion":"v1","time":"2024-05-01T10:00:00Z","fieldsType":"FieldsV1","fieldsV1":{{"f:metadata":{{"f:generateName":{{}},"f:labels":{{".":{{}},"f:app":{{}},"f:pod-template-hash":{{}}}},"f:ownerReferences":{{".":{{}},"k:{{\"uid\":\"0d9b1e44\"}}":{{}}}}}},"f:spec":{{"f:containers":{{"k:{{\"name\":\"api\"}}":{{".":{{}},"f:env":{{}},"f:image":{{}},"f:imagePullPolicy":{{}},"f:name":{{}},"f:ports":{{}},"f:resources":{{}}}}}},"f:dnsPolicy":{{}},"f:restartPolicy":{{}},"f:schedulerName":{{}}}}}}}},)"
      R"({{"manager":"kubelet","operation":"Update","apiVersion":"v1","time":"2024-05-01T10:00:09Z","fieldsType":"FieldsV1","fieldsV1":{{"f:status":{{"f:conditions":{{}},"f:podIP":{{}}}}}},"subresource":"status"}}]}},)"
      R"("spec":{{"volumes":[{{"name":"config","configMap":{{"name":"api-config","defaultMode":420}}}},{{"name":"kube-api-access-x7b2k","projected":{{"sources":[{{"serviceAccountToken":{{"expirationSeconds":3607,"path":"token"}}}},{{"configMap":{{"name":"kube-root-ca.crt","items":[{{"key":"ca.crt","path":"ca.crt"}}]}}}}],"defaultMode":420}}}}],)"
      R"("containers":[{{"name":"api","image":"registry.example.com/shop/api:1.4.2","ports":[{{"name":"http","containerPort":8080,"protocol":"TCP"}},{{"name":"metrics","containerPort":9090,"protocol":"TCP"}}],)"
      R"("env":[{{"name":"LOG_LEVEL","value":"info"}},{{"name":"DB_HOST","value":"postgres.team-{ns}.svc.cluster.local"}},{{"name":"POD_IP","valueFrom":{{"fieldRef":{{"apiVersion":"v1","fieldPath":"status.podIP"}}}}}}],)"
      R"("resources":{{"limits":{{"cpu":"1","memory":"512Mi"}},"requests":{{"cpu":"100m","memory":"128Mi"}}}},"volumeMounts":[{{"name":"config","mountPath":"/etc/api"}},{{"name":"kube-api-access-x7b2k","readOnly":true,"mountPath":"/var/run/secrets/kubernetes.io/serviceaccount"}}],)"
      R"("terminationMessagePath":"/dev/termination-log","terminationMessagePolicy":"File","imagePullPolicy":"IfNotPresent"}}],)"
      R"("restartPolicy":"Always","terminationGracePeriodSeconds":30,"dnsPolicy":"ClusterFirst","serviceAccountName":"default","serviceAccount":"default","nodeName":"node-{node}","securityContext":{{}},"schedulerName":"default-scheduler",)"
      R"("tolerations":[{{"key":"node.kubernetes.io/not-ready","operator":"Exists","effect":"NoExecute","tolerationSeconds":300}}],"priority":0,"enableServiceLinks":true,"preemptionPolicy":"PreemptLowerPriority"}},)"
      R"("status":{{"phase":"Running","conditions":[{{"type":"Initialized","status":"True","lastProbeTime":null,"lastTransitionTime":"2024-05-01T10:00:00Z"}},{{"type":"Ready","status":"True","lastProbeTime":null,"lastTransitionTime":"2024-05-01T10:00:09Z"}},{{"type":"ContainersReady","status":"True","lastProbeTime":null,"lastTransitionTime":"2024-05-01T10:00:09Z"}},{{"type":"PodScheduled","status":"True","lastProbeTime":null,"lastTransitionTime":"2024-05-01T10:00:00Z"}}],)"
      R"("hostIP":"192.168.{hi}.{lo}","podIP":"{ip}","podIPs":[{{"ip":"{ip}"}}],"startTime":"2024-05-01T10:00:00Z",)"
      R"("containerStatuses":[{{"name":"api","state":{{"running":{{"startedAt":"2024-05-01T10:00:05Z"}}}},"lastState":{{}},"ready":true,"restartCount":0,"image":"registry.example.com/shop/api:1.4.2","imageID":"registry.example.com/shop/api@sha256:3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a","containerID":"containerd://9f8e7d6c5b4a39281706f5e4d3c2b1a09f8e7d6c5b4a39281706f5e4d3c2b1a0","started":true}}],"qosClass":"Burstable"}}}})",
      fmt::arg("name", name), fmt::arg("svc", deploy % kServicesPerNamespace), fmt::arg("deploy", deploy),
      fmt::arg("hash", hash), fmt::arg("ns", ns), fmt::arg("i", i), fmt::arg("rv", 100000 + i),
      fmt::arg("observe", i % 10 == 0 ? R"(,"retina.sh":"observe")" : ""), fmt::arg("node", node),
      fmt::arg("hi", node >> 8), fmt::arg("lo", node & 255), fmt::arg("ip", ip));
}

struct Cluster {
  std::vector<std::string> pages;  // LIST pages of kPageSize pods
  size_t json_bytes = 0;
};

const Cluster& cluster(int pods) {
  static std::map<int, std::unique_ptr<Cluster>> cache;
  auto& c = cache[pods];
  if (c) return *c;
  c = std::make_unique<Cluster>();
  for (int start = 0; start < pods; start += kPageSize) {
    const int end = std::min<int>(pods, start + kPageSize);
    std::string page = fmt::format(R"({{"kind":"PodList","apiVersion":"v1","metadata":{{"resourceVersion":"900000"{}}},"items":[)",
                                   end < pods ? fmt::format(R"(,"continue":"tok-{}")", end) : "");
    for (int i = start; i < end; ++i) {
      if (i > start) page.push_back(',');
      page += pod_json(i);
    }
    page += "]}";
    c->json_bytes += page.size();
    c->pages.push_back(std::move(page));
  }
  return *c;
}

// A copy of the pages as the HTTP client delivers them: with spare capacity
// for the parser's padding.
std::vector<std::string> received(const Cluster& c) {
  std::vector<std::string> pages(c.pages.size());
  for (size_t i = 0; i < pages.size(); ++i) {
    pages[i].reserve(c.pages[i].size() + 64);
    pages[i].assign(c.pages[i]);
  }
  return pages;
}

// Everything the pods derive from: nodes with zones, namespaces, replica sets, services.
void seed_other_resources(ClusterState& st, int pods) {
  std::vector<NodeInfo> nodes;
  for (int n = 0; n < kNodes; ++n) {
    NodeInfo node;
    node.name = fmt::format("node-{}", n);
    node.zone = fmt::format("zone-{}", n % 3);
    node.internal_ips.push_back(*IpAddr::parse(fmt::format("192.168.{}.{}", n >> 8, n & 255)));
    nodes.push_back(std::move(node));
  }
  st.replace(std::move(nodes));
  std::vector<NamespaceInfo> namespaces;
  for (int ns = 0; ns < kNamespaces; ++ns) namespaces.push_back({fmt::format("team-{}", ns), "", ns % 7 == 0});
  st.replace(std::move(namespaces));
  std::vector<ServiceInfo> services;
  for (int ns = 0; ns < kNamespaces; ++ns) {
    for (int s = 0; s < kServicesPerNamespace; ++s) {
      ServiceInfo svc;
      svc.namespace_ = fmt::format("team-{}", ns);
      svc.name = fmt::format("svc{}", s);
      svc.selector = {fmt::format("app=svc{}", s)};
      svc.cluster_ips.push_back(*IpAddr::parse(fmt::format("10.96.{}.{}", ns, s)));
      services.push_back(std::move(svc));
    }
  }
  st.replace(std::move(services));
  std::vector<ReplicaSetInfo> rss;
  for (int d = 0; d * kPodsPerDeployment < pods; ++d) {
    const std::string hash = fmt::format("{:x}", 0x5f7c9d00 + d % 4096);
    rss.push_back({fmt::format("team-{}", (d * kPodsPerDeployment) % kNamespaces),
                   fmt::format("svc{}-api-{}-{}", d % kServicesPerNamespace, d, hash), "",
                   {"Deployment", fmt::format("svc{}-api-{}", d % kServicesPerNamespace, d)}});
  }
  st.replace(std::move(rss));
}

size_t heap_in_use() {
  malloc_trim(0);
  const struct mallinfo2 mi = mallinfo2();
  return mi.uordblks + mi.hblkhd;
}

// Parse every LIST page of `pods` pods and apply the list to a fresh cache.
void BM_K8sInitialPodList(benchmark::State& state) {
  const int pods = static_cast<int>(state.range(0));
  const Cluster& c = cluster(pods);
  double heap_mb = 0, state_mb = 0;
  for (auto _ : state) {
    state.PauseTiming();
    auto cache = std::make_unique<IpCache>();
    auto st = std::make_unique<ClusterState>(*cache, std::chrono::seconds(30), true);
    seed_other_resources(*st, pods);
    auto parser = std::make_unique<JsonParser>();
    const size_t before = heap_in_use();
    std::vector<std::string> pages = received(c);
    state.ResumeTiming();

    ListPage<PodInfo> list;
    for (auto& page : pages) {
      if (!parser->parse_list(page, list)) state.SkipWithError("parse failed");
    }
    st->replace(std::move(list.items));

    state.PauseTiming();
    if (cache->stats().endpoints < static_cast<uint64_t>(pods)) state.SkipWithError("pods missing from the cache");
    pages.clear();
    pages.shrink_to_fit();
    parser.reset();
    const size_t with_state = heap_in_use();
    heap_mb = static_cast<double>(with_state - before) / (1 << 20);
    st.reset();  // the endpoints stay, shared with the cache
    state_mb = static_cast<double>(with_state - heap_in_use()) / (1 << 20);
    cache.reset();
    state.ResumeTiming();
  }
  state.SetItemsProcessed(state.iterations() * pods);
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(c.json_bytes));
  state.counters["json_MB"] = static_cast<double>(c.json_bytes) / (1 << 20);
  state.counters["bytes_per_pod_json"] = static_cast<double>(c.json_bytes) / pods;
  state.counters["heap_MB"] = heap_mb;
  state.counters["heap_bytes_per_pod"] = heap_mb * (1 << 20) / pods;
  // The watcher's own index (keys, owners) on top of the endpoints the cache holds.
  state.counters["state_bytes_per_pod"] = state_mb * (1 << 20) / pods;
}
BENCHMARK(BM_K8sInitialPodList)->Arg(10000)->Arg(100000)->Unit(benchmark::kMillisecond)->UseRealTime();

// The parsing part alone: every LIST page into PodInfo structs.
void BM_K8sParsePodList(benchmark::State& state) {
  const int pods = static_cast<int>(state.range(0));
  const Cluster& c = cluster(pods);
  JsonParser parser;
  for (auto _ : state) {
    state.PauseTiming();
    std::vector<std::string> pages = received(c);
    state.ResumeTiming();
    ListPage<PodInfo> list;
    for (auto& page : pages) {
      if (!parser.parse_list(page, list)) state.SkipWithError("parse failed");
    }
    benchmark::DoNotOptimize(list.items.data());
    state.PauseTiming();
    list = {};
    pages.clear();
    state.ResumeTiming();
  }
  state.SetItemsProcessed(state.iterations() * pods);
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(c.json_bytes));
}
BENCHMARK(BM_K8sParsePodList)->Arg(100000)->Unit(benchmark::kMillisecond)->UseRealTime();

// One MODIFIED watch event that changes a label of a pod: parse, derive, upsert.
void BM_K8sWatchEvent(benchmark::State& state) {
  IpCache cache;
  ClusterState st(cache, std::chrono::seconds(30), true);
  seed_other_resources(st, 1000);
  JsonParser parser;
  std::vector<std::string> lines;
  for (int i = 0; i < 2; ++i) {
    std::string pod = pod_json(42);
    if (i) pod.replace(pod.find("\"version\":\"v1.4.2\""), 18, "\"version\":\"v1.4.3\"");
    lines.push_back(R"({"type":"MODIFIED","object":)" + pod + "}");
  }
  size_t n = 0;
  for (auto _ : state) {
    auto ev = parser.parse_event<PodInfo>(lines[n++ & 1]);
    if (!ev) state.SkipWithError("parse failed");
    st.apply(ev->type, std::move(ev->object));
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(lines[0].size()));
}
BENCHMARK(BM_K8sWatchEvent);

}  // namespace
