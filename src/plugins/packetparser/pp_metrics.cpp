#include "plugins/packetparser/pp_metrics.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <bpf/bpf.h>

#include <cerrno>


#include "core/log.hpp"
#include "loader/percpu.hpp"
#include "retina/metrics/names.hpp"

namespace retina {

namespace names = metrics::names;

const char* retina_stat_name(uint32_t stat) {
  switch (stat) {
    case RETINA_STAT_RINGBUF_FULL: return "ringbuf_full";
    case RETINA_STAT_CT_FULL: return "conntrack_full";
    case RETINA_STAT_SAMPLED_OUT: return "sampled_out";
    case RETINA_STAT_RATE_LIMITED: return "rate_limited";
    case RETINA_STAT_NOT_IP: return "not_ip";
    case RETINA_STAT_TRUNCATED: return "truncated";
    case RETINA_STAT_CT_EXPIRED: return "conntrack_expired";
    case RETINA_STAT_REPORTS: return "reports";
    case RETINA_STAT_OTHER_PROTO: return "other_protocol";
    default: return "unknown";
  }
}

Result<std::array<uint64_t, RETINA_STAT_MAX>> read_retina_stats(int stats_map_fd) {
  return loader::sum_percpu_array<RETINA_STAT_MAX>(stats_map_fd);
}

Result<retina_ct_gauges> read_ct_gauges(int gauges_map_fd) {
  retina_ct_gauges g{};
  uint32_t key = 0;
  if (bpf_map_lookup_elem(gauges_map_fd, &key, &g) < 0)
    return unexpected(Error::system("bpf_map_lookup_elem(retina_pp_ctg)", errno));
  return g;
}

Result<std::shared_ptr<PacketParserMetrics>> PacketParserMetrics::create(metrics::Registry& registry, int stats_map_fd,
                                                                         int gauges_map_fd) {
  std::shared_ptr<PacketParserMetrics> m(new PacketParserMetrics());
  int fd = ::fcntl(stats_map_fd, F_DUPFD_CLOEXEC, 0);
  if (fd < 0) return unexpected(Error::system("fcntl(F_DUPFD_CLOEXEC, retina_stats)", errno));
  m->stats_fd_.reset(fd);
  if (gauges_map_fd >= 0) {
    fd = ::fcntl(gauges_map_fd, F_DUPFD_CLOEXEC, 0);
    if (fd < 0) return unexpected(Error::system("fcntl(F_DUPFD_CLOEXEC, retina_pp_ctg)", errno));
    m->gauges_fd_.reset(fd);
  }

  auto& lost = registry.counter(names::kLostEvents, "Events lost before user space could count them",
                                {std::string(names::kType), std::string(names::kReason)});
  m->lost_ = &lost.with({names::kLostKernel, "packetparser"});
  auto& events = registry.counter(kBpfEventsTotal, "Kernel-side event statistics of retina's BPF programs",
                                  {"plugin", "stat"});
  for (uint32_t i = 0; i < RETINA_STAT_MAX; ++i) {
    if (i == RETINA_STAT_RINGBUF_FULL) continue;  // exported as lost_events_counter
    m->stats_[i] = &events.with({"packetparser", retina_stat_name(i)});
  }
  if (m->gauges_fd_) {
    m->packets_tx_ = &registry.gauge(names::kConntrackPacketsTx, "Packets from initiators of live conntrack entries").with({});
    m->packets_rx_ = &registry.gauge(names::kConntrackPacketsRx, "Packets to initiators of live conntrack entries").with({});
    m->bytes_tx_ = &registry.gauge(names::kConntrackBytesTx, "Bytes from initiators of live conntrack entries").with({});
    m->bytes_rx_ = &registry.gauge(names::kConntrackBytesRx, "Bytes to initiators of live conntrack entries").with({});
    m->connections_ = &registry.gauge(names::kConntrackTotalConnections, "Live conntrack entries").with({});
  }
  return m;
}

void PacketParserMetrics::refresh() {
  auto s = read_retina_stats(stats_fd_.get());
  if (!s) {
    log::warn("packetparser", "cannot read statistics", {{"error", s.error().message}});
  } else {
    lost_->set((*s)[RETINA_STAT_RINGBUF_FULL]);
    for (uint32_t i = 0; i < RETINA_STAT_MAX; ++i)
      if (stats_[i]) stats_[i]->set((*s)[i]);
  }
  if (gauges_fd_) {
    auto g = read_ct_gauges(gauges_fd_.get());
    if (!g) {
      log::warn("packetparser", "cannot read conntrack gauges", {{"error", g.error().message}});
      return;
    }
    packets_tx_->set(static_cast<double>(g->packets_tx));
    packets_rx_->set(static_cast<double>(g->packets_rx));
    bytes_tx_->set(static_cast<double>(g->bytes_tx));
    bytes_rx_->set(static_cast<double>(g->bytes_rx));
    connections_->set(static_cast<double>(g->connections));
  }
}

}  // namespace retina
