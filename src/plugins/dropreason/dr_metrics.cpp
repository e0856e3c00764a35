#include "plugins/dropreason/dr_metrics.hpp"

#include <fcntl.h>
#include <linux/bpf.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "core/log.hpp"
#include "loader/percpu.hpp"
#include "metrics/retina_values.hpp"
#include "plugins/packetparser/pp_metrics.hpp"
#include "retina/metrics/names.hpp"

namespace retina::dropreason {

namespace names = metrics::names;

namespace {

// The RETINA_STAT_* this program moves.
constexpr uint32_t kStats[] = {RETINA_STAT_RATE_LIMITED, RETINA_STAT_REPORTS, RETINA_STAT_NOT_IP,
                               RETINA_STAT_TRUNCATED, RETINA_STAT_OTHER_PROTO};

Result<loader::UniqueFd> dup_fd(int fd, const char* what) {
  const int d = ::fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (d < 0) return unexpected(Error::system(fmt::format("fcntl(F_DUPFD_CLOEXEC, {})", what), errno));
  return loader::UniqueFd(d);
}

}  // namespace

std::string_view direction_name(uint8_t direction) {
  switch (direction) {
    case RETINA_DROP_DIR_INGRESS: return "ingress";
    case RETINA_DROP_DIR_EGRESS: return "egress";
    default: return "unknown";
  }
}

Result<std::vector<DropCount>> read_drop_counts(int core_map_fd, int counts_map_fd) {
  auto ncpu_r = loader::possible_cpus();
  if (!ncpu_r) return unexpected(ncpu_r.error());
  const size_t ncpu = static_cast<size_t>(*ncpu_r);
  std::vector<DropCount> out;

  // The array in one batch: every index, one value per CPU each.
  constexpr uint32_t kEntries = RETINA_DROP_REASON_SLOTS * 2;
  std::vector<uint32_t> keys(kEntries);
  std::vector<retina_pkt_counts> values(size_t{kEntries} * ncpu);
  uint32_t batch = 0;
  uint32_t count = kEntries;
  LIBBPF_OPTS(bpf_map_batch_opts, opts);
  int r = bpf_map_lookup_batch(core_map_fd, nullptr, &batch, keys.data(), values.data(), &count, &opts);
  if (r < 0 && r != -ENOENT) return unexpected(Error::system("bpf_map_lookup_batch(retina_dr_core)", -r));
  for (uint32_t i = 0; i < count; ++i) {
    DropCount c;
    c.reason = keys[i] / 2;
    c.direction = static_cast<uint8_t>(keys[i] % 2 + 1);
    for (size_t cpu = 0; cpu < ncpu; ++cpu) {
      c.packets += values[size_t{i} * ncpu + cpu].packets;
      c.bytes += values[size_t{i} * ncpu + cpu].bytes;
    }
    if (c.packets) out.push_back(c);
  }

  std::vector<retina_pkt_counts> v(ncpu);
  retina_drop_key cur{}, next{};
  bool first = true;
  while ((r = bpf_map_get_next_key(counts_map_fd, first ? nullptr : &cur, &next)) == 0) {
    first = false;
    cur = next;
    if (bpf_map_lookup_elem(counts_map_fd, &next, v.data()) < 0) {
      if (errno == ENOENT) continue;  // keys are never deleted; defensive
      return unexpected(Error::system("bpf_map_lookup_elem(retina_dr_cnt)", errno));
    }
    DropCount c;
    c.reason = next.reason;
    c.direction = next.direction;
    for (const auto& x : v) {
      c.packets += x.packets;
      c.bytes += x.bytes;
    }
    if (c.packets) out.push_back(c);
  }
  // The walk ends with ENOENT; anything else is a failure.
  if (r != -ENOENT) return unexpected(Error::system("bpf_map_get_next_key(retina_dr_cnt)", -r));
  return out;
}

Result<uint64_t> read_recursion_misses(int prog_fd) {
  bpf_prog_info info;
  std::memset(&info, 0, sizeof info);
  uint32_t len = sizeof info;
  if (bpf_obj_get_info_by_fd(prog_fd, &info, &len) < 0)
    return unexpected(Error::system("bpf_obj_get_info_by_fd(retina_dr prog)", errno));
  return info.recursion_misses;
}

Result<std::shared_ptr<DropMetrics>> DropMetrics::create(metrics::Registry& registry, int core_map_fd,
                                                         int counts_map_fd, int stats_map_fd, int prog_fd,
                                                         std::shared_ptr<const DropReasonTable> reasons,
                                                         bool kernel_reasons) {
  std::shared_ptr<DropMetrics> m(new DropMetrics());
  auto a = dup_fd(core_map_fd, "retina_dr_core");
  if (!a) return unexpected(a.error());
  m->core_fd_ = std::move(*a);
  auto c = dup_fd(counts_map_fd, "retina_dr_cnt");
  if (!c) return unexpected(c.error());
  auto s = dup_fd(stats_map_fd, "retina_stats");
  if (!s) return unexpected(s.error());
  auto p = dup_fd(prog_fd, "retina_dr prog");
  if (!p) return unexpected(p.error());
  m->counts_fd_ = std::move(*c);
  m->stats_fd_ = std::move(*s);
  m->prog_fd_ = std::move(*p);
  m->reasons_ = std::move(reasons);
  m->kernel_reasons_ = kernel_reasons;

  std::vector<std::string> labels = {std::string(names::kReason), std::string(names::kDirection)};
  if (kernel_reasons) labels.emplace_back(kKernelReasonLabel);
  m->count_family_ = &registry.counter(names::kDropCount, "Total dropped packets", labels);
  m->bytes_family_ = &registry.counter(names::kDropBytes, "Total dropped bytes", labels);
  m->lost_ = &registry
                  .counter(names::kLostEvents, "Events lost before user space could count them",
                           {std::string(names::kType), std::string(names::kReason)})
                  .with({names::kLostKernel, "dropreason"});
  auto& events =
      registry.counter(kBpfEventsTotal, "Kernel-side event statistics of retina's BPF programs", {"plugin", "stat"});
  for (uint32_t i : kStats) m->stats_[i] = &events.with({"dropreason", retina_stat_name(i)});
  m->missed_ = &events.with({"dropreason", "missed"});
  return m;
}

void DropMetrics::set_reasons(std::shared_ptr<const DropReasonTable> reasons) {
  std::lock_guard lock(mu_);
  reasons_ = std::move(reasons);
  series_.clear();
}

DropMetrics::Series& DropMetrics::series(uint32_t reason, uint8_t direction) {
  const uint64_t key = (uint64_t{reason} << 8) | direction;
  auto it = series_.find(key);
  if (it != series_.end()) return it->second;
  const std::string kernel = reasons_ ? reasons_->name(reason) : fmt::format("REASON_{}", reason);
  std::string_view retina = metrics::retina_reason(kernel);
  if (reason == RETINA_DROP_REASON_OVERFLOW) retina = metrics::kRetinaUnknownDrop;
  Series s;
  if (kernel_reasons_) {
    const std::string_view values[] = {retina.empty() ? std::string_view(kernel) : retina, direction_name(direction),
                                       kernel};
    s.packets = &count_family_->with(values);
    s.bytes = &bytes_family_->with(values);
  } else {
    if (retina.empty()) retina = metrics::kRetinaUnknownDrop;
    const std::string_view values[] = {retina, metrics::retina_drop_direction(retina)};
    s.packets = &count_family_->with(values);
    s.bytes = &bytes_family_->with(values);
  }
  return series_.emplace(key, s).first->second;
}

void DropMetrics::refresh() {
  std::lock_guard lock(mu_);
  auto counts = read_drop_counts(core_fd_.get(), counts_fd_.get());
  if (!counts) {
    log::warn("dropreason", "cannot read drop counts", {{"error", counts.error().message}});
  } else {
    // Several kernel (reason, direction) pairs share a series in Retina's
    // labels: sum them before mirroring.
    absl::flat_hash_map<metrics::Counter*, Sum> sums;
    for (const auto& c : *counts) {
      Series& s = series(c.reason, c.direction);
      Sum& sum = sums[s.packets];
      sum.series = &s;
      sum.packets += c.packets;
      sum.bytes += c.bytes;
    }
    for (const auto& [_, sum] : sums) {
      sum.series->packets->set(sum.packets);
      sum.series->bytes->set(sum.bytes);
    }
  }
  auto st = read_retina_stats(stats_fd_.get());
  if (!st) {
    log::warn("dropreason", "cannot read statistics", {{"error", st.error().message}});
  } else {
    lost_->set((*st)[RETINA_STAT_RINGBUF_FULL]);
    for (uint32_t i : kStats) stats_[i]->set((*st)[i]);
  }
  auto missed = read_recursion_misses(prog_fd_.get());
  if (missed) missed_->set(*missed);
}

}  // namespace retina::dropreason
