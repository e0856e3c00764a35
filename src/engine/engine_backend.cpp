// The API server backed by an Engine: its registry, plugins and pipeline.
#include <string>
#include <utility>

#include "retina/api_server.hpp"
#include "retina/engine.hpp"
#include "retina/metrics/registry.hpp"

namespace retina {

ApiServerBackend engine_backend(Engine& engine) {
  ApiServerBackend b;
  b.metrics = [&engine](std::string& out) { engine.metrics().expose(out); };
  b.plugins = [&engine] { return engine.plugin_status(); };
  b.ready = [&engine] { return engine.ready(); };
  b.subscribe = [&engine](std::string name, size_t capacity, FlowFilter filter) {
    return engine.pipeline().subscribe(std::move(name), capacity, std::move(filter));
  };
  return b;
}

}  // namespace retina
