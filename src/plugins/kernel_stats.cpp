#include "plugins/kernel_stats.hpp"

#include <fcntl.h>

#include <cerrno>

#include <fmt/format.h>

#include "core/log.hpp"
#include "loader/percpu.hpp"
#include "plugins/packetparser/pp_metrics.hpp"
#include "retina/metrics/names.hpp"

namespace retina {

namespace names = metrics::names;

Result<std::shared_ptr<KernelStatsCollector>> KernelStatsCollector::create(metrics::Registry& registry,
                                                                           std::string_view plugin,
                                                                           const std::vector<Map>& maps) {
  std::shared_ptr<KernelStatsCollector> c(new KernelStatsCollector());
  c->plugin_ = std::string(plugin);
  auto& lost = registry.counter(names::kLostEvents, "Events lost before user space could count them",
                                {std::string(names::kType), std::string(names::kReason)});
  auto& events = registry.counter(kBpfEventsTotal, "Kernel-side event statistics of retina's BPF programs",
                                  {"plugin", "stat"});
  for (const Map& m : maps) {
    Source s;
    const int fd = ::fcntl(m.fd, F_DUPFD_CLOEXEC, 0);
    if (fd < 0) return unexpected(Error::system(fmt::format("fcntl(F_DUPFD_CLOEXEC, {} statistics map)", plugin), errno));
    s.fd.reset(fd);
    s.entries = m.entries;
    if (m.lost_index >= 0) {
      if (static_cast<uint64_t>(m.lost_index) >= m.entries)
        return unexpected(Error::internal(fmt::format("{}: lost-events index {} past {} entries", plugin, m.lost_index, m.entries)));
      s.series.emplace_back(static_cast<uint32_t>(m.lost_index), &lost.with({names::kLostKernel, plugin}));
    }
    for (const Stat& st : m.stats) {
      if (st.index >= m.entries)
        return unexpected(Error::internal(fmt::format("{}: statistic {} past {} entries", plugin, st.name, m.entries)));
      s.series.emplace_back(st.index, &events.with({plugin, st.name}));
    }
    c->sources_.push_back(std::move(s));
  }
  return c;
}

void KernelStatsCollector::refresh() {
  for (const Source& s : sources_) {
    auto v = loader::sum_percpu_u64(s.fd.get(), s.entries);
    if (!v) {
      log::warn(plugin_, "cannot read statistics", {{"error", v.error().message}});
      continue;
    }
    for (const auto& [index, counter] : s.series) counter->set((*v)[index]);
  }
}

}  // namespace retina
