// The engine composes the four parts: eBPF loader (plugins), flow decoder
// and enricher (pipeline), IP-to-object cache, and metric aggregators
// (basic, and advanced with enablePodLevel). With enableKubernetes (or a
// kubeconfig) it runs the Kubernetes watcher, which feeds the cache and
// hands MetricsConfiguration changes to the advanced metrics. The agent is
// a thin main over it; other programs embed it the same way.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "retina/config.hpp"
#include "retina/error.hpp"
#include "retina/features.hpp"
#include "retina/ip_cache.hpp"
#include "retina/k8s/watcher.hpp"
#include "retina/pipeline.hpp"
#include "retina/plugin.hpp"

namespace retina {

namespace metrics {
class Registry;
class AdvancedAggregator;
}  // namespace metrics

// The Kubernetes watcher as /healthz shows it. It never fails the agent's
// health once running: while the API server is unreachable the cache keeps
// serving the last known endpoints ("degraded").
struct KubernetesHealth {
  // "disabled", "failed" (could not be configured: see reason), "syncing"
  // (first LIST not done), "synced", or "degraded" (a watch is down or the
  // last exchange failed; the last known state is served).
  std::string state = "disabled";
  std::string reason;
  std::string server;
  std::string context;  // "local" (this node's pods) or "remote" (all pods)
  std::vector<k8s::ResourceStatus> resources;  // the watched ones
};

// Where the advanced metrics' configuration comes from, for /healthz.
struct AdvancedMetricsHealth {
  bool enabled = false;
  std::string context;        // "local" or "remote"
  std::string configuration;  // "agent config" or "MetricsConfiguration/<name>"
  uint64_t generation = 0;    // configurations applied
  bool pending = false;       // a configuration is queued, not yet applied
  std::string last_error;     // the last rejected MetricsConfiguration, if any
};

// The flow log (flowLogPath) as /healthz shows it. A full or failing disk
// never fails the agent's health: flows it cannot write count as lost.
struct FlowLogHealth {
  std::string state = "disabled";  // "disabled", "writing", "failing" (writes fail), "failed" (cannot open)
  std::string path;
  std::string last_error;
  uint64_t written = 0;    // flows
  uint64_t rotations = 0;
};

struct EngineOptions {
  // Replace the kernel feature detector (tests).
  std::unique_ptr<FeatureDetector> features;
  // Extra plugins beyond config.enabled_plugins.
  std::vector<std::unique_ptr<Plugin>> extra_plugins;
  std::string proc_root = "/proc";
  std::string sys_root = "/sys";
  // Called after start() and after each endpoints-file parse, once large
  // transients (libbpf's parsed kernel BTF, a YAML tree) are freed: where a
  // process that owns its allocator gives freed heap back (the agent calls
  // malloc_trim). Runs on engine threads; must not throw.
  std::function<void()> release_memory;
  // Fail a built-in plugin whose start capabilities (its table row) the
  // process lacks before it runs. Off only to let the kernel refuse
  // instead, which is how the table's entries are proved.
  bool check_capabilities = true;
};

class Engine {
 public:
  static Result<std::unique_ptr<Engine>> create(Config config, EngineOptions options = {});
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Initializes and starts every enabled plugin and the reader thread.
  // Plugins that cannot run are disabled or failed, with a reason; start()
  // only fails when nothing can work at all (e.g. bad config).
  Status start();
  // Stops plugins (detaching everything they attached) and threads.
  void stop() noexcept;

  const Config& config() const;
  metrics::Registry& metrics();
  IpCache& cache();
  std::shared_ptr<IpCache> cache_ptr();
  Pipeline& pipeline();
  std::vector<PluginStatus> plugin_status() const;
  // What the running built-in plugins need after start-up: the union of
  // their table rows' run sets.
  CapabilitySet run_capabilities() const;
  // True once start() finished and at least one plugin runs.
  bool ready() const;

  // Null unless enablePodLevel.
  metrics::AdvancedAggregator* advanced_metrics();
  KubernetesHealth kubernetes_health() const;
  AdvancedMetricsHealth advanced_metrics_health() const;
  FlowLogHealth flow_log_health() const;

 private:
  Engine();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace retina
