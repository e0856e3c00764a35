// The engine: owns the registry, the IP cache, the pipeline with its basic
// and advanced aggregators, the feature detector, the interface watcher (on
// demand), the endpoints-file watcher, the Kubernetes watcher and the
// plugins; runs one reader thread that drains every plugin's ring buffers
// into the pipeline (and does the advanced metrics' housekeeping, which
// belongs to the feeding thread) and one control thread that reconciles
// plugins every metricsIntervalDuration.
#include "retina/engine.hpp"

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <exception>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "cache/endpoints_file.hpp"
#include "core/log.hpp"
#include "engine/flow_log.hpp"
#include "loader/fd.hpp"
#include "loader/interface_watcher.hpp"
#include "plugins/services.hpp"
#include "metrics/apiserver_latency.hpp"
#include "engine/process_metrics.hpp"
#include "retina/k8s/watcher.hpp"
#include "retina/metrics/advanced.hpp"
#include "retina/metrics/aggregator.hpp"
#include "retina/metrics/names.hpp"
#include "retina/metrics/registry.hpp"


namespace retina {
namespace {

constexpr size_t kDrainBatch = 4096;  // records per source per round
constexpr auto kIdleDrain = std::chrono::milliseconds(100);

constexpr std::array<PluginState, 5> kAllStates = {PluginState::kPending, PluginState::kRunning,
                                                   PluginState::kDisabled, PluginState::kFailed,
                                                   PluginState::kStopped};

std::string default_node_name() {
  if (const char* env = std::getenv("NODE_NAME"); env && *env) return env;
  char host[256] = {};
  if (::gethostname(host, sizeof host - 1) == 0 && host[0]) return host;
  return "unknown";
}

// Kubernetes is watched when asked for, or when a kubeconfig is given.
bool kubernetes_requested(const Config& c) { return c.enable_kubernetes || !c.kubeconfig.empty(); }

}  // namespace

struct Engine::Impl {
  Config config;
  std::string proc_root, sys_root;
  std::function<void()> release_memory;
  bool check_capabilities = true;

  // Declared in dependency order: destroyed bottom-up.
  std::unique_ptr<metrics::Registry> registry;
  std::shared_ptr<IpCache> cache;
  std::unique_ptr<Pipeline> pipeline;
  std::shared_ptr<metrics::BasicAggregator> aggregator;
  std::shared_ptr<metrics::ApiServerLatency> apiserver_latency;  // with enablePodLevel
  std::shared_ptr<metrics::AdvancedAggregator> adv;  // enablePodLevel
  // The feature detector and the interface watcher (on demand), lent to
  // plugins as their table rows declare.
  std::unique_ptr<PluginServices> services;

  // Kubernetes watcher (enableKubernetes / kubeconfig) and what /healthz
  // says of it, under k8s_mu (declared first: the watcher's callbacks take it).
  mutable std::mutex k8s_mu;
  std::string k8s_failure;  // why the watcher could not be set up
  std::string k8s_server;
  std::string adv_source = "agent config";  // the advanced metrics' configuration
  std::string adv_error;
  std::unique_ptr<k8s::Watcher> watcher;

  std::unique_ptr<EndpointsFileWatcher> endpoints_file;
  std::unique_ptr<FlowLog> flow_log;  // set under k8s_mu
  std::string flow_log_error;         // why it could not open, under k8s_mu

  struct Slot {
    std::unique_ptr<Plugin> plugin;  // null: known but not built
    const PluginInfo* info = nullptr;  // its row in the built-in table; null for an extra plugin
    PluginContext ctx;
    PluginStatus status;
    bool initialized = false;
    bool started = false;
  };
  std::vector<Slot> slots;  // fixed after create(); status guarded by status_mu
  mutable std::mutex status_mu;

  metrics::Family<metrics::Gauge>* state_family = nullptr;
  metrics::Family<metrics::Counter>* reconcile_failures = nullptr;

  std::mutex lifecycle_mu;  // start() and stop()
  std::atomic<bool> started{false};
  bool stopped = false;

  // reader thread
  std::thread reader;
  loader::UniqueFd epoll_fd;
  loader::UniqueFd wake_fd;  // eventfd: stop requested
  std::atomic<bool> reader_stop{false};
  std::vector<EventSource*> sources;

  // control thread
  std::thread control;
  std::mutex control_mu;
  std::condition_variable control_cv;
  bool control_stop = false;

  void set_status(Slot& s, PluginState state, std::string reason);
  void export_state(const Slot& s);
  void init_plugin(Slot& s);
  void start_plugin(Slot& s);
  Status start_reader();
  void reader_loop();
  size_t drain_all(bool& more);
  void control_loop();
  void start_endpoints_file();
  void start_flow_log();
  void start_kubernetes();
  void apply_metrics_configuration(const k8s::MetricsConfigurationSpec& spec);
};

void Engine::Impl::export_state(const Slot& s) {
  if (!state_family) return;
  for (PluginState st : kAllStates) {
    state_family->with({s.status.name, to_string(st)}).set(st == s.status.state ? 1.0 : 0.0);
  }
}

void Engine::Impl::set_status(Slot& s, PluginState state, std::string reason) {
  {
    std::lock_guard lock(status_mu);
    s.status.state = state;
    s.status.reason = std::move(reason);
  }
  export_state(s);
  switch (state) {
    case PluginState::kRunning: log::info("engine", "plugin running", {{"plugin", s.status.name}}); break;
    case PluginState::kDisabled:
      log::warn("engine", "plugin disabled", {{"plugin", s.status.name}, {"reason", s.status.reason}});
      break;
    case PluginState::kFailed:
      log::error("engine", "plugin failed", {{"plugin", s.status.name}, {"reason", s.status.reason}});
      break;
    case PluginState::kStopped: log::info("engine", "plugin stopped", {{"plugin", s.status.name}}); break;
    case PluginState::kPending: break;
  }
}

void Engine::Impl::init_plugin(Slot& s) {
  if (!s.plugin) {
    set_status(s, PluginState::kFailed, "no such plugin");
    return;
  }
  s.ctx.config = &config;
  s.ctx.registry = registry.get();
  s.ctx.pipeline = pipeline.get();
  s.ctx.cache = cache.get();
  s.ctx.features = &services->features();
  s.ctx.proc_root = proc_root;
  s.ctx.sys_root = sys_root;
  s.ctx.request_interfaces = [this, &s]() -> Result<InterfaceWatcher*> {
    auto w = services->interfaces();
    if (w) s.ctx.interfaces = *w;
    return w;
  };
  if (s.info && check_capabilities && !s.info->caps.start.empty()) {
    // A missing capability is named here rather than left to surface as
    // an EPERM from whichever call meets it first.
    if (auto caps = current_capabilities(); caps) {
      const CapabilitySet missing = missing_capabilities(s.info->caps.start, caps->effective);
      if (!missing.empty()) {
        set_status(s, PluginState::kFailed,
                   fmt::format("missing capability {}: {} needs {} to start", to_string(missing), s.status.name,
                               to_string(s.info->caps.start)));
        return;
      }
    }
  }
  if (s.info) {
    if (auto st = services->provide(s.info->needs, s.ctx); !st) {
      set_status(s, st.error().kind == Error::Kind::kUnsupported ? PluginState::kDisabled : PluginState::kFailed,
                 st.error().message);
      return;
    }
  }
  Status st = unexpected(Error::internal("init did not return"));
  try {
    st = s.plugin->init(s.ctx);
  } catch (const std::exception& e) {
    st = unexpected(Error::internal(fmt::format("init threw: {}", e.what())));
  } catch (...) {
    st = unexpected(Error::internal("init threw a non-standard exception"));
  }
  if (!st) {
    set_status(s, st.error().kind == Error::Kind::kUnsupported ? PluginState::kDisabled : PluginState::kFailed,
               st.error().message);
    return;
  }
  s.initialized = true;
}

void Engine::Impl::start_plugin(Slot& s) {
  if (!s.initialized) return;
  Status st = unexpected(Error::internal("start did not return"));
  try {
    st = s.plugin->start();
  } catch (const std::exception& e) {
    st = unexpected(Error::internal(fmt::format("start threw: {}", e.what())));
  } catch (...) {
    st = unexpected(Error::internal("start threw a non-standard exception"));
  }
  if (!st) {
    // Undo whatever it attached before failing.
    s.plugin->stop();
    set_status(s, st.error().kind == Error::Kind::kUnsupported ? PluginState::kDisabled : PluginState::kFailed,
               st.error().message);
    return;
  }
  s.started = true;
  set_status(s, PluginState::kRunning, "");
}

Status Engine::Impl::start_reader() {
  for (auto& s : slots) {
    if (!s.started) continue;
    for (EventSource* src : s.plugin->event_sources()) {
      if (src) sources.push_back(src);
    }
  }
  epoll_fd = loader::UniqueFd(::epoll_create1(EPOLL_CLOEXEC));
  if (epoll_fd.get() < 0) return unexpected(Error::system("epoll_create1", errno));
  wake_fd = loader::UniqueFd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (wake_fd.get() < 0) return unexpected(Error::system("eventfd", errno));
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = UINT64_MAX;
  if (::epoll_ctl(epoll_fd.get(), EPOLL_CTL_ADD, wake_fd.get(), &ev) != 0) {
    return unexpected(Error::system("epoll_ctl(ADD, eventfd)", errno));
  }
  for (size_t i = 0; i < sources.size(); ++i) {
    const int fd = sources[i]->fd();
    if (fd < 0) continue;  // drained on the idle timer only
    ev.events = EPOLLIN;
    ev.data.u64 = i;
    if (::epoll_ctl(epoll_fd.get(), EPOLL_CTL_ADD, fd, &ev) != 0) {
      // Still drained every kIdleDrain; say why it is slower than it could be.
      log::warn("engine", "cannot poll event source; draining it on a timer",
                {{"source", sources[i]->name()}, {"error", Error::system("epoll_ctl(ADD)", errno).message}});
    }
  }
  reader = std::thread([this] { reader_loop(); });
  return ok();
}

namespace {

struct DrainTarget {
  Pipeline* pipeline;
  std::string_view plugin;
};

void deliver(void* user, std::span<const std::byte> record) {
  auto* t = static_cast<DrainTarget*>(user);
  t->pipeline->process_ahead(record, t->plugin);
}

}  // namespace

// Drains every source once, up to kDrainBatch records each. `more` is set
// when a source filled its batch and may hold more.
size_t Engine::Impl::drain_all(bool& more) {
  size_t total = 0;
  more = false;
  for (EventSource* src : sources) {
    DrainTarget t{pipeline.get(), src->name()};
    const size_t n = src->drain(&deliver, &t, kDrainBatch);
    total += n;
    if (n >= kDrainBatch) more = true;
  }
  if (total) pipeline->end_batch();
  return total;
}

void Engine::Impl::reader_loop() {
  std::array<epoll_event, 16> events;
  bool more = false;
  while (!reader_stop.load(std::memory_order_acquire)) {
    const int timeout = more ? 0 : static_cast<int>(kIdleDrain.count());
    const int n = ::epoll_wait(epoll_fd.get(), events.data(), static_cast<int>(events.size()), timeout);
    if (n < 0 && errno != EINTR) {
      log::error("engine", "epoll_wait failed; draining on a timer",
                 {{"error", Error::system("epoll_wait", errno).message}});
      std::this_thread::sleep_for(kIdleDrain);
    }
    // Every wakeup (or the idle timer) drains all sources: a drain of an
    // empty ring costs a couple of loads, and no source can starve.
    // The advanced metrics' housekeeping (new series, ttl, configuration)
    // runs at each batch end; an idle round runs it here, on this thread,
    // and gives sinks their idle call (the flow store's owed wakeups).
    if (drain_all(more) == 0) {
      pipeline->idle();
      if (adv) adv->maintain();
    }
  }
  // Final drain: what plugins flushed while stopping.
  do {
    drain_all(more);
  } while (more);
}

void Engine::Impl::control_loop() {
  std::unique_lock lock(control_mu);
  while (!control_stop) {
    control_cv.wait_for(lock, config.metrics_interval, [this] { return control_stop; });
    if (control_stop) break;
    lock.unlock();
    for (auto& s : slots) {
      if (!s.started) continue;
      Status st = ok();
      try {
        st = s.plugin->reconcile();
      } catch (const std::exception& e) {
        st = unexpected(Error::internal(fmt::format("reconcile threw: {}", e.what())));
      } catch (...) {
        st = unexpected(Error::internal("reconcile threw a non-standard exception"));
      }
      if (!st) {
        reconcile_failures->with({s.status.name}).add();
        log::warn("engine", "plugin reconcile failed", {{"plugin", s.status.name}, {"error", st.error().message}});
      }
    }
    cache->expire();
    lock.lock();
  }
}

void Engine::Impl::start_endpoints_file() {
  if (config.endpoints_file.empty()) return;
  EndpointsFileWatcher::Options opts;
  opts.after_parse = release_memory;
  opts.on_load = [](const EndpointsFileStatus& st) {
    if (st.ok) {
      log::info("engine", "endpoints file applied", {{"path", st.path}, {"endpoints", st.endpoints}});
    } else {
      log::warn("engine", "endpoints file not applied; keeping the last good version",
                {{"path", st.path}, {"error", st.last_error}});
    }
  };
  auto w = EndpointsFileWatcher::create(config.endpoints_file, cache, std::move(opts));
  if (!w) {
    log::error("engine", "cannot watch the endpoints file", {{"path", config.endpoints_file}, {"error", w.error().message}});
    return;
  }
  if (auto st = (*w)->start(); !st) {
    log::error("engine", "cannot watch the endpoints file", {{"path", config.endpoints_file}, {"error", st.error().message}});
    return;
  }
  endpoints_file = std::move(*w);
}

void Engine::Impl::start_flow_log() {
  if (config.flow_log_path.empty()) return;
  FlowLogOptions opts;
  opts.path = config.flow_log_path;
  opts.max_bytes = uint64_t{config.flow_log_max_size_mb} << 20;
  opts.max_files = config.flow_log_max_files;
  opts.node_name = config.node_name;
  auto fl = FlowLog::open(std::move(opts), *pipeline, registry.get());
  std::lock_guard l(k8s_mu);
  if (!fl) {
    log::error("engine", "cannot open the flow log; running without it",
               {{"path", config.flow_log_path}, {"error", fl.error().message}});
    flow_log_error = fl.error().message;
    return;
  }
  flow_log = std::move(*fl);
  log::info("engine", "writing flows", {{"path", config.flow_log_path}});
}

void Engine::Impl::apply_metrics_configuration(const k8s::MetricsConfigurationSpec& spec) {
  if (!adv) return;
  auto opts = metrics::AdvancedOptions::from(config);
  if (!spec.name.empty()) {
    opts.context_options = spec.context_options;
    opts.namespaces = spec.namespaces;
  }
  const std::string source = spec.name.empty() ? "agent config" : "MetricsConfiguration/" + spec.name;
  const auto context_options = opts.context_options;
  if (auto st = adv->configure(std::move(opts)); !st) {
    log::warn("engine", "MetricsConfiguration not applied; keeping the previous configuration",
              {{"source", source}, {"error", st.error().message}});
    std::lock_guard l(k8s_mu);
    adv_error = source + ": " + st.error().message;
    return;
  }
  if (apiserver_latency) apiserver_latency->configure(context_options);
  log::info("engine", "advanced metrics configuration queued", {{"source", source}});
  std::lock_guard l(k8s_mu);
  adv_source = source;
  adv_error.clear();
}

void Engine::Impl::start_kubernetes() {
  if (!kubernetes_requested(config)) return;
  const auto fail = [this](std::string why) {
    log::error("engine", "Kubernetes watcher not running; flows are enriched from other sources only",
               {{"error", why}});
    std::lock_guard l(k8s_mu);
    k8s_failure = std::move(why);
  };
  auto client = k8s::resolve_client_config(config.kubeconfig);
  if (!client) return fail(client.error().message);
  if (apiserver_latency) {
    // Retina's latency module times the node's traffic to these addresses.
    if (auto ips = metrics::api_server_addresses(client->server)) apiserver_latency->set_servers(std::move(*ips));
    else log::warn("engine", "API server latency: no address", {{"error", ips.error().message}});
  }
  k8s::WatcherOptions o;
  o.client = std::move(*client);
  o.node_name = config.node_name;
  o.remote_context = config.remote_context;
  o.watch_metrics_configuration = adv != nullptr;
  o.on_metrics_configuration = [this](const k8s::MetricsConfigurationSpec& spec) {
    apply_metrics_configuration(spec);
  };
  o.on_metrics_configuration_error = [this](const std::string& name, const Error& e) {
    log::warn("engine", "MetricsConfiguration rejected; keeping the previous configuration",
              {{"name", name}, {"error", e.message}});
    std::lock_guard l(k8s_mu);
    adv_error = "MetricsConfiguration/" + name + ": " + e.message;
  };
  {
    std::lock_guard l(k8s_mu);
    k8s_server = o.client.server;
  }
  auto w = k8s::Watcher::create(std::move(o), *cache, registry.get());
  if (!w) return fail(w.error().message);
  if (auto st = (*w)->start(); !st) return fail(st.error().message);
  std::lock_guard l(k8s_mu);
  watcher = std::move(*w);
}

Engine::Engine() : impl_(std::make_unique<Impl>()) {}

Engine::~Engine() { stop(); }

Result<std::unique_ptr<Engine>> Engine::create(Config config, EngineOptions options) {
  if (auto st = config.validate(); !st) return unexpected(st.error());
  if (config.node_name.empty()) config.node_name = default_node_name();

  std::unique_ptr<Engine> engine(new Engine());
  Impl& m = *engine->impl_;
  m.config = std::move(config);
  m.proc_root = std::move(options.proc_root);
  m.sys_root = std::move(options.sys_root);
  m.release_memory = std::move(options.release_memory);
  m.check_capabilities = options.check_capabilities;
  m.registry = std::make_unique<metrics::Registry>();
  m.cache = std::make_shared<IpCache>();
  m.pipeline = std::make_unique<Pipeline>(m.cache, m.registry.get());
  m.aggregator = std::make_shared<metrics::BasicAggregator>(*m.registry, m.config.pod_forward_metrics);
  // The agent's own process, whatever proc_root the plugins read.
  m.registry->add_collector(std::make_shared<metrics::ProcessCollector>());
  m.pipeline->add_sink(m.aggregator);
  if (m.config.enable_pod_level) {
    auto adv = metrics::AdvancedAggregator::create(*m.registry, metrics::AdvancedOptions::from(m.config));
    if (!adv) return unexpected(adv.error());
    m.adv = std::move(*adv);
    m.pipeline->add_sink(m.adv);
    m.apiserver_latency = std::make_shared<metrics::ApiServerLatency>(*m.registry);
    m.apiserver_latency->configure(m.config.context_options);
    m.pipeline->add_sink(m.apiserver_latency);
  }
  PluginServices::Options services;
  services.features = std::move(options.features);
  services.cache = m.cache;
  services.kubernetes = kubernetes_requested(m.config);
  m.services = std::make_unique<PluginServices>(m.config, std::move(services));

  m.state_family = &m.registry->gauge(metrics::names::kPluginState,
                                      "1 for the plugin's current state (pending, running, disabled, failed, "
                                      "stopped), 0 for the others",
                                      {"plugin", "state"});
  m.reconcile_failures = &m.registry->counter(metrics::names::kPluginFailedToReconcile,
                                              "Plugin reconcile calls that failed, by plugin",
                                              {std::string(metrics::names::kReason)});

  const auto add_slot = [&m](std::string name, std::unique_ptr<Plugin> plugin, const PluginInfo* info) {
    for (const auto& s : m.slots) {
      if (s.status.name == name) {
        log::error("engine", "plugin listed twice; keeping the first", {{"plugin", name}});
        return;
      }
    }
    Impl::Slot s;
    s.plugin = std::move(plugin);
    s.info = info;
    s.status.name = std::move(name);
    m.slots.push_back(std::move(s));
  };
  for (const auto& name : m.config.enabled_plugins) {
    const PluginInfo* info = find_builtin_plugin(name);
    add_slot(name, info ? info->factory() : nullptr, info);
  }
  for (auto& p : options.extra_plugins) {
    if (!p) continue;
    std::string name(p->name());
    add_slot(std::move(name), std::move(p), nullptr);
  }
  for (const auto& s : m.slots) m.export_state(s);
  return engine;
}

Status Engine::start() {
  Impl& m = *impl_;
  std::lock_guard lock(m.lifecycle_mu);
  if (m.stopped) return unexpected(Error::invalid("engine: start() after stop(); create a new engine"));
  if (m.started.load()) return ok();

  m.start_endpoints_file();
  m.start_kubernetes();
  m.start_flow_log();
  for (auto& s : m.slots) m.init_plugin(s);
  for (auto& s : m.slots) m.start_plugin(s);
  if (auto st = m.start_reader(); !st) {
    // Without a reader no record reaches the pipeline: undo and report.
    for (auto it = m.slots.rbegin(); it != m.slots.rend(); ++it) {
      if (it->started) {
        it->plugin->stop();
        it->started = false;
        m.set_status(*it, PluginState::kStopped, "");
      }
    }
    return unexpected(st.error().wrap("engine reader"));
  }
  m.control = std::thread([&m] { m.control_loop(); });
  m.started.store(true);
  // Starting freed large transients (libbpf's parsed kernel BTF, the
  // endpoints file's parse tree) below later allocations.
  if (m.release_memory) m.release_memory();

  size_t running = 0;
  for (const auto& s : m.slots) running += s.started ? 1 : 0;
  log::info("engine", "started", {{"plugins", m.slots.size()}, {"running", running}, {"sources", m.sources.size()},
                                  {"node", m.config.node_name}});
  return ok();
}

void Engine::stop() noexcept {
  if (!impl_) return;
  Impl& m = *impl_;
  std::lock_guard lock(m.lifecycle_mu);
  if (m.stopped) return;
  m.stopped = true;
  const bool was_started = m.started.exchange(false);
  // The cache keeps what the watcher put into it. Not under k8s_mu: the
  // watcher's callbacks take it while stop() joins them (only start() sets
  // the pointer, and lifecycle_mu orders the two).
  if (m.watcher) m.watcher->stop();

  if (m.control.joinable()) {
    {
      std::lock_guard cl(m.control_mu);
      m.control_stop = true;
    }
    m.control_cv.notify_all();
    m.control.join();
  }
  // Plugins stop in reverse order while the reader still drains, so what
  // they flush on the way out reaches the pipeline.
  for (auto it = m.slots.rbegin(); it != m.slots.rend(); ++it) {
    if (!it->started) continue;
    try {
      it->plugin->stop();
    } catch (...) {
      log::error("engine", "plugin stop threw", {{"plugin", it->status.name}});
    }
    it->started = false;
    m.set_status(*it, PluginState::kStopped, "");
  }
  if (m.reader.joinable()) {
    m.reader_stop.store(true, std::memory_order_release);
    const uint64_t one = 1;
    if (::write(m.wake_fd.get(), &one, sizeof one) < 0) {
      // The reader still notices reader_stop at its next idle tick.
    }
    m.reader.join();
  }
  if (m.flow_log) m.flow_log->stop();  // after the reader: it writes what the final drain produced
  if (m.endpoints_file) m.endpoints_file->stop();
  if (m.services) m.services->stop();
  if (was_started) log::info("engine", "stopped");
}

const Config& Engine::config() const { return impl_->config; }
metrics::Registry& Engine::metrics() { return *impl_->registry; }
IpCache& Engine::cache() { return *impl_->cache; }
std::shared_ptr<IpCache> Engine::cache_ptr() { return impl_->cache; }
Pipeline& Engine::pipeline() { return *impl_->pipeline; }

CapabilitySet Engine::run_capabilities() const {
  std::lock_guard lock(impl_->lifecycle_mu);
  CapabilitySet out;
  for (const auto& s : impl_->slots)
    if (s.started && s.info) out |= s.info->caps.run;
  return out;
}

std::vector<PluginStatus> Engine::plugin_status() const {
  std::lock_guard lock(impl_->status_mu);
  std::vector<PluginStatus> out;
  out.reserve(impl_->slots.size());
  for (const auto& s : impl_->slots) out.push_back(s.status);
  return out;
}

metrics::AdvancedAggregator* Engine::advanced_metrics() { return impl_->adv.get(); }

KubernetesHealth Engine::kubernetes_health() const {
  const Impl& m = *impl_;
  KubernetesHealth h;
  if (!kubernetes_requested(m.config)) return h;
  h.context = m.config.remote_context ? "remote" : "local";
  std::vector<k8s::ResourceStatus> resources;
  {
    std::lock_guard l(m.k8s_mu);
    h.server = m.k8s_server;
    if (!m.k8s_failure.empty()) {
      h.state = "failed";
      h.reason = m.k8s_failure;
      return h;
    }
    if (!m.watcher) {
      h.state = "syncing";  // not started yet
      return h;
    }
    resources = m.watcher->status();
  }
  bool synced = true, healthy = true;
  for (auto& r : resources) {
    if (!r.enabled) continue;
    synced = synced && r.synced;
    // MetricsConfiguration is optional (the CRD may be absent, an object
    // invalid): advanced_metrics reports on it, it does not degrade the cache.
    const bool optional = r.resource == k8s::Resource::kMetricsConfigurations;
    if (!optional && (!r.watch_up || !r.last_error.empty())) {
      healthy = false;
      if (h.reason.empty()) {
        h.reason = fmt::format("{}: {}", k8s::to_string(r.resource),
                               r.last_error.empty() ? std::string("watch not established") : r.last_error);
      }
    }
    h.resources.push_back(std::move(r));
  }
  if (!synced) {
    h.state = "syncing";
  } else {
    h.state = healthy ? "synced" : "degraded";
  }
  if (healthy) h.reason.clear();
  return h;
}

FlowLogHealth Engine::flow_log_health() const {
  const Impl& m = *impl_;
  FlowLogHealth h;
  if (m.config.flow_log_path.empty()) return h;
  h.path = m.config.flow_log_path;
  std::lock_guard l(m.k8s_mu);
  if (!m.flow_log) {
    h.state = m.flow_log_error.empty() ? "disabled" : "failed";
    h.last_error = m.flow_log_error;
    return h;
  }
  const auto st = m.flow_log->status();
  h.state = st.failing ? "failing" : "writing";
  h.last_error = st.last_error;
  h.written = st.written;
  h.rotations = st.rotations;
  return h;
}

AdvancedMetricsHealth Engine::advanced_metrics_health() const {
  const Impl& m = *impl_;
  AdvancedMetricsHealth h;
  if (!m.adv) return h;
  h.enabled = true;
  h.context = m.config.remote_context ? "remote" : "local";
  const auto st = m.adv->stats();
  h.generation = st.generation;
  h.pending = st.config_pending;
  std::lock_guard l(m.k8s_mu);
  h.configuration = m.adv_source;
  h.last_error = m.adv_error;
  return h;
}

bool Engine::ready() const {
  if (!impl_->started.load()) return false;
  std::lock_guard lock(impl_->status_mu);
  for (const auto& s : impl_->slots) {
    if (s.status.state == PluginState::kRunning) return true;
  }
  return false;
}

}  // namespace retina
