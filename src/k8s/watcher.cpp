#include "retina/k8s/watcher.hpp"

#include <array>
#include <condition_variable>
#include <mutex>
#include <thread>

#include <fmt/format.h>

#include "core/log.hpp"
#include "k8s/cluster_state.hpp"
#include "k8s/http_client.hpp"
#include "k8s/json_parse.hpp"
#include "k8s/metrics_config_tracker.hpp"
#include "k8s/reflector.hpp"
#include "k8s/watch_metrics.hpp"
#include "retina/ip_cache.hpp"
#include "retina/metrics/registry.hpp"

namespace retina::k8s {
namespace {

size_t count_of(const ClusterState& s, Resource r) { return s.count(r); }
size_t count_of(const MetricsConfigTracker& t, Resource) { return t.count(); }
size_t count_of(const RawObjectSink& s, Resource) { return s.count(); }

// JSON of one resource type -> its sink (ClusterState or MetricsConfigTracker).
template <class T, class Sink>
class TypedHandler final : public ResourceHandler {
 public:
  TypedHandler(Resource r, Sink& sink) : resource_(r), sink_(sink) {}

  void begin_list() override { page_ = {}; }

  Result<PageMeta> add_page(std::string& body) override {
    const uint32_t invalid_before = page_.invalid_values;
    const size_t items_before = page_.items.size();
    page_.resource_version.clear();
    page_.continue_token.clear();
    if (auto s = parser_.parse_list(body, page_); !s) return unexpected(s.error());
    for (size_t i = items_before; i < page_.items.size(); ++i) {
      if (page_.items[i].name.empty()) return unexpected(Error::parse("list response: an item without metadata.name"));
    }
    return PageMeta{std::move(page_.resource_version), std::move(page_.continue_token),
                    page_.invalid_values - invalid_before};
  }

  void commit_list() override {
    sink_.replace(std::move(page_.items));
    page_ = {};
  }

  Result<EventMeta> apply_event(std::string_view line) override {
    auto ev = parser_.template parse_event<T>(line);
    if (!ev) return unexpected(ev.error());
    EventMeta meta{ev->type, std::move(ev->resource_version), std::move(ev->status), ev->invalid_values};
    if (ev->type == EventType::kAdded || ev->type == EventType::kModified || ev->type == EventType::kDeleted) {
      if (ev->object.name.empty()) {
        return unexpected(Error::parse(fmt::format("watch event {}: object without metadata.name", to_string(ev->type))));
      }
      sink_.apply(ev->type, std::move(ev->object));
    }
    return meta;
  }

  size_t objects() const override { return count_of(sink_, resource_); }
  ApiStatus parse_status(std::string_view body) override { return parser_.parse_status(body); }

 private:
  const Resource resource_;
  Sink& sink_;
  JsonParser parser_;
  ListPage<T> page_;
};

struct ResourceSpec {
  Resource resource;
  const char* path;
};
constexpr std::array<ResourceSpec, kResourceCount> kResources = {{
    {Resource::kPods, "/api/v1/pods"},
    {Resource::kServices, "/api/v1/services"},
    {Resource::kNodes, "/api/v1/nodes"},
    {Resource::kNamespaces, "/api/v1/namespaces"},
    {Resource::kReplicaSets, "/apis/apps/v1/replicasets"},
    {Resource::kMetricsConfigurations, "/apis/retina.sh/v1alpha1/metricsconfigurations"},
    {Resource::kCaptures, "/apis/retina.sh/v1alpha1/captures"},
}};

Status validate(const WatcherOptions& o) {
  std::vector<std::string> p;
  if (o.client.server.empty()) p.push_back("client.server: required");
  if (!o.client.server.empty() && !o.client.server.starts_with("https://") && !o.client.server.starts_with("http://")) {
    p.push_back(fmt::format("client.server: \"{}\" must be an http:// or https:// URL", o.client.server));
  }
  if (!o.remote_context && o.node_name.empty()) {
    p.push_back("node_name: required in local context (only this node's pods are watched)");
  }
  if (o.page_size == 0) p.push_back("page_size: must be at least 1");
  if (o.delete_grace.count() < 0) p.push_back("delete_grace: must not be negative");
  if (o.watch_timeout.count() < 1) p.push_back("watch_timeout: must be at least 1s");
  if (o.backoff_initial.count() < 1) p.push_back("backoff_initial: must be at least 1ms");
  if (o.backoff_max < o.backoff_initial) p.push_back("backoff_max: must not be below backoff_initial");
  if (o.connect_timeout.count() < 1 || o.list_timeout.count() < 1) p.push_back("connect/list timeouts: must be positive");
  if (o.expire_interval.count() < 1) p.push_back("expire_interval: must be at least 1ms");
  if (o.token_reload_interval.count() < 1) p.push_back("token_reload_interval: must be at least 1ms");
  if (o.crd_retry_interval.count() < 1) p.push_back("crd_retry_interval: must be at least 1ms");
  if (p.empty()) return ok();
  std::string msg = "kubernetes watcher options:";
  for (const auto& line : p) msg += "\n" + line;
  return unexpected(Error::invalid(std::move(msg)));
}

}  // namespace

std::unique_ptr<ResourceHandler> make_raw_handler(Resource resource, RawObjectSink& sink) {
  return std::make_unique<TypedHandler<RawObject, RawObjectSink>>(resource, sink);
}

const char* api_path(Resource resource) {
  for (const ResourceSpec& spec : kResources) {
    if (spec.resource == resource) return spec.path;
  }
  return "";
}

struct Watcher::Impl {
  WatcherOptions opts;
  IpCache& cache;
  metrics::Registry* registry;
  uint64_t collector_id = 0;
  std::shared_ptr<WatchMetrics> metrics = std::make_shared<WatchMetrics>();
  std::shared_ptr<Credentials> credentials;
  std::unique_ptr<ClusterState> state;
  std::unique_ptr<MetricsConfigTracker> configs;
  SyncSignal sync;
  std::array<std::unique_ptr<Reflector>, kResourceCount> reflectors;

  std::mutex mu;
  std::condition_variable cv;
  bool started = false;
  bool stopping = false;
  std::thread housekeeping;

  Impl(WatcherOptions o, IpCache& c, metrics::Registry* r) : opts(std::move(o)), cache(c), registry(r) {}

  void housekeep() {
    auto next_token = std::chrono::steady_clock::now() + opts.token_reload_interval;
    std::unique_lock l(mu);
    while (!cv.wait_for(l, opts.expire_interval, [this] { return stopping; })) {
      l.unlock();
      const auto now = std::chrono::steady_clock::now();
      // expire() is a cache write: only when something lingers.
      if (cache.stats().lingering > 0) cache.expire(now);
      if (now >= next_token) {
        next_token = now + opts.token_reload_interval;
        if (auto s = credentials->reload(); !s) {
          log::warn("k8s", "bearer token reload failed; keeping the previous token", {{"error", s.error().message}});
        }
      }
      l.lock();
    }
  }
};

Watcher::Watcher(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Result<std::unique_ptr<Watcher>> Watcher::create(WatcherOptions options, IpCache& cache,
                                                 metrics::Registry* registry) {
  if (auto s = validate(options); !s) return unexpected(s.error());
  auto impl = std::make_unique<Impl>(std::move(options), cache, registry);
  const WatcherOptions& o = impl->opts;
  impl->credentials = std::make_shared<Credentials>(o.client);
  if (auto s = impl->credentials->reload(); !s) return unexpected(s.error().wrap("kubernetes watcher"));
  impl->state = std::make_unique<ClusterState>(cache, o.delete_grace, o.watch_replicasets);
  impl->configs = std::make_unique<MetricsConfigTracker>(o.on_metrics_configuration, o.on_metrics_configuration_error,
                                                         (*impl->metrics)[Resource::kMetricsConfigurations]);

  for (const ResourceSpec& spec : kResources) {
    if (spec.resource == Resource::kReplicaSets && !o.watch_replicasets) continue;
    if (spec.resource == Resource::kMetricsConfigurations && !o.watch_metrics_configuration) continue;
    if (spec.resource == Resource::kCaptures) continue;  // the capture runner's own reflector
    std::unique_ptr<ResourceHandler> handler;
    ClusterState& st = *impl->state;
    switch (spec.resource) {
      case Resource::kPods: handler = std::make_unique<TypedHandler<PodInfo, ClusterState>>(spec.resource, st); break;
      case Resource::kServices:
        handler = std::make_unique<TypedHandler<ServiceInfo, ClusterState>>(spec.resource, st);
        break;
      case Resource::kNodes: handler = std::make_unique<TypedHandler<NodeInfo, ClusterState>>(spec.resource, st); break;
      case Resource::kNamespaces:
        handler = std::make_unique<TypedHandler<NamespaceInfo, ClusterState>>(spec.resource, st);
        break;
      case Resource::kReplicaSets:
        handler = std::make_unique<TypedHandler<ReplicaSetInfo, ClusterState>>(spec.resource, st);
        break;
      case Resource::kMetricsConfigurations:
        handler = std::make_unique<TypedHandler<MetricsConfigurationInfo, MetricsConfigTracker>>(spec.resource,
                                                                                                  *impl->configs);
        break;
      case Resource::kCaptures:
      case Resource::kCount: break;
    }
    auto http = HttpStream::create(o.client, impl->credentials, o.connect_timeout);
    if (!http) return unexpected(http.error().wrap(fmt::format("kubernetes watcher ({})", to_string(spec.resource))));
    // Local context: only this node's pods.
    std::string selector;
    if (spec.resource == Resource::kPods && !o.remote_context) selector = url_encode("spec.nodeName=" + o.node_name);
    impl->reflectors[static_cast<size_t>(spec.resource)] = std::make_unique<Reflector>(
        spec.resource, spec.path, std::move(selector), impl->opts, std::move(*http), impl->credentials,
        std::move(handler), (*impl->metrics)[spec.resource], impl->sync);
  }
  if (registry) {
    impl->collector_id = registry->add_collector(std::make_shared<WatchCollector>(impl->metrics));
  }
  return std::unique_ptr<Watcher>(new Watcher(std::move(impl)));
}

Watcher::~Watcher() {
  stop();
  if (impl_->registry && impl_->collector_id) impl_->registry->remove_collector(impl_->collector_id);
}

Status Watcher::start() {
  Impl& im = *impl_;
  {
    std::lock_guard l(im.mu);
    if (im.stopping) return unexpected(Error::invalid("kubernetes watcher: start() after stop()"));
    if (im.started) return unexpected(Error::invalid("kubernetes watcher: already started"));
    im.started = true;
  }
  log::info("k8s", "watching the API server",
            {{"server", im.opts.client.server},
             {"config", im.opts.client.source},
             {"context", im.opts.remote_context ? "remote" : "local"},
             {"node", im.opts.node_name}});
  for (auto& r : im.reflectors) {
    if (r) r->start();
  }
  im.housekeeping = std::thread([&im] { im.housekeep(); });
  return ok();
}

void Watcher::stop() {
  Impl& im = *impl_;
  {
    std::lock_guard l(im.mu);
    if (im.stopping) return;
    im.stopping = true;
  }
  im.cv.notify_all();
  // Wake every stream first so they all wind down at once, then join.
  for (auto& r : im.reflectors) {
    if (r) r->request_stop();
  }
  for (auto& r : im.reflectors) {
    if (r) r->stop();
  }
  if (im.housekeeping.joinable()) im.housekeeping.join();
}

std::vector<ResourceStatus> Watcher::status() const {
  std::vector<ResourceStatus> out;
  for (size_t i = 0; i < kResourceCount; ++i) {
    if (impl_->reflectors[i]) {
      out.push_back(impl_->reflectors[i]->status());
    } else {
      ResourceStatus s;
      s.resource = static_cast<Resource>(i);
      out.push_back(std::move(s));
    }
  }
  return out;
}

bool Watcher::wait_synced(std::chrono::milliseconds timeout) const {
  auto all_synced = [this] {
    for (const auto& r : impl_->reflectors) {
      if (r && !r->synced()) return false;
    }
    return true;
  };
  std::unique_lock l(impl_->sync.mu);
  return impl_->sync.cv.wait_for(l, timeout, all_synced);
}

}  // namespace retina::k8s
