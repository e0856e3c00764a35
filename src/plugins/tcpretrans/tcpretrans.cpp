#include "plugins/tcpretrans/tcpretrans.hpp"

#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>

#include <cerrno>
#include <mutex>

#include <fmt/format.h>

#include "core/log.hpp"
#include "loader/fd.hpp"
#include "plugins/bpf_plugin.hpp"
#include "tcpretrans.skel.h"

namespace retina {

namespace {

constexpr const char* kTracepoint = "tcp_retransmit_skb";

Status validate(const TcpRetransOptions& o) {
  if (o.ring_buffer_size == 0) return ok();  // by CPU count
  return validate_ring_buffer_size("tcpretrans options: ring buffer size", o.ring_buffer_size);
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
  BpfPlugin<tcpretrans> bpf{"tcpretrans"};
  bpf_program* prog = nullptr;

  mutable std::mutex mu;  // link
  loader::UniqueFd link;
};

TcpRetransPlugin::TcpRetransPlugin(TcpRetransOptions options) : impl_(std::make_unique<Impl>()) {
  impl_->opts = options;
}

TcpRetransPlugin::~TcpRetransPlugin() { stop(); }

Status TcpRetransPlugin::init(PluginContext& ctx) {
  auto& m = *impl_;
  if (auto st = validate(m.opts); !st) return st;

  if (auto st = check_context("tcpretrans", kNeeds, ctx); !st) return st;
  FeatureDetector* features = ctx.features;
  // BTF for CO-RE: the socket's fields move between kernels.
  if (auto st = m.bpf.require(*features, {KernelFeature::kBpfSyscall, KernelFeature::kRingBuf, KernelFeature::kBtf});
      !st)
    return st;
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

  auto& bpf = m.bpf;
  if (auto st = bpf.open(tcpretrans__open_opts, tcpretrans__load, tcpretrans__destroy); !st) return st;
  auto& p = bpf->progs;
  m.prog = m.kind == Kind::kTpBtf ? (m.shape.has_err ? p.retina_rt_btf_e : p.retina_rt_btf)
                                  : (m.shape.has_err ? p.retina_rt_raw_e : p.retina_rt_raw);
  for (bpf_program* candidate : {p.retina_rt_btf, p.retina_rt_btf_e, p.retina_rt_raw, p.retina_rt_raw_e})
    bpf_program__set_autoload(candidate, candidate == m.prog);
  if (auto st = bpf.set_max_entries(bpf->maps.retina_rt_evts,
                                          ring_size_or_auto(m.opts.ring_buffer_size, 128ull << 10, 256ull << 10)); !st) return st;
  if (auto st = bpf.load(); !st) return st;
  if (auto st = bpf.add_ring(bpf->maps.retina_rt_evts); !st) return st;

  using S = KernelStatsCollector::Stat;
  if (auto st = bpf.export_stats(
          ctx.registry,
          {bpf.common_stats({S{RETINA_STAT_REPORTS, "reports"}}),
           {bpf_map__fd(bpf->maps.retina_rt_stats), RETINA_RT_STAT_MAX,
            {S{RETINA_RT_STAT_FAILED, "retransmit_failed"}, S{RETINA_RT_STAT_OTHER_FAMILY, "other_family"}}, -1}});
      !st)
    return st;
  log::info("tcpretrans", "loaded",
            {{"program", attach_kind()}, {"tracepoint", m.shape.has_err ? "(sk, skb, err)" : "(sk, skb)"}});
  return ok();
}

Status TcpRetransPlugin::start() {
  auto& m = *impl_;
  if (!m.bpf.loaded()) return unexpected(Error::internal("tcpretrans: start before init"));
  std::lock_guard lock(m.mu);
  if (m.link) return ok();
  // A BTF-typed program knows its tracepoint; a raw one is named. The
  // link is owned by its fd only, so it goes away with the process.
  const char* name = m.kind == Kind::kTpBtf ? nullptr : kTracepoint;
  const int fd = bpf_raw_tracepoint_open(name, bpf_program__fd(m.prog));
  if (fd < 0)
    return unexpected(Error::system(fmt::format("tcpretrans: bpf_raw_tracepoint_open({}, {})", kTracepoint, attach_kind()), errno));
  m.link.reset(fd);
  log::info("tcpretrans", "attached", {{"tracepoint", kTracepoint}, {"program", attach_kind()}});
  return ok();
}

void TcpRetransPlugin::stop() noexcept {
  auto& m = *impl_;
  std::lock_guard lock(m.mu);
  if (!m.link) return;
  m.link.reset();
  log::info("tcpretrans", "detached");
}

std::vector<EventSource*> TcpRetransPlugin::event_sources() { return impl_->bpf.event_sources(); }

Result<TcpRetransPlugin::Stats> TcpRetransPlugin::stats() const {
  auto v = impl_->bpf.read_stats_pair<RETINA_RT_STAT_MAX>([](const tcpretrans& s) { return s.maps.retina_rt_stats; });
  if (!v) return unexpected(v.error());
  return Stats{v->first, v->second};
}

std::string_view TcpRetransPlugin::attach_kind() const { return impl_->kind == Kind::kTpBtf ? "tp_btf" : "raw_tp"; }

bool TcpRetransPlugin::attached() const {
  std::lock_guard lock(impl_->mu);
  return static_cast<bool>(impl_->link);
}

int TcpRetransPlugin::prog_fd() const {
  return impl_->bpf.loaded() && impl_->prog ? bpf_program__fd(impl_->prog) : -1;
}

std::unique_ptr<Plugin> make_tcpretrans_plugin() { return std::make_unique<TcpRetransPlugin>(); }

}  // namespace retina
