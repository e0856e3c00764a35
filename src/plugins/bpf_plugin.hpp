// The part every BPF plugin does the same way, written once: the skeleton
// (open, size maps, load), its ring buffers as event sources, its kernel
// statistics as Prometheus series (unregistered when the plugin goes),
// feature probes and per-CPU statistics reads. A plugin keeps one as a
// member of its Impl (the skeleton type stays out of its public header) and
// writes only what is its own: configuration, attach and detach.
//
//   BpfPlugin<dns> bpf{"dns"};
//   bpf.require(*ctx.features, {KernelFeature::kCgroupSkb, KernelFeature::kRingBuf});
//   bpf.open(dns__open_opts, dns__load, dns__destroy);
//   bpf->rodata->cfg_x = 1;
//   bpf.set_max_entries(bpf->maps.retina_dns_evts, size);
//   bpf.load();  bpf.add_ring(bpf->maps.retina_dns_evts);
#pragma once

#include <bpf/libbpf.h>

#include <array>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "loader/bpf_object.hpp"
#include "loader/percpu.hpp"
#include "loader/ring_buffer.hpp"
#include "plugins/kernel_stats.hpp"
#include "retina/abi/events.h"
#include "retina/error.hpp"
#include "retina/features.hpp"
#include "retina/metrics/registry.hpp"
#include "retina/plugin.hpp"

namespace retina {

// kInvalid unless `size` is a power of two from the page size to 1 GiB (a
// BPF ring buffer's limits). `what` names the setting in the message.
Status validate_ring_buffer_size(std::string_view what, uint64_t size);

// A ring sized by the machine: `per_cpu` bytes for each online CPU (each
// CPU produces into the shared ring), at least `min`, rounded up to a power
// of two and capped at 1 GiB. Every page of a ring is resident in the
// agent once mapped, so a fixed large default costs small nodes memory.
uint64_t ring_size_by_cpus(uint64_t per_cpu, uint64_t min);
// `configured` when set, else ring_size_by_cpus(per_cpu, min): 0 means "by CPU count".
inline uint64_t ring_size_or_auto(uint64_t configured, uint64_t per_cpu, uint64_t min) {
  return configured ? configured : ring_size_by_cpus(per_cpu, min);
}

// kUnsupported "<plugin>: <why>" for the first feature the kernel lacks.
Status require_features(std::string_view plugin, FeatureDetector& features,
                        std::initializer_list<KernelFeature> needed);

template <class Skel>
class BpfPlugin {
 public:
  using OpenFn = typename loader::BpfObject<Skel>::OpenFn;
  using LoadFn = typename loader::BpfObject<Skel>::LoadFn;
  using DestroyFn = typename loader::BpfObject<Skel>::DestroyFn;

  explicit BpfPlugin(std::string name) : name_(std::move(name)) {}
  BpfPlugin(const BpfPlugin&) = delete;
  BpfPlugin& operator=(const BpfPlugin&) = delete;

  const std::string& name() const { return name_; }
  Status require(FeatureDetector& features, std::initializer_list<KernelFeature> needed) const {
    return require_features(name_, features, needed);
  }

  // Opens a fresh skeleton (dropping a previous one, e.g. after a failed
  // load); configure it through operator-> before load().
  Status open(OpenFn open_fn, LoadFn load_fn, DestroyFn destroy_fn) {
    auto o = loader::BpfObject<Skel>::open(name_, open_fn, load_fn, destroy_fn);
    if (!o) return unexpected(o.error().wrap(name_));
    obj_ = std::move(*o);
    return ok();
  }
  Status set_max_entries(bpf_map* map, uint64_t entries) {
    if (int err = bpf_map__set_max_entries(map, static_cast<uint32_t>(entries)); err)
      return unexpected(Error::system(
          fmt::format("{}: bpf_map__set_max_entries({}, {})", name_, bpf_map__name(map), entries), err));
    return ok();
  }
  Status load() {
    if (auto st = obj_.load(); !st) return unexpected(st.error().wrap(name_));
    return ok();
  }
  // A ring buffer of the loaded object, drained by the engine.
  Status add_ring(bpf_map* map) {
    auto ring = loader::RingBuffer::open(name_, bpf_map__fd(map));
    if (!ring) return unexpected(ring.error().wrap(name_));
    rings_.push_back(std::move(*ring));
    return ok();
  }
  // Exports per-CPU statistic maps through a KernelStatsCollector; a null
  // registry exports nothing.
  Status export_stats(metrics::Registry* registry, const std::vector<KernelStatsCollector::Map>& maps) {
    if (!registry) return ok();
    auto c = KernelStatsCollector::create(*registry, name_, maps);
    if (!c) return unexpected(c.error().wrap(name_ + " metrics"));
    collectors_.push_back(registry->add(std::move(*c)));
    return ok();
  }
  // The skeleton's retina_stats map (bpf/common.h) as exported statistics:
  // ring-buffer reserve failures become lost_events_counter{type="kernel"},
  // `stats` become bpf_events_total{plugin,stat}.
  KernelStatsCollector::Map common_stats(std::vector<KernelStatsCollector::Stat> stats) const {
    return {bpf_map__fd(obj_->maps.retina_stats), RETINA_STAT_MAX, std::move(stats), RETINA_STAT_RINGBUF_FULL};
  }
  // retina_stats and a plugin's own statistics map, summed over CPUs.
  template <size_t Own>
  Result<std::pair<std::array<uint64_t, RETINA_STAT_MAX>, std::array<uint64_t, Own>>> read_stats_pair(
      bpf_map* (*own)(const Skel&)) const {
    auto common = read_stats<RETINA_STAT_MAX>([](const Skel& s) { return s.maps.retina_stats; });
    if (!common) return unexpected(common.error());
    auto mine = read_stats<Own>(own);
    if (!mine) return unexpected(mine.error());
    return std::make_pair(*common, *mine);
  }
  // Registers a plugin-specific collector for as long as this object lives.
  void add_collector(metrics::Registry* registry, std::shared_ptr<metrics::Collector> c) {
    if (registry) collectors_.push_back(registry->add(std::move(c)));
  }
  // Keys 0..N-1 of a per-CPU __u64 array, summed over CPUs.
  template <size_t N>
  Result<std::array<uint64_t, N>> read_stats(bpf_map* (*map_of)(const Skel&)) const {
    if (!obj_.loaded()) return unexpected(Error::internal(name_ + ": not loaded"));
    auto v = loader::sum_percpu_array<N>(bpf_map__fd(map_of(*obj_.get())));
    if (!v) return unexpected(v.error().wrap(name_));
    return v;
  }

  std::vector<EventSource*> event_sources() const {
    std::vector<EventSource*> out;
    for (const auto& r : rings_) out.push_back(r.get());
    return out;
  }

  Skel* get() const { return obj_.get(); }
  Skel* operator->() const { return obj_.get(); }
  bool loaded() const { return obj_.loaded(); }

 private:
  std::string name_;
  loader::BpfObject<Skel> obj_;
  std::vector<std::unique_ptr<loader::RingBuffer>> rings_;
  std::vector<metrics::CollectorHandle> collectors_;  // declared last: unregistered first
};

}  // namespace retina
