// The few fields of each Kubernetes object the watcher needs, parsed straight
// from the API server's JSON; everything else in an object is skipped.
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "retina/endpoint.hpp"
#include "retina/error.hpp"
#include "retina/ip.hpp"
#include "retina/k8s/watcher.hpp"

namespace retina::k8s {

// The value of label `key` in sorted "key=value" labels; empty when absent.
inline std::string_view label_value(const std::vector<std::string>& labels, std::string_view key) {
  // Entries starting with `key` sort together from the lower bound of `key` on;
  // "key=value" is among them, after keys that continue with a character below '='.
  auto it = std::lower_bound(labels.begin(), labels.end(), key,
                             [](const std::string& a, std::string_view k) { return std::string_view(a) < k; });
  for (; it != labels.end() && it->starts_with(key); ++it) {
    if (it->size() == key.size()) continue;
    const char next = (*it)[key.size()];
    if (next == '=') return std::string_view(*it).substr(key.size() + 1);
    if (next > '=') break;
  }
  return {};
}

// The object's controller (ownerReferences[controller=true], else the first).
struct OwnerRef {
  std::string kind;
  std::string name;
  bool empty() const { return kind.empty(); }
  friend bool operator==(const OwnerRef&, const OwnerRef&) = default;
};

struct PodInfo {
  std::string namespace_;
  std::string name;
  std::string resource_version;
  std::vector<std::string> labels;  // "key=value", sorted
  bool observe = false;             // annotation retina.sh: observe
  OwnerRef owner;
  std::string node_name;
  bool host_network = false;
  bool terminal = false;       // status.phase Succeeded or Failed
  std::vector<IpAddr> ips;     // status.podIPs, else status.podIP
};

struct ServiceInfo {
  std::string namespace_;
  std::string name;
  std::string resource_version;
  std::vector<std::string> labels;  // "key=value", sorted
  std::vector<std::string> selector;  // "key=value", sorted; empty: selects nothing
  std::vector<IpAddr> cluster_ips;  // spec.clusterIPs, else spec.clusterIP; "None" and "" skipped
  bool headless = false;            // clusterIP None
};

struct NodeInfo {
  std::string name;
  std::string resource_version;
  std::vector<std::string> labels;  // "key=value", sorted
  std::string zone;                 // topology.kubernetes.io/zone
  std::vector<IpAddr> internal_ips; // status.addresses[type=InternalIP]
};

struct NamespaceInfo {
  std::string name;
  std::string resource_version;
  bool observe = false;  // annotation retina.sh: observe
};

struct ReplicaSetInfo {
  std::string namespace_;
  std::string name;
  std::string resource_version;
  OwnerRef owner;  // usually the Deployment
};

struct MetricsConfigurationInfo {
  std::string name;
  std::string resource_version;
  std::string creation_timestamp;  // RFC 3339, compares as text
  Result<MetricsConfigurationSpec> spec = unexpected(Error::invalid("spec: missing"));
};

// A whole object for a consumer that reads its own fields (the capture
// runner's Capture objects): its identity and its minified JSON.
struct RawObject {
  std::string namespace_;
  std::string name;
  std::string uid;
  std::string resource_version;
  std::string json;
};

enum class EventType : uint8_t { kAdded, kModified, kDeleted, kBookmark, kError, kCount };
inline constexpr size_t kEventTypeCount = static_cast<size_t>(EventType::kCount);
const char* to_string(EventType t);  // "ADDED", ...

// A metav1.Status, as sent in ERROR events and non-2xx bodies.
struct ApiStatus {
  int64_t code = 0;
  std::string reason;   // "Expired", "Gone", "NotFound", ...
  std::string message;
};

template <class T>
struct WatchEvent {
  EventType type = EventType::kAdded;
  std::string resource_version;  // of the object, or of the bookmark
  T object;                      // ADDED / MODIFIED / DELETED
  ApiStatus status;              // ERROR
  uint32_t invalid_values = 0;   // unparsable IP addresses skipped
};

template <class T>
struct ListPage {
  std::string resource_version;
  std::string continue_token;
  std::vector<T> items;
  uint32_t invalid_values = 0;  // unparsable IP addresses skipped
};

}  // namespace retina::k8s
