// The plugin interface. A plugin owns a data source (BPF programs, /proc
// files, sysfs) and feeds the engine's pipeline and metrics registry.
// Lifecycle: init (maps, programs) -> start (attach, threads) -> reconcile
// (periodic) -> stop. A plugin that cannot run reports why and never stops
// the others.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "retina/capabilities.hpp"
#include "retina/config.hpp"
#include "retina/error.hpp"
#include "retina/flow.hpp"

namespace retina {

class FeatureDetector;
class InterfaceWatcher;
class Pipeline;
class IpCache;
namespace metrics {
class Registry;
}

enum class PluginState : uint8_t { kPending, kRunning, kDisabled, kFailed, kStopped };
const char* to_string(PluginState s);

struct PluginStatus {
  std::string name;
  PluginState state = PluginState::kPending;
  std::string reason;  // why disabled or failed; empty when running
};

// A source of ring-buffer records that the engine's reader thread polls.
class EventSource {
 public:
  using RecordFn = void (*)(void* user, std::span<const std::byte> record);
  virtual ~EventSource() = default;
  virtual std::string_view name() const = 0;  // plugin name, labels lost/reject counters
  virtual int fd() const = 0;                 // becomes readable when records wait
  // Hands up to `max` records to fn; returns how many.
  virtual size_t drain(RecordFn fn, void* user, size_t max) = 0;
};

// The services a plugin declares it needs. Whoever runs it (the engine, or
// PluginServices without one) guarantees them: the matching PluginContext
// fields are set before init(), so a plugin never builds its own.
struct PluginNeeds {
  bool features = false;    // ctx.features: the kernel feature detector
  bool interfaces = false;  // ctx.interfaces: the shared rtnetlink watcher, started
  bool ip_cache = false;    // ctx.cache
  bool kubernetes = false;  // the Kubernetes watcher runs; the plugin is disabled otherwise
};

// What the engine lends a plugin. config, registry and pipeline are set by
// the engine; outside it (tests, tools) a plugin treats a null registry or
// pipeline as "export nothing there".
struct PluginContext {
  const Config* config = nullptr;
  metrics::Registry* registry = nullptr;
  Pipeline* pipeline = nullptr;
  IpCache* cache = nullptr;
  FeatureDetector* features = nullptr;
  InterfaceWatcher* interfaces = nullptr;
  // Returns the shared interface watcher, creating and starting it on first
  // use (and setting `interfaces`), for plugins outside the built-in table,
  // which cannot declare needs; an error means rtnetlink is unusable.
  std::function<Result<InterfaceWatcher*>()> request_interfaces;
  std::string proc_root = "/proc";         // overridable for tests
  std::string sys_root = "/sys";
};

class Plugin {
 public:
  virtual ~Plugin() = default;
  virtual std::string_view name() const = 0;
  // Loads maps and programs. An Error of kind kUnsupported disables the
  // plugin with that reason; any other error marks it failed.
  virtual Status init(PluginContext& ctx) = 0;
  virtual Status start() = 0;
  virtual void stop() noexcept = 0;
  // Called every metricsIntervalDuration from the engine's control thread.
  virtual Status reconcile() { return ok(); }
  // Ring buffers the engine should drain into the pipeline. They stay valid
  // until the plugin is destroyed: the engine drains them once more after
  // stop(), so records a plugin flushes while stopping are delivered.
  virtual std::vector<EventSource*> event_sources() { return {}; }
};

using PluginFactory = std::unique_ptr<Plugin> (*)();

// One row of the built-in plugin table (src/plugins/registry.cpp), the one
// place a plugin is named: config validation, the engine, the bindings and
// docs/architecture.md read it.
struct PluginInfo {
  std::string_view name;               // Retina's name, as in enabledPlugin
  PluginFactory factory;
  std::span<const FlowSource> emits;   // the flow sources its ring buffers feed (flow_sources.hpp)
  PluginNeeds needs;
  // The capabilities it needs to start and to keep running: the engine
  // fails a plugin whose start set the process lacks, naming what is
  // missing; the agent keeps only the running plugins' run sets after
  // start-up; the DaemonSet asks for the union of the start sets
  // (tests/deploy checks it), docs/security.md says why each.
  PluginCapabilities caps;
};

std::span<const PluginInfo> builtin_plugins();
// Null for an unknown name.
const PluginInfo* find_builtin_plugin(std::string_view name);
std::unique_ptr<Plugin> make_builtin_plugin(std::string_view name);
std::vector<std::string_view> builtin_plugin_names();

// kInternal naming what is missing when ctx lacks a service `needs` asks
// for (a caller that did not provide them); ok() otherwise.
Status check_context(std::string_view plugin, const PluginNeeds& needs, const PluginContext& ctx);

}  // namespace retina
