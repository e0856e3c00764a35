#include "support/capability_wrapper.hpp"

#include <cctype>
#include <cstdlib>
#include <stdexcept>

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include "core/file.hpp"

namespace retina::test {

std::vector<std::string> daemonset_capabilities() {
  const YAML::Node ds = YAML::LoadFile(std::string(RETINA_SOURCE_DIR) + "/deploy/kubernetes/daemonset.yaml");
  for (const auto& c : ds["spec"]["template"]["spec"]["containers"]) {
    if (c["name"].as<std::string>() != "retina") continue;
    return c["securityContext"]["capabilities"]["add"].as<std::vector<std::string>>();
  }
  throw std::runtime_error("deploy/kubernetes/daemonset.yaml: no container named retina");
}

CapabilitySet to_capability_set(const std::vector<std::string>& names) {
  CapabilitySet out;
  for (const auto& n : names) {
    auto c = parse_capability(n);
    if (!c) throw std::runtime_error("unknown capability " + n);
    out |= CapabilitySet{*c};
  }
  return out;
}

std::vector<std::string> setpriv_wrapper(const std::vector<std::string>& caps) {
  std::string list = "-all";
  for (const auto& c : caps) {
    std::string lower;
    for (char ch : c) lower += static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    list += ",+" + lower;
  }
  return {"/usr/bin/setpriv", "--inh-caps=-all", "--ambient-caps=-all", "--bounding-set=" + list, "--"};
}

std::optional<std::vector<std::string>> agent_capabilities_from_env() {
  const char* v = std::getenv("RETINA_AGENT_CAPS");
  if (!v || !*v) return std::nullopt;
  const std::string value = v;
  if (value == "daemonset") return daemonset_capabilities();
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos <= value.size()) {
    size_t end = value.find(',', pos);
    if (end == std::string::npos) end = value.size();
    if (end > pos) out.push_back(value.substr(pos, end - pos));
    pos = end + 1;
  }
  (void)to_capability_set(out);  // an unknown name fails here, not in setpriv
  return out;
}

ThreadCapabilities process_capabilities(int pid) {
  auto text = read_file(fmt::format("/proc/{}/status", pid));
  if (!text) throw std::runtime_error(text.error().message);
  auto caps = parse_status_capabilities(*text);
  if (!caps) throw std::runtime_error(caps.error().message);
  return *caps;
}

}  // namespace retina::test
