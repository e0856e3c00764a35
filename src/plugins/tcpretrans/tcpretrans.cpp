#include "plugins/tcpretrans/tcpretrans.hpp"

#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>

#include <cerrno>
#include <mutex>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "loader/bpf_object.hpp"
#include "loader/fd.hpp"
#include "loader/percpu.hpp"
#include "loader/ring_buffer.hpp"
#include "plugins/kernel_stats.hpp"
#include "retina/features.hpp"
#include "retina/metrics/registry.hpp"
#include "tcpretrans.skel.h"

namespace retina {

namespace {

constexpr uint64_t kMaxRingBuffer = 1ull << 30;
constexpr const char* kTracepoint = "tcp_retransmit_skb";

bool is_pow2(uint64_t v) { return v && (v & (v - 1)) == 0; }

Status validate(const TcpRetransOptions& o) {
  const uint64_t page = static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
  if (!is_pow2(o.ring_buffer_size) || o.ring_buffer_size < page || o.ring_buffer_size > kMaxRingBuffer)
    return unexpected(Error::invalid(fmt::format("tcpretrans options: ring buffer size {} must be a power of two between {} and {}",
                                                 o.ring_buffer_size, page, kMaxRingBuffer)));
  return ok();
}

enum class Kind { kTpBtf, kRawTp };

}  // namespace

Result<RetransTracepointShape> retransmit_tracepoint_shape() {
  btf* vmlinux = btf__load_vmlinux_btf();
  if (!vmlinux) return unexpected(Error::unsupported("kernel has no BTF (/sys/kernel/btf/vmlinux)"));
  struct Free {
    btf* b;
    ~Free() { btf__free(b); }
  } guard{vmlinux};
  const int id = btf__find_by_name_kind(vmlinux, "btf_trace_tcp_retransmit_skb", BTF_KIND_TYPEDEF);
  if (id <= 0) return unexpected(Error::unsupported("kernel has no tcp_retransmit_skb tracepoint (needs 4.15+)"));
  const btf_type* t = btf__type_by_id(vmlinux, static_cast<uint32_t>(id));
  if (t) t = btf__type_by_id(vmlinux, t->type);                      // the pointer
  if (t && btf_is_ptr(t)) t = btf__type_by_id(vmlinux, t->type);     // the prototype
  if (!t || !btf_is_func_proto(t))
    return unexpected(Error::unsupported("btf_trace_tcp_retransmit_skb is not a pointer to a function prototype"));
  // The first parameter is the tracepoint's own data pointer.
  switch (btf_vlen(t)) {
    case 3: return RetransTracepointShape{false};
    case 4: return RetransTracepointShape{true};
    default:
      return unexpected(Error::unsupported(
          fmt::format("tcp_retransmit_skb has {} arguments; expected (sk, skb) or (sk, skb, err)", btf_vlen(t) - 1)));
  }
}

struct TcpRetransPlugin::Impl {
  TcpRetransOptions opts;
  Kind kind = Kind::kTpBtf;
  RetransTracepointShape shape;
  loader::BpfObject<tcpretrans> obj;
  bpf_program* prog = nullptr;
  std::unique_ptr<loader::RingBuffer> ring;
  metrics::Registry* registry = nullptr;
  uint64_t collector_id = 0;

  mutable std::mutex mu;  // link
  loader::UniqueFd link;
};

TcpRetransPlugin::TcpRetransPlugin(TcpRetransOptions options) : impl_(std::make_unique<Impl>()) {
  impl_->opts = options;
}

TcpRetransPlugin::~TcpRetransPlugin() {
  stop();
  if (impl_->registry && impl_->collector_id) impl_->registry->remove_collector(impl_->collector_id);
}

Status TcpRetransPlugin::init(PluginContext& ctx) {
  auto& m = *impl_;
  if (auto st = validate(m.opts); !st) return st;

  std::unique_ptr<FeatureDetector> own;
  FeatureDetector* features = ctx.features;
  if (!features) {
    own = make_kernel_feature_detector();
    features = own.get();
  }
  // BTF for CO-RE: the socket's fields move between kernels.
  for (KernelFeature f : {KernelFeature::kBpfSyscall, KernelFeature::kRingBuf, KernelFeature::kBtf}) {
    if (auto st = features->probe(f); !st) return unexpected(Error::unsupported("tcpretrans: " + st.error().message));
  }
  Status tp_btf = unexpected(Error::unsupported("not used: raw_tp forced"));
  if (!m.opts.force_raw_tp) tp_btf = features->probe(KernelFeature::kTpBtf);
  if (tp_btf) {
    m.kind = Kind::kTpBtf;
  } else if (auto raw = features->probe(KernelFeature::kRawTp); raw) {
    m.kind = Kind::kRawTp;
  } else {
    return unexpected(Error::unsupported(fmt::format("tcpretrans: no tracepoint program type: tp_btf: {}; raw_tp: {}",
                                                     tp_btf.error().message, raw.error().message)));
  }
  auto shape = retransmit_tracepoint_shape();
  if (!shape) return unexpected(shape.error().wrap("tcpretrans"));
  m.shape = *shape;

  auto obj = loader::BpfObject<tcpretrans>::open("tcpretrans", tcpretrans__open_opts, tcpretrans__load,
                                                 tcpretrans__destroy);
  if (!obj) return unexpected(obj.error().wrap("tcpretrans"));
  m.obj = std::move(*obj);
  auto* skel = m.obj.get();
  auto& p = skel->progs;
  m.prog = m.kind == Kind::kTpBtf ? (m.shape.has_err ? p.retina_rt_btf_e : p.retina_rt_btf)
                                  : (m.shape.has_err ? p.retina_rt_raw_e : p.retina_rt_raw);
  for (bpf_program* candidate : {p.retina_rt_btf, p.retina_rt_btf_e, p.retina_rt_raw, p.retina_rt_raw_e})
    bpf_program__set_autoload(candidate, candidate == m.prog);
  if (int err = bpf_map__set_max_entries(skel->maps.retina_rt_evts, static_cast<uint32_t>(m.opts.ring_buffer_size)); err)
    return unexpected(Error::system(
        fmt::format("tcpretrans: bpf_map__set_max_entries(retina_rt_evts, {})", m.opts.ring_buffer_size), err));
  if (auto st = m.obj.load(); !st) return unexpected(st.error().wrap("tcpretrans"));

  auto ring = loader::RingBuffer::open("tcpretrans", bpf_map__fd(skel->maps.retina_rt_evts));
  if (!ring) return unexpected(ring.error().wrap("tcpretrans"));
  m.ring = std::move(*ring);

  m.registry = ctx.registry;
  if (m.registry) {
    using S = KernelStatsCollector::Stat;
    std::vector<KernelStatsCollector::Map> maps = {
        {bpf_map__fd(skel->maps.retina_stats), RETINA_STAT_MAX, {S{RETINA_STAT_REPORTS, "reports"}},
         RETINA_STAT_RINGBUF_FULL},
        {bpf_map__fd(skel->maps.retina_rt_stats), RETINA_RT_STAT_MAX,
         {S{RETINA_RT_STAT_FAILED, "retransmit_failed"}, S{RETINA_RT_STAT_OTHER_FAMILY, "other_family"}}, -1},
    };
    auto c = KernelStatsCollector::create(*m.registry, "tcpretrans", maps);
    if (!c) return unexpected(c.error().wrap("tcpretrans metrics"));
    m.collector_id = m.registry->add_collector(std::move(*c));
  }
  spdlog::info("tcpretrans: loaded ({}, tracepoint {})", attach_kind(),
               m.shape.has_err ? "(sk, skb, err)" : "(sk, skb)");
  return ok();
}

Status TcpRetransPlugin::start() {
  auto& m = *impl_;
  if (!m.obj.loaded()) return unexpected(Error::internal("tcpretrans: start before init"));
  std::lock_guard lock(m.mu);
  if (m.link) return ok();
  // A BTF-typed program knows its tracepoint; a raw one is named. The
  // link is owned by its fd only, so it goes away with the process.
  const char* name = m.kind == Kind::kTpBtf ? nullptr : kTracepoint;
  const int fd = bpf_raw_tracepoint_open(name, bpf_program__fd(m.prog));
  if (fd < 0)
    return unexpected(Error::system(fmt::format("tcpretrans: bpf_raw_tracepoint_open({}, {})", kTracepoint, attach_kind()), errno));
  m.link.reset(fd);
  spdlog::info("tcpretrans: attached to {} ({})", kTracepoint, attach_kind());
  return ok();
}

void TcpRetransPlugin::stop() noexcept {
  auto& m = *impl_;
  std::lock_guard lock(m.mu);
  if (!m.link) return;
  m.link.reset();
  spdlog::info("tcpretrans: detached");
}

std::vector<EventSource*> TcpRetransPlugin::event_sources() {
  if (!impl_->ring) return {};
  return {impl_->ring.get()};
}

Result<TcpRetransPlugin::Stats> TcpRetransPlugin::stats() const {
  const auto& m = *impl_;
  if (!m.obj.loaded()) return unexpected(Error::internal("tcpretrans: not loaded"));
  auto common = loader::sum_percpu_u64(bpf_map__fd(m.obj->maps.retina_stats), RETINA_STAT_MAX);
  if (!common) return unexpected(common.error().wrap("tcpretrans"));
  auto own = loader::sum_percpu_u64(bpf_map__fd(m.obj->maps.retina_rt_stats), RETINA_RT_STAT_MAX);
  if (!own) return unexpected(own.error().wrap("tcpretrans"));
  Stats s;
  for (size_t i = 0; i < s.common.size(); ++i) s.common[i] = (*common)[i];
  for (size_t i = 0; i < s.retrans.size(); ++i) s.retrans[i] = (*own)[i];
  return s;
}

std::string_view TcpRetransPlugin::attach_kind() const { return impl_->kind == Kind::kTpBtf ? "tp_btf" : "raw_tp"; }

bool TcpRetransPlugin::attached() const {
  std::lock_guard lock(impl_->mu);
  return static_cast<bool>(impl_->link);
}

int TcpRetransPlugin::prog_fd() const {
  return impl_->obj.loaded() && impl_->prog ? bpf_program__fd(impl_->prog) : -1;
}

std::unique_ptr<Plugin> make_tcpretrans_plugin() { return std::make_unique<TcpRetransPlugin>(); }

}  // namespace retina
