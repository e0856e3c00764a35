// tcpretrans: one record per TCP retransmission (any network namespace),
// from the tcp_retransmit_skb tracepoint: a BTF-typed (tp_btf) program when
// the kernel supports it, a raw tracepoint otherwise. The decoder turns the
// records into RETRANSMISSION flows that feed tcpretrans_count{direction}.
// See bpf/tcpretrans.bpf.c.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "retina/abi/events.h"
#include "retina/error.hpp"
#include "retina/plugin.hpp"

namespace retina {

struct TcpRetransOptions {
  // A power of two, page size to 1 GiB; 0: 128 KiB per online CPU, at
  // least 256 KiB.
  uint64_t ring_buffer_size = 0;
  // Use the raw tracepoint even where tp_btf works (tests the fallback).
  bool force_raw_tp = false;
};

// The tcp_retransmit_skb tracepoint's arguments in the running kernel.
struct RetransTracepointShape {
  bool has_err = false;  // (sk, skb, err) since Linux 6.13; (sk, skb) before
};
// Read from kernel BTF (the btf_trace_tcp_retransmit_skb typedef);
// kUnsupported when the tracepoint or BTF is missing or unexpected.
Result<RetransTracepointShape> retransmit_tracepoint_shape();

class TcpRetransPlugin final : public Plugin {
 public:
  explicit TcpRetransPlugin(TcpRetransOptions options = {});
  ~TcpRetransPlugin() override;

  static constexpr PluginNeeds kNeeds{.features = true};

  std::string_view name() const override { return "tcpretrans"; }
  Status init(PluginContext& ctx) override;
  Status start() override;
  void stop() noexcept override;
  std::vector<EventSource*> event_sources() override;

  struct Stats {
    std::array<uint64_t, RETINA_STAT_MAX> common{};     // RETINA_STAT_*: reports, ring-buffer full
    std::array<uint64_t, RETINA_RT_STAT_MAX> retrans{};  // RETINA_RT_STAT_*
  };
  Result<Stats> stats() const;
  // "tp_btf" or "raw_tp" (after init).
  std::string_view attach_kind() const;
  bool attached() const;
  // The loaded program (after init), for tests that look for its link.
  int prog_fd() const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

std::unique_ptr<Plugin> make_tcpretrans_plugin();

}  // namespace retina
