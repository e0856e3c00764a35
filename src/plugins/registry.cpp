// The built-in plugin table: the one place a plugin is named. Each plugin
// lives in src/plugins/<name>/ and provides a factory; its row says which
// flow sources its ring buffers feed and which services it needs.
#include <array>
#include <memory>
#include <string_view>
#include <vector>

#include <fmt/format.h>

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

constexpr FlowSource kPacketParserEvents[] = {FlowSource::kPacketParser};
constexpr FlowSource kDropReasonEvents[] = {FlowSource::kDropReason};
constexpr FlowSource kDnsEvents[] = {FlowSource::kDns};
constexpr FlowSource kTcpRetransEvents[] = {FlowSource::kTcpRetrans};

using C = Capability;
// Capabilities, as measured on Linux 6.x (docs/security.md says why each):
//   BPF       maps, BTF and program loads;
//   PERFMON   tracing programs (tp_btf), and pointer reads in any program;
//   NET_ADMIN tc/tcx programs and their attach, cgroup socket programs;
//   NET_RAW   packetforward's AF_PACKET socket.
// packetparser attaches to every new pod veth and packetforward reopens its
// socket when the default route moves, so they keep theirs.
constexpr PluginCapabilities kPacketParserCaps{{C::kBpf, C::kPerfmon, C::kNetAdmin}, {C::kNetAdmin}};
constexpr PluginCapabilities kDropReasonCaps{{C::kBpf, C::kPerfmon}, {}};
constexpr PluginCapabilities kPacketForwardCaps{{C::kBpf, C::kNetRaw}, {C::kNetRaw}};
constexpr PluginCapabilities kDnsCaps{{C::kBpf, C::kPerfmon, C::kNetAdmin}, {}};
constexpr PluginCapabilities kTcpRetransCaps{{C::kBpf, C::kPerfmon}, {}};

const PluginInfo kBuiltins[] = {
    {"packetparser", &make_packetparser_plugin, kPacketParserEvents, PacketParserPlugin::kNeeds, kPacketParserCaps},
    {"dropreason", &make_dropreason_plugin, kDropReasonEvents, DropReasonPlugin::kNeeds, kDropReasonCaps},
    {"packetforward", &make_packetforward_plugin, {}, PacketForwardPlugin::kNeeds, kPacketForwardCaps},
    {"dns", &make_dns_plugin, kDnsEvents, DnsPlugin::kNeeds, kDnsCaps},
    {"tcpretrans", &make_tcpretrans_plugin, kTcpRetransEvents, TcpRetransPlugin::kNeeds, kTcpRetransCaps},
    {"linuxutil", &make_linuxutil_plugin, {}, {}, {}},
    {"infiniband", &make_infiniband_plugin, {}, {}, {}},
};

}  // namespace

std::span<const PluginInfo> builtin_plugins() { return kBuiltins; }

const PluginInfo* find_builtin_plugin(std::string_view name) {
  for (const PluginInfo& p : kBuiltins) {
    if (p.name == name) return &p;
  }
  return nullptr;
}

std::unique_ptr<Plugin> make_builtin_plugin(std::string_view name) {
  const PluginInfo* p = find_builtin_plugin(name);
  return p ? p->factory() : nullptr;
}

std::vector<std::string_view> builtin_plugin_names() {
  std::vector<std::string_view> names;
  names.reserve(std::size(kBuiltins));
  for (const PluginInfo& p : kBuiltins) names.push_back(p.name);
  return names;
}

Status check_context(std::string_view plugin, const PluginNeeds& needs, const PluginContext& ctx) {
  const char* missing = nullptr;
  if (needs.features && !ctx.features) missing = "feature detector";
  else if (needs.interfaces && !ctx.interfaces) missing = "interface watcher";
  else if (needs.ip_cache && !ctx.cache) missing = "IP cache";
  if (!missing) return ok();
  return unexpected(Error::internal(
      fmt::format("{}: the context lacks the {} the plugin needs (run it in an Engine or through PluginServices)",
                  plugin, missing)));
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
