// Running the agent with a given capability set, as a container runtime
// starts it: the DaemonSet's set read from the rendered manifest, and the
// setpriv command line that gives a root process exactly that set.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "retina/capabilities.hpp"

namespace retina::test {

// securityContext.capabilities.add of the retina container in
// deploy/kubernetes/daemonset.yaml, as Kubernetes spells them ("NET_ADMIN").
std::vector<std::string> daemonset_capabilities();
CapabilitySet to_capability_set(const std::vector<std::string>& names);

// setpriv with no inheritable or ambient capabilities and a bounding set of
// exactly `caps`: a root process's permitted and effective sets after exec
// are `caps` and nothing else, as under a container runtime.
std::vector<std::string> setpriv_wrapper(const std::vector<std::string>& caps);

// RETINA_AGENT_CAPS: "daemonset" runs every spawned agent with the
// DaemonSet's set, or a comma-separated list ("BPF,NET_RAW") with that;
// nullopt when unset. Read by AgentProcess::start for agents started
// without a wrapper of their own.
std::optional<std::vector<std::string>> agent_capabilities_from_env();

// The Cap* sets of a process (/proc/<pid>/status).
ThreadCapabilities process_capabilities(int pid);

}  // namespace retina::test
