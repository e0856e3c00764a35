// What an IP address belongs to: a pod, a service, a node, or nothing known.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "retina/interned.hpp"
#include "retina/ip.hpp"

namespace retina {

enum class EndpointKind : uint8_t { kUnknown = 0, kPod, kService, kNode, kExternal };

const char* to_string(EndpointKind kind);

struct Workload {
  std::string kind;  // Deployment, StatefulSet, DaemonSet, ReplicaSet, Job, CronJob, Pod
  std::string name;
  friend bool operator==(const Workload&, const Workload&) = default;
};

// Immutable once published into the IpCache: readers hold plain pointers.
//
// Fields that repeat across pods (namespace, node, zone, service, the
// workload chain, the label set) are interned: one shared copy per distinct
// value, an 8-byte handle here. They read like std::string / std::vector
// (see interned.hpp) and are assigned from them.
struct Endpoint {
  EndpointKind kind = EndpointKind::kUnknown;
  bool observe = false;      // annotated retina.sh: observe (pod or namespace)
  IString namespace_;        // empty for nodes
  std::string name;          // pod, service or node name
  Interned<std::vector<std::string>> labels;  // "key=value", sorted
  Interned<std::vector<Workload>> workloads;  // owner chain top, e.g. Deployment/web
  IString node_name;
  IString zone;              // topology.kubernetes.io/zone of the node
  IString service;           // service selecting this pod, when known
  std::vector<IpAddr> ips;

  // The identity used for updates and deletes: "<kind>/<namespace>/<name>".
  std::string key() const;
  const std::string& pod_name() const { return name; }
  const Workload* workload() const { return workloads.empty() ? nullptr : &workloads.front(); }
};

using EndpointPtr = std::shared_ptr<const Endpoint>;

}  // namespace retina
