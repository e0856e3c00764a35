#include "capture/crd.hpp"

#include <algorithm>
#include <condition_variable>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include <fmt/format.h>
#include <simdjson.h>

#include "core/flow_json.hpp"
#include "core/log.hpp"
#include "k8s/http_client.hpp"

namespace retina::capture {
namespace {

namespace dom = simdjson::dom;

struct Object {
  std::string ns, name, uid;
  std::string json;  // the whole object
};

// The items of a Capture list.
Result<std::vector<Object>> parse_list(const std::string& body) {
  dom::parser parser;
  dom::element doc;
  if (parser.parse(simdjson::padded_string(body)).get(doc)) return unexpected(Error::parse("Capture list: invalid JSON"));
  dom::array items;
  if (doc["items"].get_array().get(items)) return std::vector<Object>{};
  std::vector<Object> out;
  for (dom::element item : items) {
    Object o;
    std::string_view v;
    if (!item["metadata"]["namespace"].get_string().get(v)) o.ns = v;
    if (!item["metadata"]["name"].get_string().get(v)) o.name = v;
    if (!item["metadata"]["uid"].get_string().get(v)) o.uid = v;
    o.json = simdjson::minify(item);
    if (!o.name.empty()) out.push_back(std::move(o));
  }
  return out;
}

// The node's labels, "key=value".
std::vector<std::string> node_labels_of(const std::string& body, const std::string& node) {
  std::vector<std::string> out = {"kubernetes.io/hostname=" + node};
  dom::parser parser;
  dom::element doc;
  if (parser.parse(simdjson::padded_string(body)).get(doc)) return out;
  dom::array items;
  if (doc["items"].get_array().get(items)) return out;
  for (dom::element item : items) {
    std::string_view name;
    if (item["metadata"]["name"].get_string().get(name) || name != node) continue;
    dom::object labels;
    if (item["metadata"]["labels"].get_object().get(labels)) break;
    out.clear();
    for (auto [k, v] : labels) {
      std::string_view value;
      if (!v.get_string().get(value)) out.push_back(fmt::format("{}={}", k, value));
    }
    std::sort(out.begin(), out.end());
    break;
  }
  return out;
}

std::string key_of(const Object& o) { return o.ns + "/" + o.name; }

}  // namespace

std::string node_status_patch(const std::string& node, const CaptureStatus& s) {
  std::string out = "{\"status\":{\"nodes\":{";
  json::append_string(out, node);
  out.push_back(':');
  out += status_to_json(s);
  out += "}}}";
  return out;
}

struct CrdRunner::Impl {
  Manager* manager = nullptr;
  CrdOptions options;
  std::unique_ptr<k8s::HttpStream> http;
  std::mutex mu;
  std::condition_variable cv;
  bool stopping = false;
  std::thread thread;
  std::vector<std::string> node_labels;
  // Objects this node has handled (by uid): never started twice.
  std::set<std::string> handled;
  // Running captures started from objects: key -> capture name.
  std::map<std::string, std::string> running;
  // Status changes to write, by object key.
  std::map<std::string, std::string> pending;
  std::map<std::string, std::string> name_to_key;

  void run();
  void poll_once();
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

void CrdRunner::Impl::poll_once() {
  if (node_labels.empty()) {
    k8s::HttpRequest req;
    // Once, for nodeSelector: the node's labels.
    req.path = "/api/v1/nodes";
    req.timeout = std::chrono::seconds(10);
    const auto r = http->get(req);
    if (r.ok()) node_labels = node_labels_of(r.body, options.node_name);
  }
  k8s::HttpRequest req;
  req.path = fmt::format("{}/captures", kCaptureGroupPath);
  req.timeout = std::chrono::seconds(20);
  const auto r = http->get(req);
  if (!r.ok()) {
    log::debug("capture", "cannot list Capture objects", {{"status", r.status}, {"error", r.error}});
    return;
  }
  auto objects = parse_list(r.body);
  if (!objects) return;
  std::set<std::string> present;
  for (const auto& o : *objects) {
    const std::string key = key_of(o);
    present.insert(key);
    const std::string id = o.uid.empty() ? key : o.uid;
    if (handled.contains(id)) continue;
    auto spec = parse_request_json(o.json);
    if (!spec) {
      handled.insert(id);
      CaptureStatus st;
      st.name = o.name;
      st.node = options.node_name;
      st.state = State::kFailed;
      st.message = spec.error().message;
      patch(key, node_status_patch(options.node_name, st));
      continue;
    }
    // An object that does not select this node is left alone: no status.
    if (!manager->selects_node(*spec, node_labels.empty() ? std::vector<std::string>{"kubernetes.io/hostname=" + options.node_name} : node_labels)) {
      handled.insert(id);
      continue;
    }
    handled.insert(id);
    {
      std::lock_guard lock(mu);
      name_to_key[spec->name] = key;
    }
    auto started = manager->start(std::move(*spec));
    if (!started) {
      CaptureStatus st;
      st.name = o.name;
      st.node = options.node_name;
      st.state = State::kFailed;
      st.message = started.error().message;
      patch(key, node_status_patch(options.node_name, st));
      continue;
    }
    running[key] = o.name;
    log::info("capture", "Capture object started", {{"object", key}});
  }
  // A deleted object cancels its capture (the bundle is still written).
  for (auto it = running.begin(); it != running.end();) {
    if (!present.contains(it->first)) {
      (void)manager->cancel(it->second);
      it = running.erase(it);
    } else {
      ++it;
    }
  }
}

void CrdRunner::Impl::run() {
  for (;;) {
    poll_once();
    flush();
    std::unique_lock lock(mu);
    cv.wait_for(lock, options.poll_interval, [&] { return stopping || !pending.empty(); });
    if (stopping) break;
  }
  flush();
}

Result<std::unique_ptr<CrdRunner>> CrdRunner::start(Manager& manager, CrdOptions options) {
  auto creds = std::make_shared<k8s::Credentials>(options.client);
  auto http = k8s::HttpStream::create(options.client, creds, std::chrono::seconds(10));
  if (!http) return unexpected(http.error());
  std::unique_ptr<CrdRunner> r(new CrdRunner());
  r->impl_ = std::make_shared<Impl>();
  Impl& s = *r->impl_;
  s.manager = &manager;
  s.options = std::move(options);
  s.http = std::move(*http);
  manager.on_change([impl = r->impl_](const CaptureStatus& st) {
    Impl& s = *impl;
    std::lock_guard lock(s.mu);
    auto it = s.name_to_key.find(st.name);
    if (it == s.name_to_key.end()) return;
    s.pending[it->second] = node_status_patch(s.options.node_name, st);
    s.cv.notify_all();
  });
  s.thread = std::thread([&s] { s.run(); });
  return r;
}

CrdRunner::~CrdRunner() {
  if (!impl_) return;
  impl_->manager->on_change({});
  {
    std::lock_guard lock(impl_->mu);
    impl_->stopping = true;
  }
  impl_->cv.notify_all();
  impl_->http->interrupt();
  if (impl_->thread.joinable()) impl_->thread.join();
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
  o.poll_interval = config.capture_poll_interval;
  auto r = CrdRunner::start(manager, std::move(o));
  if (!r) return unexpected(r.error());
  return std::unique_ptr<CrdRunner, CrdRunnerDeleter>(r->release());
}

}  // namespace retina::capture
