// The API server backed by an Engine: its registry, plugins and pipeline,
// and in /healthz its Kubernetes watcher, advanced metrics and flow log.
#include <chrono>
#include <string>
#include <utility>

#include <fmt/format.h>

#include "core/flow_json.hpp"
#include "retina/api_server.hpp"
#include "retina/engine.hpp"
#include "retina/metrics/registry.hpp"

namespace retina {
namespace {

void append_member(std::string& out, std::string_view key) {
  out.push_back(',');
  json::append_string(out, key);
  out.push_back(':');
}

void append_bool(std::string& out, std::string_view key, bool v) {
  append_member(out, key);
  out += v ? "true" : "false";
}

void append_text(std::string& out, std::string_view key, std::string_view v) {
  append_member(out, key);
  json::append_string(out, v);
}

// ,"kubernetes":{"state":...,"resources":[...]}; false when it failed.
bool append_kubernetes(std::string& out, const KubernetesHealth& h) {
  out += ",\"kubernetes\":{\"state\":";
  json::append_string(out, h.state);
  append_text(out, "reason", h.reason);
  if (h.state != "disabled") {
    append_text(out, "server", h.server);
    append_text(out, "context", h.context);
    out += ",\"resources\":[";
    bool first = true;
    for (const auto& r : h.resources) {
      if (!first) out.push_back(',');
      first = false;
      out += "{\"resource\":";
      json::append_string(out, k8s::to_string(r.resource));
      append_bool(out, "synced", r.synced);
      append_bool(out, "watch_up", r.watch_up);
      out += fmt::format(",\"objects\":{},\"relists\":{}", r.objects, r.relists);
      append_text(out, "resource_version", r.resource_version);
      append_text(out, "last_error", r.last_error);
      const auto since = r.last_sync.time_since_epoch();
      out += fmt::format(",\"last_sync_unix\":{}",
                         since.count() ? std::chrono::duration_cast<std::chrono::seconds>(since).count() : 0);
      out.push_back('}');
    }
    out.push_back(']');
  }
  out.push_back('}');
  return h.state != "failed";
}

void append_advanced(std::string& out, const AdvancedMetricsHealth& h) {
  out += ",\"advanced_metrics\":{\"enabled\":";
  out += h.enabled ? "true" : "false";
  if (h.enabled) {
    append_text(out, "context", h.context);
    append_text(out, "configuration", h.configuration);
    out += fmt::format(",\"generation\":{}", h.generation);
    append_bool(out, "pending", h.pending);
    append_text(out, "last_error", h.last_error);
  }
  out.push_back('}');
}

// ,"flow_log":{...}: reported, never failing the agent's health.
void append_flow_log(std::string& out, const FlowLogHealth& h) {
  out += ",\"flow_log\":{\"state\":";
  json::append_string(out, h.state);
  if (h.state != "disabled") {
    append_text(out, "path", h.path);
    append_text(out, "last_error", h.last_error);
    out += fmt::format(",\"written\":{},\"rotations\":{}", h.written, h.rotations);
  }
  out.push_back('}');
}

}  // namespace

ApiServerBackend engine_backend(Engine& engine) {
  ApiServerBackend b;
  b.metrics = [&engine](std::string& out) { engine.metrics().expose(out); };
  b.plugins = [&engine] { return engine.plugin_status(); };
  b.ready = [&engine] { return engine.ready(); };
  b.subscribe = [&engine](std::string name, size_t capacity, FlowFilter filter) {
    return engine.pipeline().subscribe(std::move(name), capacity, std::move(filter));
  };
  b.health_details = [&engine](std::string& out) {
    const bool k8s_ok = append_kubernetes(out, engine.kubernetes_health());
    append_advanced(out, engine.advanced_metrics_health());
    append_flow_log(out, engine.flow_log_health());
    return k8s_ok;
  };
  return b;
}

}  // namespace retina
