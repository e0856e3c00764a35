// The services plugins declare they need (PluginNeeds), created on first
// request and shared by every plugin that asks: the kernel feature
// detector, the rtnetlink interface watcher (started), the IP cache. The
// engine keeps one; programs that run a plugin without an engine (tools,
// tests, benchmarks) keep their own, declared before the plugins it serves
// so that it outlives them.
#pragma once

#include <memory>
#include <mutex>

#include "retina/config.hpp"
#include "retina/error.hpp"
#include "retina/features.hpp"
#include "retina/ip_cache.hpp"
#include "retina/plugin.hpp"

namespace retina {

class InterfaceWatcher;

class PluginServices {
 public:
  struct Options {
    std::unique_ptr<FeatureDetector> features;  // null: probe the running kernel
    std::shared_ptr<IpCache> cache;              // null: an empty cache of its own
    bool kubernetes = false;                     // the Kubernetes watcher runs
  };
  explicit PluginServices(Config config = {});
  PluginServices(Config config, Options options);
  ~PluginServices();
  PluginServices(const PluginServices&) = delete;
  PluginServices& operator=(const PluginServices&) = delete;

  // Sets the ctx fields `needs` asks for that are still null (a caller's
  // own detector or watcher stays); a watcher it creates follows
  // ctx.config when set. kUnsupported when the plugin needs
  // Kubernetes and it does not run; the watcher's error when rtnetlink fails.
  Status provide(const PluginNeeds& needs, PluginContext& ctx);

  FeatureDetector& features();
  // Created (from the given config, or the services' own) and started on
  // first call; later calls return the same watcher.
  Result<InterfaceWatcher*> interfaces();
  Result<InterfaceWatcher*> interfaces(const Config& config);
  // Stops the interface watcher, if one was started (the destructor does too).
  void stop() noexcept;

 private:
  Config config_;
  Options options_;
  std::mutex mu_;  // interfaces_
  std::unique_ptr<InterfaceWatcher> interfaces_;
};

}  // namespace retina
