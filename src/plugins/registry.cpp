// Built-in plugins by Retina name. Each plugin lives in
// src/plugins/<name>/<name>.hpp and declares
//   std::unique_ptr<Plugin> make_<name>_plugin();
// A plugin whose header is absent from this tree is known but not built:
// make_builtin_plugin() returns null for it and the engine reports it failed.
#include <array>
#include <memory>
#include <string_view>
#include <vector>

#include "retina/plugin.hpp"

#if __has_include("plugins/packetparser/packetparser.hpp")
#include "plugins/packetparser/packetparser.hpp"
#define RETINA_PLUGIN_PACKETPARSER make_packetparser_plugin
#endif
#if __has_include("plugins/dropreason/dropreason.hpp")
#include "plugins/dropreason/dropreason.hpp"
#define RETINA_PLUGIN_DROPREASON make_dropreason_plugin
#endif
#if __has_include("plugins/packetforward/packetforward.hpp")
#include "plugins/packetforward/packetforward.hpp"
#define RETINA_PLUGIN_PACKETFORWARD make_packetforward_plugin
#endif
#if __has_include("plugins/dns/dns.hpp")
#include "plugins/dns/dns.hpp"
#define RETINA_PLUGIN_DNS make_dns_plugin
#endif
#if __has_include("plugins/tcpretrans/tcpretrans.hpp")
#include "plugins/tcpretrans/tcpretrans.hpp"
#define RETINA_PLUGIN_TCPRETRANS make_tcpretrans_plugin
#endif
#if __has_include("plugins/linuxutil/linuxutil.hpp")
#include "plugins/linuxutil/linuxutil.hpp"
#define RETINA_PLUGIN_LINUXUTIL make_linuxutil_plugin
#endif
#if __has_include("plugins/infiniband/infiniband.hpp")
#include "plugins/infiniband/infiniband.hpp"
#define RETINA_PLUGIN_INFINIBAND make_infiniband_plugin
#endif

namespace retina {
namespace {

struct Builtin {
  std::string_view name;
  PluginFactory factory;  // null: known to Retina, not built here
};

const std::array<Builtin, 7> kBuiltins = {{
#ifdef RETINA_PLUGIN_PACKETPARSER
    {"packetparser", &RETINA_PLUGIN_PACKETPARSER},
#else
    {"packetparser", nullptr},
#endif
#ifdef RETINA_PLUGIN_DROPREASON
    {"dropreason", &RETINA_PLUGIN_DROPREASON},
#else
    {"dropreason", nullptr},
#endif
#ifdef RETINA_PLUGIN_PACKETFORWARD
    {"packetforward", &RETINA_PLUGIN_PACKETFORWARD},
#else
    {"packetforward", nullptr},
#endif
#ifdef RETINA_PLUGIN_DNS
    {"dns", &RETINA_PLUGIN_DNS},
#else
    {"dns", nullptr},
#endif
#ifdef RETINA_PLUGIN_TCPRETRANS
    {"tcpretrans", &RETINA_PLUGIN_TCPRETRANS},
#else
    {"tcpretrans", nullptr},
#endif
#ifdef RETINA_PLUGIN_LINUXUTIL
    {"linuxutil", &RETINA_PLUGIN_LINUXUTIL},
#else
    {"linuxutil", nullptr},
#endif
#ifdef RETINA_PLUGIN_INFINIBAND
    {"infiniband", &RETINA_PLUGIN_INFINIBAND},
#else
    {"infiniband", nullptr},
#endif
}};

}  // namespace

std::unique_ptr<Plugin> make_builtin_plugin(std::string_view name) {
  for (const Builtin& b : kBuiltins) {
    if (b.name == name) return b.factory ? b.factory() : nullptr;
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
