#include "plugins/dropreason/dropreason.hpp"

#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>

#include <algorithm>
#include <cerrno>
#include <mutex>
#include <set>
#include <string>

#include <fmt/format.h>

#include "core/log.hpp"
#include "dropreason.skel.h"
#include "loader/percpu.hpp"
#include "plugins/bpf_plugin.hpp"
#include "plugins/dropreason/dr_metrics.hpp"
#include "retina/pipeline.hpp"

namespace retina {

namespace {

using dropreason::DropReasonTable;

constexpr uint64_t kNsPerSec = 1'000'000'000ull;
constexpr uint64_t kMinRing = 256ull << 10;
constexpr uint64_t kMaxRing = 64ull << 20;
// A drop record in the ring: the event and the ring's 8-byte header.
constexpr uint64_t kRecordBytes = sizeof(retina_drop_event) + 8;
// Frees that are not drops: excluded unless drop_include_expected.
constexpr std::string_view kExpected[] = {"NOT_DROPPED_YET", "CONSUMED", "NOT_SPECIFIED"};

struct LinkDeleter {
  void operator()(bpf_link* l) const { bpf_link__destroy(l); }
};
using LinkPtr = std::unique_ptr<bpf_link, LinkDeleter>;

// One second of events at the configured rate, as a power of two.
uint64_t ring_size_for(uint32_t events_per_second) {
  const uint64_t page = static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
  const uint64_t want = uint64_t{events_per_second} * kRecordBytes;
  uint64_t size = std::max(kMinRing, page);
  while (size < want && size < kMaxRing) size <<= 1;
  return size;
}

// Which modules with drop-reason subsystems have BTF now, e.g. "openvswitch".
std::set<std::string> subsystem_modules(const std::string& sys_root) {
  std::set<std::string> out;
  for (const auto& se : dropreason::kSubsystemEnums) {
    const std::string path = fmt::format("{}/kernel/btf/{}", sys_root, se.module);
    if (::access(path.c_str(), R_OK) == 0) out.emplace(se.module);
  }
  return out;
}

}  // namespace

struct DropReasonPlugin::Impl {
  Options options;
  Config cfg;
  std::string sys_root = "/sys";
  Pipeline* pipeline = nullptr;

  BpfPlugin<::dropreason> obj{"dropreason"};
  bool btf_prog = false;
  uint64_t ring_size = 0;
  LinkPtr link;

  mutable std::mutex mu;  // reasons, modules
  std::shared_ptr<const DropReasonTable> reasons;
  std::set<std::string> modules;

  std::shared_ptr<dropreason::DropMetrics> metrics;

  bpf_program* prog() const { return btf_prog ? obj->progs.retina_dr_btf : obj->progs.retina_dr_raw; }

  Status load(bool use_btf, const DropReasonTable& table) {
    if (auto st = obj.open(dropreason__open_opts, dropreason__load, dropreason__destroy); !st) return st;
    auto* skel = obj.get();

    uint64_t skip = 0;
    if (!cfg.drop_include_expected) {
      for (auto name : kExpected) {
        auto v = table.value(name);
        if (v && *v < 64) skip |= 1ull << *v;
        else if (v) log::warn("dropreason", "expected free cannot be left out", {{"reason", name}, {"value", *v}});
      }
    }
    skel->rodata->cfg_skip_mask = skip;
    skel->rodata->cfg_netns = options.netns_inode;
    skel->rodata->cfg_events = cfg.drop_events_per_second > 0 ? 1 : 0;
    // The budget is shared out evenly among the online CPUs, each with a
    // bucket of one second.
    long online = ::sysconf(_SC_NPROCESSORS_ONLN);
    if (online < 1) online = 1;
    const uint64_t per_cpu =
        std::max<uint64_t>(1, (uint64_t{cfg.drop_events_per_second} + static_cast<uint64_t>(online) - 1) /
                                  static_cast<uint64_t>(online));
    skel->rodata->cfg_event_cost_ns = kNsPerSec / per_cpu;
    skel->rodata->cfg_bucket_ns = kNsPerSec;
    // A wakeup per 64 records at most, and at least 4 per ring.
    skel->rodata->cfg_wakeup_bytes = std::min<uint64_t>(64 * kRecordBytes, ring_size / 4);

    if (auto st = obj.set_max_entries(skel->maps.retina_dr_evts, ring_size); !st) return st;
    bpf_program__set_autoload(skel->progs.retina_dr_btf, use_btf);
    bpf_program__set_autoload(skel->progs.retina_dr_raw, !use_btf);
    if (auto st = obj.load(); !st) return st;
    btf_prog = use_btf;
    return ok();
  }

  // Keys the program falls back to when the count map is full.
  Status add_overflow_keys() {
    auto ncpu = loader::possible_cpus();
    if (!ncpu) return unexpected(ncpu.error());
    std::vector<retina_pkt_counts> zero(static_cast<size_t>(*ncpu));
    for (uint8_t dir : {uint8_t{RETINA_DROP_DIR_INGRESS}, uint8_t{RETINA_DROP_DIR_EGRESS}}) {
      retina_drop_key k{};
      k.reason = RETINA_DROP_REASON_OVERFLOW;
      k.direction = dir;
      if (bpf_map_update_elem(bpf_map__fd(obj->maps.retina_dr_cnt), &k, zero.data(), BPF_NOEXIST) < 0 &&
          errno != EEXIST)
        return unexpected(Error::system("bpf_map_update_elem(retina_dr_cnt, overflow key)", errno));
    }
    return ok();
  }

  void publish(std::shared_ptr<const DropReasonTable> table) {
    {
      std::lock_guard lock(mu);
      reasons = table;
    }
    if (metrics) metrics->set_reasons(table);
    if (pipeline) pipeline->set_drop_reason_names(table->slots());
  }
};

DropReasonPlugin::DropReasonPlugin() : DropReasonPlugin(Options{}) {}
DropReasonPlugin::DropReasonPlugin(Options options) : impl_(std::make_unique<Impl>()) {
  impl_->options = options;
}

DropReasonPlugin::~DropReasonPlugin() { stop(); }

Status DropReasonPlugin::init(PluginContext& ctx) {
  auto& m = *impl_;
  if (!ctx.config) return unexpected(Error::invalid("dropreason: no config"));
  m.cfg = *ctx.config;
  // The BTF must describe the kernel the programs load into: always the
  // real /sys, whatever ctx.sys_root says (fixture trees for polling plugins).
  m.sys_root = "/sys";
  m.pipeline = ctx.pipeline;

  if (auto st = check_context("dropreason", kNeeds, ctx); !st) return st;
  FeatureDetector* features = ctx.features;
  if (auto st = m.obj.require(*features, {KernelFeature::kBpfSyscall, KernelFeature::kBtf, KernelFeature::kRingBuf});
      !st)
    return st;
  const auto tp_btf = features->probe(KernelFeature::kTpBtf);
  const auto raw_tp = features->probe(KernelFeature::kRawTp);
  if (!tp_btf && !raw_tp)
    return unexpected(Error::unsupported(fmt::format("dropreason: kernel can attach to the kfree_skb tracepoint neither "
                                                     "with tp_btf ({}) nor with raw_tp ({})",
                                                     tp_btf.error().message, raw_tp.error().message)));

  // The tracepoint must carry the reason, and this kernel's reasons have names.
  {
    errno = 0;
    std::unique_ptr<btf, void (*)(btf*)> vmlinux(btf__load_vmlinux_btf(), btf__free);
    if (!vmlinux)
      return unexpected(Error::unsupported(
          "dropreason: " + Error::system("btf__load_vmlinux_btf", errno ? errno : ENOENT).message));
    if (auto st = dropreason::check_kfree_skb_tracepoint(vmlinux.get()); !st)
      return unexpected(st.error().wrap("dropreason"));
  }
  auto table = DropReasonTable::load_kernel(m.sys_root);
  if (!table) {
    Error e = table.error().wrap("dropreason");
    if (e.kind != Error::Kind::kUnsupported) e.kind = Error::Kind::kUnsupported;
    return unexpected(e);
  }
  auto shared = std::make_shared<const DropReasonTable>(std::move(*table));
  m.modules = subsystem_modules(m.sys_root);

  m.ring_size = ring_size_for(m.cfg.drop_events_per_second);
  Status loaded = m.load(tp_btf.has_value(), *shared);
  if (!loaded && tp_btf && raw_tp) {
    log::warn("dropreason", "tp_btf/kfree_skb did not load; using raw_tp/kfree_skb", {{"error", loaded.error().message}});
    loaded = m.load(false, *shared);
  }
  if (!loaded) return loaded;
  if (auto st = m.add_overflow_keys(); !st) return unexpected(st.error().wrap("dropreason"));
  if (auto st = m.obj.add_ring(m.obj->maps.retina_dr_evts); !st) return st;

  if (ctx.registry) {
    auto mx = dropreason::DropMetrics::create(*ctx.registry, bpf_map__fd(m.obj->maps.retina_dr_core),
                                              bpf_map__fd(m.obj->maps.retina_dr_cnt),
                                              bpf_map__fd(m.obj->maps.retina_stats), bpf_program__fd(m.prog()), shared,
                                              m.cfg.kernel_drop_reasons);
    if (!mx) return unexpected(mx.error().wrap("dropreason metrics"));
    m.metrics = std::move(*mx);
    m.obj.add_collector(ctx.registry, m.metrics);
  }
  m.publish(shared);
  log::info("dropreason", "loaded",
            {{"program", m.btf_prog ? "tp_btf/kfree_skb" : "raw_tp/kfree_skb"}, {"reasons_named", shared->named()},
             {"events_per_second", m.cfg.drop_events_per_second}, {"ring_kib", m.ring_size >> 10},
             {"expected_frees", m.cfg.drop_include_expected}});
  return ok();
}

Status DropReasonPlugin::start() {
  auto& m = *impl_;
  if (!m.obj.loaded()) return unexpected(Error::internal("dropreason: start before init"));
  if (m.link) return ok();
  errno = 0;
  bpf_link* l = bpf_program__attach(m.prog());
  if (!l) {
    const int err = errno ? errno : EINVAL;
    return unexpected(Error::system(
        fmt::format("dropreason: bpf_program__attach({}/kfree_skb)", m.btf_prog ? "tp_btf" : "raw_tp"), err));
  }
  m.link.reset(l);
  return ok();
}

void DropReasonPlugin::stop() noexcept { impl_->link.reset(); }

Status DropReasonPlugin::reconcile() {
  auto& m = *impl_;
  if (!m.obj.loaded()) return ok();
  auto now = subsystem_modules(m.sys_root);
  {
    std::lock_guard lock(m.mu);
    if (now == m.modules) return ok();
    m.modules = now;
  }
  auto table = DropReasonTable::load_kernel(m.sys_root);
  if (!table) return unexpected(table.error().wrap("dropreason: reloading reason names"));
  log::info("dropreason", "drop-reason modules changed", {{"reasons_named", table->named()}});
  m.publish(std::make_shared<const DropReasonTable>(std::move(*table)));
  return ok();
}

std::vector<EventSource*> DropReasonPlugin::event_sources() { return impl_->obj.event_sources(); }

Result<std::vector<DropReasonPlugin::Count>> DropReasonPlugin::counts() const {
  if (!impl_->obj.loaded()) return unexpected(Error::internal("dropreason: not loaded"));
  auto raw = dropreason::read_drop_counts(bpf_map__fd(impl_->obj->maps.retina_dr_core),
                                         bpf_map__fd(impl_->obj->maps.retina_dr_cnt));
  if (!raw) return unexpected(raw.error());
  std::vector<Count> out;
  for (const auto& c : *raw) out.push_back(Count{c.reason, c.direction, c.packets, c.bytes});
  return out;
}

Result<std::array<uint64_t, RETINA_STAT_MAX>> DropReasonPlugin::stats() const {
  return impl_->obj.read_stats<RETINA_STAT_MAX>([](const ::dropreason& s) { return s.maps.retina_stats; });
}

Result<uint64_t> DropReasonPlugin::missed() const {
  if (!impl_->obj.loaded()) return unexpected(Error::internal("dropreason: not loaded"));
  return dropreason::read_recursion_misses(bpf_program__fd(impl_->prog()));
}

std::shared_ptr<const dropreason::DropReasonTable> DropReasonPlugin::reasons() const {
  std::lock_guard lock(impl_->mu);
  return impl_->reasons;
}

bool DropReasonPlugin::uses_tp_btf() const { return impl_->btf_prog; }
uint64_t DropReasonPlugin::ring_buffer_size() const { return impl_->ring_size; }

std::unique_ptr<Plugin> make_dropreason_plugin() { return std::make_unique<DropReasonPlugin>(); }

}  // namespace retina
