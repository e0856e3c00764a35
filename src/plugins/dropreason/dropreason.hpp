// dropreason: every packet the kernel drops, by reason and direction, from
// the kfree_skb tracepoint (bpf/dropreason.bpf.c). Counts are aggregated
// in kernel and exported as drop_count / drop_bytes; per-flow drop events
// (verdict DROPPED) go through a rate-limited ring buffer into the
// pipeline. See docs/plugins/dropreason.md.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <vector>

#include "plugins/dropreason/btf_reasons.hpp"
#include "retina/abi/events.h"
#include "retina/error.hpp"
#include "retina/plugin.hpp"

namespace retina {

class DropReasonPlugin final : public Plugin {
 public:
  struct Options {
    // Count only drops in this network namespace (the inode number of
    // /proc/<pid>/ns/net); 0 counts every namespace. For tests and for
    // embedders that watch one namespace.
    uint32_t netns_inode = 0;
  };

  DropReasonPlugin();
  explicit DropReasonPlugin(Options options);
  ~DropReasonPlugin() override;

  static constexpr PluginNeeds kNeeds{.features = true};

  std::string_view name() const override { return "dropreason"; }
  Status init(PluginContext& ctx) override;
  Status start() override;
  void stop() noexcept override;
  // Reloads the reason names when modules with drop-reason subsystems
  // (openvswitch, mac80211) come or go.
  Status reconcile() override;
  std::vector<EventSource*> event_sources() override;

  struct Count {
    uint32_t reason = 0;    // raw enum skb_drop_reason value
    uint8_t direction = 0;  // RETINA_DROP_DIR_*
    uint64_t packets = 0;
    uint64_t bytes = 0;
  };
  // The in-kernel counts, summed over CPUs.
  Result<std::vector<Count>> counts() const;
  // RETINA_STAT_* summed over CPUs.
  Result<std::array<uint64_t, RETINA_STAT_MAX>> stats() const;
  // Tracepoint hits the kernel did not run the program for (it never lets
  // a tracing program recurse on a CPU).
  Result<uint64_t> missed() const;
  std::shared_ptr<const dropreason::DropReasonTable> reasons() const;
  // tp_btf/kfree_skb rather than raw_tp/kfree_skb.
  bool uses_tp_btf() const;
  uint64_t ring_buffer_size() const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

std::unique_ptr<Plugin> make_dropreason_plugin();

}  // namespace retina
