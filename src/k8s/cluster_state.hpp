// What the watcher knows about the cluster, reduced to what endpoints need,
// and the derivation of pod endpoints from it:
//   workload  the pod's controller; ReplicaSet -> its Deployment (from the
//             ReplicaSet's owner, else the pod-template-hash name convention),
//             Job -> CronJob by the <cronjob>-<minutes> name convention
//   zone      topology.kubernetes.io/zone of the pod's node
//   observe   retina.sh: observe on the pod or on its namespace
//   service   the one service in the pod's namespace whose selector matches
//             the pod's labels (services with a cluster IP first; headless
//             only when no cluster-IP service matches); empty when none or
//             several match
// Every change is pushed into the IpCache as EndpointSource::kKubernetes:
// single objects with upsert/remove (deletions keep resolving for the grace
// period), a relist or a change touching many pods with one replace_source.
#pragma once

#include <chrono>
#include <cstddef>
#include <mutex>
#include <string>
#include <vector>

#include <map>

#include <absl/container/flat_hash_map.h>
#include <absl/container/flat_hash_set.h>

#include "k8s/objects.hpp"
#include "retina/endpoint.hpp"
#include "retina/ip_cache.hpp"

namespace retina::k8s {

class ClusterState {
 public:
  // With use_replicasets false, Deployments are always found by the name convention.
  ClusterState(IpCache& cache, std::chrono::nanoseconds grace, bool use_replicasets);

  // A completed LIST: the resource's objects become exactly `items`, and the
  // whole kKubernetes contribution is republished in one replace_source.
  void replace(std::vector<PodInfo> items);
  void replace(std::vector<ServiceInfo> items);
  void replace(std::vector<NodeInfo> items);
  void replace(std::vector<NamespaceInfo> items);
  void replace(std::vector<ReplicaSetInfo> items);

  // One watch event (ADDED, MODIFIED or DELETED).
  void apply(EventType type, PodInfo obj);
  void apply(EventType type, ServiceInfo obj);
  void apply(EventType type, NodeInfo obj);
  void apply(EventType type, NamespaceInfo obj);
  void apply(EventType type, ReplicaSetInfo obj);

  size_t count(Resource r) const;

 private:
  // The owner as derivation reads it: from a parsed object or a record.
  struct OwnerView {
    std::string_view kind, name;
    bool empty() const { return kind.empty(); }
  };
  // A pod, keyed by its endpoint's namespace and name (which never change
  // for a record): no key string of its own. Set elements are const; the
  // members that are not part of the key are mutable.
  struct PodRecord {
    mutable EndpointPtr ep;  // as published
    mutable IString owner_kind, owner_name;  // interned: a ReplicaSet's pods share them
    mutable bool own_observe = false;
    OwnerView owner() const { return {owner_kind.view(), owner_name.view()}; }
  };
  struct PodKey {
    std::string_view ns, name;
  };
  struct PodHash {
    using is_transparent = void;
    size_t operator()(const PodKey& k) const noexcept;
    size_t operator()(const PodRecord& r) const noexcept { return (*this)(PodKey{r.ep->namespace_, r.ep->name}); }
  };
  struct PodEq {
    using is_transparent = void;
    static PodKey key(const PodRecord& r) { return {r.ep->namespace_, r.ep->name}; }
    static PodKey key(const PodKey& k) { return k; }
    template <class A, class B>
    bool operator()(const A& a, const B& b) const noexcept {
      const PodKey x = key(a), y = key(b);
      return x.ns == y.ns && x.name == y.name;
    }
  };
  using PodSet = absl::flat_hash_set<PodRecord, PodHash, PodEq>;
  struct ServiceRecord {
    std::vector<std::string> selector;  // "key=value", sorted
    bool headless = false;
    EndpointPtr ep;  // null without a cluster IP
  };
  struct NodeRecord {
    std::string zone;
    EndpointPtr ep;  // null without an InternalIP
  };
  struct Derived {
    std::vector<Workload> workloads;
    std::string zone;
    std::string service;
    bool observe = false;
  };

  static bool publishable(const PodInfo& p) { return !p.host_network && !p.terminal && !p.ips.empty(); }
  static std::string key_of(const std::string& ns, const std::string& name) { return ns + "/" + name; }

  Derived derive(const std::string& ns, const std::string& node, const std::vector<std::string>& labels,
                 OwnerView owner, bool own_observe) const;
  std::vector<Workload> workloads_for(const std::string& ns, OwnerView owner,
                                      const std::vector<std::string>& labels) const;
  std::string service_for(const std::string& ns, const std::vector<std::string>& labels) const;
  static bool same_derived(const Endpoint& ep, const Derived& d);
  EndpointPtr make_pod_endpoint(PodInfo&& p, Derived&& d) const;
  EndpointPtr with_derived(const Endpoint& base, Derived&& d) const;

  // Re-derives the pods matching pred(endpoint, record); returns those that changed.
  template <class Pred>
  std::vector<EndpointPtr> rederive(Pred pred);
  // ... and publishes them.
  template <class Pred>
  void rederive_and_publish(Pred pred);
  // After a relist of something pods derive from.
  void rederive_all_and_replace();
  void publish_all();
  void remove_endpoint(const EndpointPtr& ep);
  // Makes `next` the published endpoint in place of `current`: nothing when
  // the content is the same, a removal (with grace) when `next` is null.
  void republish(EndpointPtr& current, EndpointPtr next);

  IpCache& cache_;
  const std::chrono::nanoseconds grace_;
  const bool use_replicasets_;

  mutable std::mutex mu_;
  mutable std::string scratch_key_;  // lookups by "ns/name" without allocating
  PodSet pods_;
  std::map<std::string, ServiceRecord> services_;            // "ns/name"; ordered so a namespace is a range
  absl::flat_hash_map<std::string, NodeRecord> nodes_;       // name
  absl::flat_hash_map<std::string, bool> namespaces_;        // name -> observe
  absl::flat_hash_map<std::string, OwnerRef> replicasets_;   // "ns/name" -> owner
};

}  // namespace retina::k8s
