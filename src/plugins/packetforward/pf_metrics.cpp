#include "plugins/packetforward/pf_metrics.hpp"

#include <fcntl.h>

#include <bpf/bpf.h>

#include <cerrno>
#include <string>
#include <vector>


#include "core/log.hpp"
#include "loader/percpu.hpp"
#include "plugins/packetforward/packetforward.hpp"
#include "retina/metrics/names.hpp"

namespace retina::packetforward {

namespace names = metrics::names;

Result<Sums> read_sums(int counts_map_fd) {
  auto ncpu = loader::possible_cpus();
  if (!ncpu) return unexpected(ncpu.error());
  std::vector<retina_pkt_counts> values(static_cast<size_t>(*ncpu));
  Sums s;
  for (uint32_t key = 0; key < RETINA_FWD_MAX; ++key) {
    if (bpf_map_lookup_elem(counts_map_fd, &key, values.data()) < 0)
      return unexpected(Error::system("bpf_map_lookup_elem(retina_pf_cnt)", errno));
    for (const auto& v : values) {
      s.packets[key] += v.packets;
      s.bytes[key] += v.bytes;
    }
  }
  return s;
}

Result<std::shared_ptr<ForwardMetrics>> ForwardMetrics::create(metrics::Registry& registry, int counts_map_fd,
                                                               bool basic_families) {
  std::shared_ptr<ForwardMetrics> m(new ForwardMetrics());
  const int fd = ::fcntl(counts_map_fd, F_DUPFD_CLOEXEC, 0);
  if (fd < 0) return unexpected(Error::system("fcntl(F_DUPFD_CLOEXEC, retina_pf_cnt)", errno));
  m->fd_.reset(fd);
  const std::vector<std::string> labels = {std::string(names::kDirection)};
  auto& count = basic_families
                    ? registry.counter(names::kForwardCount, "Total forwarded packets", labels)
                    : registry.counter(kNodeForwardCount,
                                       "Packets received and sent on the node's default-route interface", labels);
  auto& bytes = basic_families
                    ? registry.counter(names::kForwardBytes, "Total forwarded bytes", labels)
                    : registry.counter(kNodeForwardBytes,
                                       "Bytes received and sent on the node's default-route interface", labels);
  constexpr std::string_view kDir[RETINA_FWD_MAX] = {"ingress", "egress"};
  for (uint32_t d = 0; d < RETINA_FWD_MAX; ++d) {
    m->packets_[d] = &count.with({kDir[d]});
    m->bytes_[d] = &bytes.with({kDir[d]});
  }
  return m;
}

void ForwardMetrics::refresh() {
  auto s = read_sums(fd_.get());
  if (!s) {
    log::warn("packetforward", "cannot read counters", {{"error", s.error().message}});
    return;
  }
  for (uint32_t d = 0; d < RETINA_FWD_MAX; ++d) {
    packets_[d]->set(s->packets[d]);
    bytes_[d]->set(s->bytes[d]);
  }
}

}  // namespace retina::packetforward
