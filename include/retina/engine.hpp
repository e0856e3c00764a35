// The engine composes the four parts: eBPF loader (plugins), flow decoder
// and enricher (pipeline), IP-to-object cache, and metric aggregator. The
// agent is a thin main over it; other programs embed it the same way.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "retina/config.hpp"
#include "retina/error.hpp"
#include "retina/features.hpp"
#include "retina/ip_cache.hpp"
#include "retina/pipeline.hpp"
#include "retina/plugin.hpp"

namespace retina {

namespace metrics {
class Registry;
}

struct EngineOptions {
  // Replace the kernel feature detector (tests).
  std::unique_ptr<FeatureDetector> features;
  // Extra plugins beyond config.enabled_plugins.
  std::vector<std::unique_ptr<Plugin>> extra_plugins;
  std::string proc_root = "/proc";
  std::string sys_root = "/sys";
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
  // True once start() finished and at least one plugin runs.
  bool ready() const;

 private:
  Engine();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace retina
