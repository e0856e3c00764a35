// packetparser: every IPv4/IPv6 packet at the TC hooks of pod veths (and
// node interfaces), reported per packet (aggregation low) or through an
// in-kernel conntrack (aggregation high). See bpf/packetparser.bpf.c.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "retina/abi/events.h"
#include "retina/error.hpp"
#include "retina/ip.hpp"
#include "retina/plugin.hpp"

namespace retina {

class PacketParserPlugin final : public Plugin {
 public:
  PacketParserPlugin();
  ~PacketParserPlugin() override;

  static constexpr PluginNeeds kNeeds{.features = true, .interfaces = true, .ip_cache = true};

  std::string_view name() const override { return "packetparser"; }
  Status init(PluginContext& ctx) override;
  Status start() override;
  void stop() noexcept override;
  Status reconcile() override;
  std::vector<EventSource*> event_sources() override;

  // Replaces the "IPs of interest" (used when bypassLookupIPOfInterest is
  // off). More than filterMapMaxEntries addresses is an error.
  Status set_ips_of_interest(std::span<const IpAddr> ips);
  // With bypassLookupIPOfInterest off, sets the IPs of interest from the IP
  // cache as Retina's filter manager does: every address of a pod annotated
  // retina.sh: observe (on the pod or its namespace) or in a namespace that
  // metricsConfiguration.namespaces includes. start() and reconcile() call
  // it, so the filter follows the cache within one metricsIntervalDuration.
  Status refresh_ips_of_interest();

  // RETINA_STAT_* summed over CPUs.
  Result<std::array<uint64_t, RETINA_STAT_MAX>> stats() const;
  // One sweeper pass now (aggregation high). flush_all reports every
  // pending count whether or not its interval has passed.
  Status sweep(bool flush_all = false);
  // Sums written by the last sweep.
  Result<retina_ct_gauges> conntrack_gauges() const;
  // Aggregation low sends packets in per-CPU batches, each within a
  // millisecond of its first packet. Waits until every batch is sent (or,
  // ring full, counted lost), at most `timeout`; returns the records still
  // waiting (0 normally, and always 0 when not batched).
  uint32_t wait_batches_sent(std::chrono::milliseconds timeout = std::chrono::milliseconds(100));
  bool batched() const;

  struct Attachment {
    int ifindex = 0;
    std::string name;
    bool host = false;  // node interface (FROM/TO_NETWORK) rather than a pod veth
    bool tcx = false;
  };
  std::vector<Attachment> attachments() const;
  bool uses_tcx() const;
  // Why the plugin runs with less than it could (e.g. no sweeper); empty
  // when it runs fully. Includes the last attach failure, if any.
  std::string degraded_reason() const;
  // Program and map file descriptors, for tests that drive the programs
  // with BPF_PROG_TEST_RUN.
  int ingress_prog_fd() const;
  int egress_prog_fd() const;
  int interface_role_map_fd() const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

std::unique_ptr<Plugin> make_packetparser_plugin();

}  // namespace retina
