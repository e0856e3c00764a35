#include "k8s/cluster_state.hpp"

#include <algorithm>
#include <memory>
#include <string>
#include <string_view>
#include <utility>

#include <xxhash.h>

namespace retina::k8s {
namespace {

constexpr std::string_view kTemplateHashLabel = "pod-template-hash";
// A derived change touching more pods than this is published with one
// replace_source instead of one upsert per pod.
constexpr size_t kBulkThreshold = 512;

// The CronJob controller names its Jobs <cronjob>-<scheduled time in minutes
// since the epoch>: eight or more digits for any time after 1989.
std::string_view cronjob_of(std::string_view job) {
  const size_t dash = job.rfind('-');
  if (dash == std::string_view::npos || dash == 0) return {};
  const std::string_view suffix = job.substr(dash + 1);
  if (suffix.size() < 8) return {};
  for (char c : suffix) {
    if (c < '0' || c > '9') return {};
  }
  return job.substr(0, dash);
}

bool same_endpoint(const EndpointPtr& a, const EndpointPtr& b) {
  if (!a || !b) return !a && !b;
  return a->kind == b->kind && a->namespace_ == b->namespace_ && a->name == b->name && a->labels == b->labels &&
         a->workloads == b->workloads && a->node_name == b->node_name && a->zone == b->zone &&
         a->service == b->service && a->ips == b->ips && a->observe == b->observe;
}

}  // namespace

size_t ClusterState::PodHash::operator()(const PodKey& k) const noexcept {
  return XXH3_64bits_withSeed(k.name.data(), k.name.size(), XXH3_64bits(k.ns.data(), k.ns.size()));
}

ClusterState::ClusterState(IpCache& cache, std::chrono::nanoseconds grace, bool use_replicasets)
    : cache_(cache), grace_(grace), use_replicasets_(use_replicasets) {}

// ---- derivation ----

std::vector<Workload> ClusterState::workloads_for(const std::string& ns, OwnerView owner,
                                                  const std::vector<std::string>& labels) const {
  if (owner.empty()) return {};
  if (owner.kind == "ReplicaSet") {
    if (use_replicasets_) {
      scratch_key_.assign(ns).append("/").append(owner.name);
      if (auto it = replicasets_.find(scratch_key_); it != replicasets_.end()) {
        if (!it->second.empty()) return {Workload{it->second.kind, it->second.name}};
        return {Workload{"ReplicaSet", std::string(owner.name)}};
      }
    }
    // Deployment-made ReplicaSets are named <deployment>-<pod-template-hash>.
    const std::string_view hash = label_value(labels, kTemplateHashLabel);
    const std::string_view rs = owner.name;
    if (!hash.empty() && rs.size() > hash.size() + 1 && rs.ends_with(hash) && rs[rs.size() - hash.size() - 1] == '-') {
      return {Workload{"Deployment", std::string(rs.substr(0, rs.size() - hash.size() - 1))}};
    }
    return {Workload{"ReplicaSet", std::string(owner.name)}};
  }
  if (owner.kind == "Job") {
    if (const std::string_view cj = cronjob_of(owner.name); !cj.empty()) return {Workload{"CronJob", std::string(cj)}};
  }
  return {Workload{std::string(owner.kind), std::string(owner.name)}};
}

std::string ClusterState::service_for(const std::string& ns, const std::vector<std::string>& labels) const {
  const std::string prefix = ns + "/";
  const std::string* with_ip = nullptr;
  const std::string* headless = nullptr;
  size_t with_ip_count = 0, headless_count = 0;
  for (auto it = services_.lower_bound(prefix); it != services_.end() && it->first.starts_with(prefix); ++it) {
    const ServiceRecord& s = it->second;
    if (s.selector.empty()) continue;  // a service without selector selects no pods
    if (!std::includes(labels.begin(), labels.end(), s.selector.begin(), s.selector.end())) continue;
    if (s.headless || !s.ep) {
      ++headless_count;
      headless = &it->first;
    } else {
      ++with_ip_count;
      with_ip = &it->first;
    }
  }
  const std::string* pick = nullptr;
  if (with_ip_count == 1) {
    pick = with_ip;
  } else if (with_ip_count == 0 && headless_count == 1) {
    pick = headless;
  }
  return pick ? pick->substr(prefix.size()) : std::string();
}

ClusterState::Derived ClusterState::derive(const std::string& ns, const std::string& node,
                                           const std::vector<std::string>& labels, OwnerView owner,
                                           bool own_observe) const {
  Derived d;
  d.workloads = workloads_for(ns, owner, labels);
  if (auto it = nodes_.find(node); it != nodes_.end()) d.zone = it->second.zone;
  d.service = service_for(ns, labels);
  d.observe = own_observe;
  if (!d.observe) {
    if (auto it = namespaces_.find(ns); it != namespaces_.end()) d.observe = it->second;
  }
  return d;
}

bool ClusterState::same_derived(const Endpoint& ep, const Derived& d) {
  return ep.workloads == d.workloads && ep.zone == d.zone && ep.service == d.service && ep.observe == d.observe;
}

EndpointPtr ClusterState::make_pod_endpoint(PodInfo&& p, Derived&& d) const {
  auto ep = std::make_shared<Endpoint>();
  ep->kind = EndpointKind::kPod;
  ep->namespace_ = std::move(p.namespace_);
  ep->name = std::move(p.name);
  ep->labels = std::move(p.labels);
  ep->node_name = std::move(p.node_name);
  ep->ips = std::move(p.ips);
  ep->workloads = std::move(d.workloads);
  ep->zone = std::move(d.zone);
  ep->service = std::move(d.service);
  ep->observe = d.observe;
  return ep;
}

EndpointPtr ClusterState::with_derived(const Endpoint& base, Derived&& d) const {
  auto ep = std::make_shared<Endpoint>(base);
  ep->workloads = std::move(d.workloads);
  ep->zone = std::move(d.zone);
  ep->service = std::move(d.service);
  ep->observe = d.observe;
  return ep;
}

template <class Pred>
std::vector<EndpointPtr> ClusterState::rederive(Pred pred) {
  std::vector<EndpointPtr> changed;
  for (const PodRecord& rec : pods_) {
    const Endpoint& ep = *rec.ep;
    if (!pred(ep, rec)) continue;
    Derived d = derive(ep.namespace_, ep.node_name, ep.labels, rec.owner(), rec.own_observe);
    if (same_derived(ep, d)) continue;
    rec.ep = with_derived(ep, std::move(d));
    changed.push_back(rec.ep);
  }
  return changed;
}

template <class Pred>
void ClusterState::rederive_and_publish(Pred pred) {
  std::vector<EndpointPtr> changed = rederive(pred);
  if (changed.size() > kBulkThreshold) {
    publish_all();
    return;
  }
  for (auto& ep : changed) cache_.upsert(std::move(ep), EndpointSource::kKubernetes);
}

void ClusterState::rederive_all_and_replace() {
  rederive([](const Endpoint&, const PodRecord&) { return true; });
  publish_all();
}

void ClusterState::publish_all() {
  std::vector<EndpointPtr> all;
  all.reserve(pods_.size() + services_.size() + nodes_.size());
  for (const PodRecord& rec : pods_) all.push_back(rec.ep);
  for (const auto& [k, rec] : services_) {
    if (rec.ep) all.push_back(rec.ep);
  }
  for (const auto& [k, rec] : nodes_) {
    if (rec.ep) all.push_back(rec.ep);
  }
  cache_.replace_source(EndpointSource::kKubernetes, std::move(all), grace_);
}

void ClusterState::remove_endpoint(const EndpointPtr& ep) {
  if (ep) cache_.remove(ep->key(), EndpointSource::kKubernetes, grace_);
}

void ClusterState::republish(EndpointPtr& current, EndpointPtr next) {
  if (same_endpoint(current, next)) return;  // keep the published object
  if (next) {
    cache_.upsert(next, EndpointSource::kKubernetes);
  } else {
    remove_endpoint(current);
  }
  current = std::move(next);
}

// ---- pods ----

void ClusterState::replace(std::vector<PodInfo> items) {
  std::lock_guard l(mu_);
  PodSet next;
  next.reserve(items.size());
  for (auto& p : items) {
    if (!publishable(p)) continue;
    Derived d = derive(p.namespace_, p.node_name, p.labels, OwnerView{p.owner.kind, p.owner.name}, p.observe);
    PodRecord rec{nullptr, std::move(p.owner.kind), std::move(p.owner.name), p.observe};
    rec.ep = make_pod_endpoint(std::move(p), std::move(d));
    // Of two with the same key the later one wins.
    if (auto it = next.find(PodKey{rec.ep->namespace_, rec.ep->name}); it != next.end()) next.erase(it);
    next.insert(std::move(rec));
  }
  pods_ = std::move(next);
  publish_all();
}

void ClusterState::apply(EventType type, PodInfo p) {
  std::lock_guard l(mu_);
  auto it = pods_.find(PodKey{p.namespace_, p.name});
  if (type == EventType::kDeleted || !publishable(p)) {
    // Deleted, finished, host-network or not yet addressed: not (or no longer) in the cache.
    if (it != pods_.end()) {
      remove_endpoint(it->ep);
      pods_.erase(it);
    }
    return;
  }
  Derived d = derive(p.namespace_, p.node_name, p.labels, OwnerView{p.owner.kind, p.owner.name}, p.observe);
  PodRecord rec{nullptr, std::move(p.owner.kind), std::move(p.owner.name), p.observe};
  rec.ep = make_pod_endpoint(std::move(p), std::move(d));
  if (it != pods_.end()) {
    it->owner_kind = std::move(rec.owner_kind);
    it->owner_name = std::move(rec.owner_name);
    it->own_observe = rec.own_observe;
    // Nothing the cache shows changed (status churn): keep the published endpoint.
    if (same_endpoint(it->ep, rec.ep)) return;
    it->ep = std::move(rec.ep);
  } else {
    it = pods_.insert(std::move(rec)).first;
  }
  cache_.upsert(it->ep, EndpointSource::kKubernetes);
}

// ---- services ----

namespace {

EndpointPtr service_endpoint(ServiceInfo& s) {
  if (s.cluster_ips.empty()) return nullptr;
  auto ep = std::make_shared<Endpoint>();
  ep->kind = EndpointKind::kService;
  ep->namespace_ = s.namespace_;
  ep->name = s.name;
  ep->service = s.name;
  ep->labels = std::move(s.labels);
  ep->ips = std::move(s.cluster_ips);
  return ep;
}


}  // namespace

void ClusterState::replace(std::vector<ServiceInfo> items) {
  std::lock_guard l(mu_);
  services_.clear();
  for (auto& s : items) {
    std::string key = key_of(s.namespace_, s.name);
    ServiceRecord rec{std::move(s.selector), s.headless, nullptr};
    rec.ep = service_endpoint(s);
    services_.insert_or_assign(std::move(key), std::move(rec));
  }
  rederive_all_and_replace();
}

void ClusterState::apply(EventType type, ServiceInfo s) {
  std::lock_guard l(mu_);
  const std::string ns = s.namespace_;
  auto it = services_.find(key_of(s.namespace_, s.name));
  bool selection_changed = false;
  if (type == EventType::kDeleted) {
    if (it == services_.end()) return;
    remove_endpoint(it->second.ep);
    selection_changed = !it->second.selector.empty();
    services_.erase(it);
  } else {
    EndpointPtr ep = service_endpoint(s);
    if (it == services_.end()) {
      it = services_.emplace(key_of(s.namespace_, s.name), ServiceRecord{}).first;
      selection_changed = !s.selector.empty();
    } else {
      const ServiceRecord& old = it->second;
      selection_changed = old.selector != s.selector || old.headless != s.headless || !old.ep != !ep;
    }
    it->second.selector = std::move(s.selector);
    it->second.headless = s.headless;
    republish(it->second.ep, std::move(ep));
  }
  if (selection_changed) {
    rederive_and_publish([&](const Endpoint& ep, const PodRecord&) { return ep.namespace_ == ns; });
  }
}

// ---- nodes ----

namespace {

EndpointPtr node_endpoint(NodeInfo& n) {
  if (n.internal_ips.empty()) return nullptr;
  auto ep = std::make_shared<Endpoint>();
  ep->kind = EndpointKind::kNode;
  ep->name = n.name;
  ep->node_name = n.name;
  ep->zone = n.zone;
  ep->labels = std::move(n.labels);
  ep->ips = std::move(n.internal_ips);
  return ep;
}

}  // namespace

void ClusterState::replace(std::vector<NodeInfo> items) {
  std::lock_guard l(mu_);
  nodes_.clear();
  for (auto& n : items) {
    NodeRecord rec{n.zone, nullptr};
    rec.ep = node_endpoint(n);
    nodes_.insert_or_assign(std::move(n.name), std::move(rec));
  }
  rederive_all_and_replace();
}

void ClusterState::apply(EventType type, NodeInfo n) {
  std::lock_guard l(mu_);
  const std::string name = n.name;
  auto it = nodes_.find(name);
  bool zone_changed = false;
  if (type == EventType::kDeleted) {
    if (it == nodes_.end()) return;
    remove_endpoint(it->second.ep);
    zone_changed = !it->second.zone.empty();
    nodes_.erase(it);
  } else {
    EndpointPtr ep = node_endpoint(n);
    if (it == nodes_.end()) {
      it = nodes_.emplace(name, NodeRecord{}).first;
      zone_changed = !n.zone.empty();
    } else {
      zone_changed = it->second.zone != n.zone;
    }
    it->second.zone = std::move(n.zone);
    republish(it->second.ep, std::move(ep));  // heartbeats and condition updates change nothing here
  }
  if (zone_changed) {
    rederive_and_publish([&](const Endpoint& ep, const PodRecord&) { return ep.node_name == name; });
  }
}

// ---- namespaces ----

void ClusterState::replace(std::vector<NamespaceInfo> items) {
  std::lock_guard l(mu_);
  namespaces_.clear();
  for (auto& ns : items) namespaces_.insert_or_assign(std::move(ns.name), ns.observe);
  rederive_all_and_replace();
}

void ClusterState::apply(EventType type, NamespaceInfo ns) {
  std::lock_guard l(mu_);
  auto it = namespaces_.find(ns.name);
  const bool before = it != namespaces_.end() && it->second;
  const bool after = type != EventType::kDeleted && ns.observe;
  if (type == EventType::kDeleted) {
    if (it != namespaces_.end()) namespaces_.erase(it);
  } else {
    namespaces_.insert_or_assign(ns.name, ns.observe);
  }
  if (before != after) {
    rederive_and_publish([&](const Endpoint& ep, const PodRecord&) { return ep.namespace_ == ns.name; });
  }
}

// ---- replica sets ----

void ClusterState::replace(std::vector<ReplicaSetInfo> items) {
  std::lock_guard l(mu_);
  replicasets_.clear();
  for (auto& rs : items) replicasets_.insert_or_assign(key_of(rs.namespace_, rs.name), std::move(rs.owner));
  rederive_all_and_replace();
}

void ClusterState::apply(EventType type, ReplicaSetInfo rs) {
  std::lock_guard l(mu_);
  const std::string key = key_of(rs.namespace_, rs.name);
  auto it = replicasets_.find(key);
  if (type == EventType::kDeleted) {
    if (it == replicasets_.end()) return;
    replicasets_.erase(it);
  } else if (it != replicasets_.end()) {
    if (it->second == rs.owner) return;  // scale and status updates
    it->second = rs.owner;
  } else {
    replicasets_.emplace(key, rs.owner);
  }
  rederive_and_publish([&](const Endpoint& ep, const PodRecord& rec) {
    return rec.owner_kind == "ReplicaSet" && rec.owner_name == rs.name && ep.namespace_ == rs.namespace_;
  });
}

size_t ClusterState::count(Resource r) const {
  std::lock_guard l(mu_);
  switch (r) {
    case Resource::kPods: return pods_.size();
    case Resource::kServices: return services_.size();
    case Resource::kNodes: return nodes_.size();
    case Resource::kNamespaces: return namespaces_.size();
    case Resource::kReplicaSets: return replicasets_.size();
    default: return 0;
  }
}

}  // namespace retina::k8s
