#include "capture/crd.hpp"

#include <algorithm>
#include <condition_variable>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <thread>

#include <fmt/format.h>
#include <simdjson.h>

#include "core/flow_json.hpp"
#include "core/log.hpp"
#include "capture/secret.hpp"
#include "k8s/http_client.hpp"
#include "k8s/reflector.hpp"

namespace retina::capture {
namespace {

namespace dom = simdjson::dom;

// The node's labels, "key=value", from GET /api/v1/nodes/<node>.
Result<std::vector<std::string>> node_labels_of(const std::string& body) {
  dom::parser parser;
  dom::element doc;
  if (parser.parse(simdjson::padded_string(body)).get(doc)) return unexpected(Error::parse("Node: invalid JSON"));
  std::vector<std::string> out;
  dom::object labels;
  if (doc["metadata"]["labels"].get_object().get(labels)) return out;
  for (auto [k, v] : labels) {
    std::string_view value;
    if (!v.get_string().get(value)) out.push_back(fmt::format("{}={}", k, value));
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::string key_of(const k8s::RawObject& o) { return o.namespace_ + "/" + o.name; }
std::string id_of(const k8s::RawObject& o) { return o.uid.empty() ? key_of(o) : o.uid; }

// Node labels not known yet (the Node GET failed): asked again this often.
constexpr std::chrono::seconds kNodeRetry{5};

}  // namespace

std::string node_status_patch(const std::string& node, const CaptureStatus& s) {
  std::string out = "{\"status\":{\"nodes\":{";
  json::append_string(out, node);
  out.push_back(':');
  out += status_to_json(s);
  out += "}}}";
  return out;
}

// The reflector (src/k8s) lists and watches Capture objects and hands them
// to this sink on its thread; the worker thread starts and cancels
// captures and writes statuses, so the watch stream never waits on them.
struct CrdRunner::Impl final : k8s::RawObjectSink {
  Manager* manager = nullptr;
  CrdOptions options;
  k8s::WatcherOptions watch_options;
  std::shared_ptr<k8s::Credentials> credentials;
  std::unique_ptr<k8s::HttpStream> http;  // the worker's: Node, Secrets, status patches
  k8s::ResourceMetrics watch_metrics;
  k8s::SyncSignal sync;
  std::unique_ptr<k8s::Reflector> reflector;
  std::thread worker;

  mutable std::mutex mu;  // guards the fields down to the next comment
  std::condition_variable cv;
  bool stopping = false;
  bool dirty = false;
  std::map<std::string, k8s::RawObject> objects;  // as the API server has them, by "ns/name"
  std::map<std::string, std::string> pending;     // status patches to write, by key
  std::map<std::string, std::string> name_to_key; // capture name -> object key

  // The worker's own.
  std::optional<std::vector<std::string>> node_labels;
  std::set<std::string> handled;  // ids (uids) acted on: never started twice
  struct Running {
    std::string id, capture;
  };
  std::map<std::string, Running> running;  // by key

  // RawObjectSink, on the reflector's thread.
  void replace(std::vector<k8s::RawObject> items) override {
    std::lock_guard lock(mu);
    objects.clear();
    for (auto& o : items) {
      std::string key = key_of(o);
      objects.insert_or_assign(std::move(key), std::move(o));
    }
    dirty = true;
    cv.notify_all();
  }
  void apply(k8s::EventType type, k8s::RawObject o) override {
    std::lock_guard lock(mu);
    if (type == k8s::EventType::kDeleted) {
      objects.erase(key_of(o));
    } else {
      std::string key = key_of(o);
      objects.insert_or_assign(std::move(key), std::move(o));
    }
    dirty = true;
    cv.notify_all();
  }
  size_t count() const override {
    std::lock_guard lock(mu);
    return objects.size();
  }

  void run();
  void reconcile();
  void handle(const std::string& key, const k8s::RawObject& o);
  void fail(const std::string& key, const std::string& name, const std::string& message);
  void fetch_node_labels();
  Result<std::string> read_secret(const std::string& ns, const std::string& name);
  void patch(const std::string& key, const std::string& body);
  void flush();
};

void CrdRunner::Impl::patch(const std::string& key, const std::string& body) {
  const size_t slash = key.find('/');
  k8s::HttpRequest req;
  req.method = "PATCH";
  req.content_type = "application/merge-patch+json";
  req.path = fmt::format("{}/namespaces/{}/captures/{}/status", kCaptureGroupPath, key.substr(0, slash), key.substr(slash + 1));
  req.body = body;
  req.timeout = std::chrono::seconds(10);
  const auto r = http->get(req);
  if (!r.ok()) {
    log::warn("capture", "cannot write Capture status", {{"object", key}, {"status", r.status},
                                                          {"error", r.error.empty() ? r.body.substr(0, 200) : r.error}});
  }
}

void CrdRunner::Impl::flush() {
  std::map<std::string, std::string> todo;
  {
    std::lock_guard lock(mu);
    todo.swap(pending);
  }
  for (const auto& [key, body] : todo) patch(key, body);
}

void CrdRunner::Impl::fail(const std::string& key, const std::string& name, const std::string& message) {
  CaptureStatus st;
  st.name = name;
  st.node = options.node_name;
  st.state = State::kFailed;
  st.message = message;
  patch(key, node_status_patch(options.node_name, st));
}

void CrdRunner::Impl::fetch_node_labels() {
  k8s::HttpRequest req;
  req.path = "/api/v1/nodes/" + k8s::url_encode(options.node_name);
  req.timeout = std::chrono::seconds(10);
  const auto r = http->get(req);
  if (!r.ok()) {
    log::warn("capture", "cannot read this node's labels for nodeSelector; retrying",
              {{"node", options.node_name}, {"status", r.status}, {"error", r.error}});
    return;
  }
  auto labels = node_labels_of(r.body);
  if (!labels) {
    log::warn("capture", "cannot read this node's labels for nodeSelector; retrying", {{"error", labels.error().message}});
    return;
  }
  node_labels = std::move(*labels);
}

Result<std::string> CrdRunner::Impl::read_secret(const std::string& ns, const std::string& name) {
  k8s::HttpRequest req;
  req.path = fmt::format("/api/v1/namespaces/{}/secrets/{}", k8s::url_encode(ns), k8s::url_encode(name));
  req.timeout = std::chrono::seconds(10);
  auto r = http->get(req);
  if (r.ok()) return std::move(r.body);
  if (r.status == 404) return unexpected(Error::invalid(fmt::format("Secret {}/{} not found", ns, name)));
  if (r.status == 403) {
    return unexpected(Error::invalid(fmt::format("Secret {}/{}: the agent may not read it (RBAC)", ns, name)));
  }
  return unexpected(Error::invalid(fmt::format("Secret {}/{}: {}", ns, name,
                                               r.error.empty() ? fmt::format("HTTP {}", r.status) : r.error)));
}

void CrdRunner::Impl::handle(const std::string& key, const k8s::RawObject& o) {
  auto spec = parse_request_json(o.json);
  if (!spec) return fail(key, o.name, spec.error().message);
  // An object that does not select this node is left alone: no status.
  if (!manager->selects_node(*spec, *node_labels)) return;
  if (auto st = resolve_secrets(*spec, [&](const std::string& name) { return read_secret(o.namespace_, name); });
      !st) {
    return fail(key, o.name, st.error().message);
  }
  {
    std::lock_guard lock(mu);
    name_to_key[spec->name] = key;
  }
  auto started = manager->start(std::move(*spec));
  if (!started) return fail(key, o.name, started.error().message);
  running[key] = Running{id_of(o), o.name};
  log::info("capture", "Capture object started", {{"object", key}});
}

void CrdRunner::Impl::reconcile() {
  std::map<std::string, k8s::RawObject> now;
  {
    std::lock_guard lock(mu);
    now = objects;
    dirty = false;
  }
  // A deleted (or replaced) object cancels its capture; the bundle is still written.
  for (auto it = running.begin(); it != running.end();) {
    auto o = now.find(it->first);
    if (o == now.end() || id_of(o->second) != it->second.id) {
      (void)manager->cancel(it->second.capture);
      log::info("capture", "Capture object deleted: capture cancelled", {{"object", it->first}});
      it = running.erase(it);
    } else {
      ++it;
    }
  }
  std::set<std::string> present;
  for (const auto& [key, o] : now) {
    const std::string id = id_of(o);
    present.insert(id);
    if (handled.insert(id).second) handle(key, o);
  }
  std::erase_if(handled, [&](const std::string& id) { return !present.contains(id); });
}

void CrdRunner::Impl::run() {
  for (;;) {
    if (!node_labels) fetch_node_labels();
    if (node_labels) reconcile();
    flush();
    std::unique_lock lock(mu);
    const auto ready = [&] { return stopping || !pending.empty() || (dirty && node_labels); };
    if (node_labels) {
      cv.wait(lock, ready);
    } else {
      cv.wait_for(lock, kNodeRetry, ready);
    }
    if (stopping) break;
  }
  flush();
}

Result<std::unique_ptr<CrdRunner>> CrdRunner::start(Manager& manager, CrdOptions options) {
  std::unique_ptr<CrdRunner> r(new CrdRunner());
  r->impl_ = std::make_shared<Impl>();
  Impl& s = *r->impl_;
  s.manager = &manager;
  s.options = std::move(options);
  s.watch_options.client = s.options.client;
  s.watch_options.node_name = s.options.node_name;
  s.watch_options.watch_timeout = s.options.watch_timeout;
  s.credentials = std::make_shared<k8s::Credentials>(s.options.client);
  if (auto st = s.credentials->reload(); !st) return unexpected(st.error().wrap("Capture objects"));
  auto http = k8s::HttpStream::create(s.options.client, s.credentials, s.watch_options.connect_timeout);
  if (!http) return unexpected(http.error());
  s.http = std::move(*http);
  auto watch_http = k8s::HttpStream::create(s.options.client, s.credentials, s.watch_options.connect_timeout);
  if (!watch_http) return unexpected(watch_http.error());
  s.reflector = std::make_unique<k8s::Reflector>(
      k8s::Resource::kCaptures, k8s::api_path(k8s::Resource::kCaptures), std::string(), s.watch_options,
      std::move(*watch_http), s.credentials, k8s::make_raw_handler(k8s::Resource::kCaptures, s), s.watch_metrics,
      s.sync);
  manager.on_change([impl = r->impl_](const CaptureStatus& st) {
    Impl& s = *impl;
    std::lock_guard lock(s.mu);
    auto it = s.name_to_key.find(st.name);
    if (it == s.name_to_key.end()) return;
    s.pending[it->second] = node_status_patch(s.options.node_name, st);
    s.cv.notify_all();
  });
  s.worker = std::thread([&s] { s.run(); });
  s.reflector->start();
  return r;
}

CrdRunner::~CrdRunner() {
  if (!impl_) return;
  impl_->manager->on_change({});
  impl_->reflector->stop();
  {
    std::lock_guard lock(impl_->mu);
    impl_->stopping = true;
  }
  impl_->cv.notify_all();
  impl_->http->interrupt();
  if (impl_->worker.joinable()) impl_->worker.join();
}

}  // namespace retina::capture

namespace retina::capture {

void CrdRunnerDeleter::operator()(CrdRunner* r) const { delete r; }

Result<std::unique_ptr<CrdRunner, CrdRunnerDeleter>> start_crd_runner(Manager& manager, const Config& config) {
  auto client = k8s::resolve_client_config(config.kubeconfig);
  if (!client) return unexpected(client.error());
  CrdOptions o;
  o.client = std::move(*client);
  o.node_name = config.node_name;
  auto r = CrdRunner::start(manager, std::move(o));
  if (!r) return unexpected(r.error());
  return std::unique_ptr<CrdRunner, CrdRunnerDeleter>(r->release());
}

}  // namespace retina::capture
