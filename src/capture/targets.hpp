// Which interfaces a capture listens on, and what extra filter each needs.
#pragma once

#include <string>
#include <vector>

#include "retina/capture.hpp"
#include "retina/ip.hpp"

namespace retina::capture {

struct CaptureInterface {
  std::string name;
  // Restricts the interface to the selected pods when it is shared (the
  // node capture of a pod whose veth was not found): "host A or host B".
  std::string pod_filter;
};

struct SelectedPod {
  std::string namespace_;
  std::string name;
  std::vector<IpAddr> ips;
};

struct Targets {
  std::vector<SelectedPod> pods;
  std::vector<CaptureInterface> interfaces;
  std::vector<std::string> notes;  // e.g. a pod whose veth was not found
};

// Pods of this node matching the spec's selectors or named in podNames,
// through the IP cache.
std::vector<SelectedPod> select_pods(const Spec& spec, const IpCache& cache, const std::string& node_name);

// Host-side veth of each pod IP: the veth whose peer, in another network
// namespace (/run/netns/* or a process's), carries the address. IPs not
// found map to nothing.
// `denied` counts namespaces that could not be entered (no CAP_SYS_ADMIN).
std::vector<std::pair<IpAddr, std::string>> find_pod_veths(const std::vector<IpAddr>& ips, size_t* denied = nullptr);

// Every host interface that is up, loopback excluded.
std::vector<std::string> host_interfaces();

// Resolves the spec to interfaces; kInvalidArgument when nothing matches
// (an unknown selector, a named interface that does not exist).
Result<Targets> resolve_targets(const Spec& spec, const IpCache* cache, const std::string& node_name);

}  // namespace retina::capture
