// dns: every DNS message a socket on this node sends or receives (UDP and
// TCP port 53, IPv4 and IPv6), reported once, from two cgroup_skb programs
// on a cgroup v2 directory. See bpf/dns.bpf.c for the counting rule and
// docs/plugins/dns.md for why the hook is the socket.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "retina/abi/events.h"
#include "retina/error.hpp"
#include "retina/plugin.hpp"

namespace retina {

struct DnsOptions {
  // The cgroup v2 directory whose sockets (its own and its descendants')
  // are observed. Empty: the root of the cgroup v2 hierarchy, i.e. every
  // socket on the node.
  std::string cgroup_path;
  // A power of two, page size to 1 GiB (1 MiB holds ~1800 messages); 0:
  // 256 KiB per online CPU, at least 512 KiB.
  uint64_t ring_buffer_size = 0;
  // Messages remembered to recognise their second copy (LRU).
  uint32_t dedup_entries = 65536;
  // A UDP message sent by a local socket is matched with its arrival at a
  // local socket within this time; after it, it is taken as gone off-node.
  std::chrono::milliseconds udp_pending_ttl{5000};
  // A TCP message (by its sequence number) is remembered this long, so
  // retransmissions of it are not reported again.
  std::chrono::milliseconds tcp_seen_ttl{120000};
};

// The cgroup v2 root: /sys/fs/cgroup on unified hosts, /sys/fs/cgroup/unified
// on hybrid ones; kUnsupported when neither is a cgroup v2 mount.
Result<std::string> find_cgroup2_root();
// Whether `path` is a directory of a cgroup v2 hierarchy.
bool is_cgroup2_dir(const std::string& path);

class DnsPlugin final : public Plugin {
 public:
  explicit DnsPlugin(DnsOptions options = {});
  ~DnsPlugin() override;

  static constexpr PluginNeeds kNeeds{.features = true};

  std::string_view name() const override { return "dns"; }
  Status init(PluginContext& ctx) override;
  Status start() override;
  void stop() noexcept override;
  std::vector<EventSource*> event_sources() override;

  struct Stats {
    std::array<uint64_t, RETINA_STAT_MAX> common{};   // RETINA_STAT_*: reports, ring-buffer full, truncated
    std::array<uint64_t, RETINA_DNS_STAT_MAX> dns{};  // RETINA_DNS_STAT_*
  };
  Result<Stats> stats() const;
  // The cgroup directory attached to (after init).
  const std::string& cgroup_path() const;
  bool attached() const;
  // For tests that run the programs with BPF_PROG_TEST_RUN.
  int egress_prog_fd() const;
  int ingress_prog_fd() const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

std::unique_ptr<Plugin> make_dns_plugin();

}  // namespace retina
