// Built-in plugins by Retina name. Each plugin lives in
// src/plugins/<name>/<name>.hpp and declares
//   std::unique_ptr<Plugin> make_<name>_plugin();
#include <array>
#include <memory>
#include <string_view>
#include <vector>

#include "plugins/dns/dns.hpp"
#include "plugins/dropreason/dropreason.hpp"
#include "plugins/infiniband/infiniband.hpp"
#include "plugins/linuxutil/linuxutil.hpp"
#include "plugins/packetforward/packetforward.hpp"
#include "plugins/packetparser/packetparser.hpp"
#include "plugins/tcpretrans/tcpretrans.hpp"
#include "retina/plugin.hpp"

namespace retina {
namespace {

struct Builtin {
  std::string_view name;
  PluginFactory factory;
};

const std::array<Builtin, 7> kBuiltins = {{
    {"packetparser", &make_packetparser_plugin},
    {"dropreason", &make_dropreason_plugin},
    {"packetforward", &make_packetforward_plugin},
    {"dns", &make_dns_plugin},
    {"tcpretrans", &make_tcpretrans_plugin},
    {"linuxutil", &make_linuxutil_plugin},
    {"infiniband", &make_infiniband_plugin},
}};

}  // namespace

std::unique_ptr<Plugin> make_builtin_plugin(std::string_view name) {
  for (const Builtin& b : kBuiltins) {
    if (b.name == name) return b.factory();
  }
  return nullptr;
}

std::vector<std::string_view> builtin_plugin_names() {
  std::vector<std::string_view> names;
  names.reserve(kBuiltins.size());
  for (const Builtin& b : kBuiltins) names.push_back(b.name);
  return names;
}

const char* to_string(PluginState s) {
  switch (s) {
    case PluginState::kPending: return "pending";
    case PluginState::kRunning: return "running";
    case PluginState::kDisabled: return "disabled";
    case PluginState::kFailed: return "failed";
    case PluginState::kStopped: return "stopped";
  }
  return "unknown";
}

}  // namespace retina
