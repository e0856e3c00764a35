// How an agent configures its capture manager from the engine.
#include <fstream>
#include <sstream>

#include "retina/capture.hpp"
#include "retina/engine.hpp"

namespace retina::capture {

ManagerOptions manager_options(Engine& engine, const std::string& config_path, std::string version) {
  const Config& c = engine.config();
  ManagerOptions o;
  o.node_name = c.node_name;
  o.output_root = c.capture_output_root;
  o.limits.max_duration = std::chrono::duration_cast<std::chrono::milliseconds>(c.capture_max_duration);
  o.cache = engine.cache_ptr();
  o.registry = &engine.metrics();
  o.version = std::move(version);
  if (!config_path.empty()) {
    std::ifstream in(config_path);
    std::ostringstream ss;
    ss << in.rdbuf();
    o.agent_config_text = ss.str();
  } else {
    o.agent_config_text = "# no config file: defaults\n";
  }
  return o;
}

}  // namespace retina::capture
