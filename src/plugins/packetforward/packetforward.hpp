// packetforward: packets and bytes the node sends and receives on its
// default-route interface, counted by a socket filter on an AF_PACKET
// socket (bpf/packetforward.bpf.c) that never lets a packet through to the
// socket. The socket follows the default route when it moves.
//
// Exported at node level as forward_count / forward_bytes{direction} when
// packetparser is not enabled; otherwise as node_forward_count /
// node_forward_bytes{direction}, so nothing is counted twice. See
// docs/plugins/packetforward.md.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "loader/interface_watcher.hpp"
#include "retina/abi/events.h"
#include "retina/error.hpp"
#include "retina/plugin.hpp"

namespace retina {

inline constexpr std::string_view kNodeForwardCount = "networkobservability_node_forward_count";
inline constexpr std::string_view kNodeForwardBytes = "networkobservability_node_forward_bytes";

class PacketForwardPlugin final : public Plugin {
 public:
  PacketForwardPlugin();
  ~PacketForwardPlugin() override;

  static constexpr PluginNeeds kNeeds{.features = true, .interfaces = true};

  std::string_view name() const override { return "packetforward"; }
  Status init(PluginContext& ctx) override;
  Status start() override;
  void stop() noexcept override;
  // Follows the default route again and retries a failed bind; an error
  // says why no interface is being counted.
  Status reconcile() override;

  struct Totals {
    std::array<uint64_t, RETINA_FWD_MAX> packets{};  // by enum retina_fwd_dir
    std::array<uint64_t, RETINA_FWD_MAX> bytes{};
  };
  // The kernel counts, summed over CPUs; they keep growing across moves of
  // the default route.
  Result<Totals> totals() const;
  // The interface the socket is bound to, if any.
  std::optional<InterfaceInfo> bound_interface() const;
  // true: forward_count/_bytes (packetparser off); false: node_forward_*.
  bool exports_basic_forward() const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

std::unique_ptr<Plugin> make_packetforward_plugin();

}  // namespace retina
