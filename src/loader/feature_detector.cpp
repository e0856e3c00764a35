// Kernel feature probes: libbpf_probe_* for program, map and helper types,
// and tiny loads (and, where only attaching tells, a brief attach of a
// program that does nothing) for the rest. Answers are cached.
#include <linux/bpf.h>
#include <linux/perf_event.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>

#include <array>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <mutex>
#include <optional>
#include <string_view>

#include <fmt/format.h>

#include "loader/fd.hpp"
#include "loader/tcx_link.hpp"
#include "retina/features.hpp"

namespace retina {

const char* to_string(KernelFeature f) {
  switch (f) {
    case KernelFeature::kBpfSyscall: return "bpf_syscall";
    case KernelFeature::kBtf: return "btf";
    case KernelFeature::kRingBuf: return "ringbuf";
    case KernelFeature::kTcCls: return "tc_cls";
    case KernelFeature::kTcx: return "tcx";
    case KernelFeature::kTpBtf: return "tp_btf";
    case KernelFeature::kRawTp: return "raw_tp";
    case KernelFeature::kSocketFilter: return "socket_filter";
    case KernelFeature::kCgroupSkb: return "cgroup_skb";
    case KernelFeature::kKprobe: return "kprobe";
    case KernelFeature::kFentry: return "fentry";
    case KernelFeature::kAtomics: return "atomics";
    case KernelFeature::kForEachMapElem: return "for_each_map_elem";
    case KernelFeature::kBpfTimer: return "bpf_timer";
    case KernelFeature::kCount: break;
  }
  return "unknown";
}

namespace {

using loader::UniqueFd;

bpf_insn insn(uint8_t code, uint8_t dst, uint8_t src, int16_t off, int32_t imm) {
  bpf_insn i{};
  i.code = code;
  i.dst_reg = dst;
  i.src_reg = src;
  i.off = off;
  i.imm = imm;
  return i;
}

// r0 = imm; exit
std::array<bpf_insn, 2> return_imm(int32_t imm) {
  return {insn(BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_0, 0, 0, imm), insn(BPF_JMP | BPF_EXIT, 0, 0, 0, 0)};
}

Result<UniqueFd> load(bpf_prog_type type, const bpf_insn* insns, size_t n, std::string_view what,
                      const bpf_prog_load_opts* opts = nullptr) {
  int fd = bpf_prog_load(type, "retina_probe", "GPL", insns, n, opts);
  if (fd < 0) return unexpected(Error::system(fmt::format("bpf_prog_load({} probe)", what), errno));
  return UniqueFd(fd);
}

Status need(bool present, std::string reason) {
  if (present) return ok();
  return unexpected(Error::unsupported(std::move(reason)));
}

Status probe_prog_type(bpf_prog_type t, const char* name, const char* since) {
  int r = libbpf_probe_bpf_prog_type(t, nullptr);
  if (r == 1) return ok();
  if (r < 0) return unexpected(Error::system(fmt::format("libbpf_probe_bpf_prog_type({})", name), r).wrap("probe"));
  return unexpected(Error::unsupported(fmt::format("kernel lacks {} (needs {})", name, since)));
}

Status probe_bpf_syscall() {
  union bpf_attr attr;
  std::memset(&attr, 0, sizeof attr);
  attr.map_type = BPF_MAP_TYPE_ARRAY;
  attr.key_size = 4;
  attr.value_size = 4;
  attr.max_entries = 1;
  long fd = ::syscall(__NR_bpf, BPF_MAP_CREATE, &attr, sizeof attr);
  if (fd < 0) {
    Error e = Error::system("bpf(BPF_MAP_CREATE)", errno);
    e.kind = Error::Kind::kUnsupported;  // no usable bpf(2): nothing BPF can run
    e.message = "bpf(2) unusable: " + e.message;
    return unexpected(e);
  }
  ::close(static_cast<int>(fd));
  return ok();
}

Status probe_tcx() {
  auto prog = return_imm(-1);
  auto fd = load(BPF_PROG_TYPE_SCHED_CLS, prog.data(), prog.size(), "sched_cls");
  if (!fd) return unexpected(Error::unsupported("kernel lacks BPF_PROG_TYPE_SCHED_CLS: " + fd.error().message));
  auto r = loader::probe_tcx(fd->get());
  if (!r) return unexpected(r.error());
  return need(*r, "kernel lacks TCX links (needs 6.6+)");
}

// Loads a tracing program against a BTF type and attaches it for a moment.
Status probe_tracing(bpf_attach_type attach, const char* btf_name, uint32_t kind, const char* what, const char* since) {
  btf* vmlinux = btf__load_vmlinux_btf();
  if (!vmlinux) return unexpected(Error::unsupported(fmt::format("{} needs kernel BTF", what)));
  int id = btf__find_by_name_kind(vmlinux, btf_name, kind);
  btf__free(vmlinux);
  if (id <= 0) return unexpected(Error::unsupported(fmt::format("{}: no BTF for {}", what, btf_name)));
  auto prog = return_imm(0);
  LIBBPF_OPTS(bpf_prog_load_opts, opts, .expected_attach_type = attach, .attach_btf_id = static_cast<uint32_t>(id));
  auto fd = load(BPF_PROG_TYPE_TRACING, prog.data(), prog.size(), what, &opts);
  if (!fd)
    return unexpected(Error::unsupported(fmt::format("{} programs cannot load here (they need {} and trampoline support): {}",
                                                     what, since, fd.error().message)));
  int link = bpf_link_create(fd->get(), 0, attach, nullptr);
  if (link < 0)
    return unexpected(Error::unsupported(
        fmt::format("{} programs load but cannot attach: {}", what, Error::system("bpf_link_create", errno).message)));
  ::close(link);
  return ok();
}

Status probe_kprobe() {
  if (auto st = probe_prog_type(BPF_PROG_TYPE_KPROBE, "BPF_PROG_TYPE_KPROBE", "4.1+"); !st) return st;
  std::ifstream f("/sys/bus/event_source/devices/kprobe/type");
  int type = -1;
  if (!(f >> type)) return unexpected(Error::unsupported("no kprobe PMU (/sys/bus/event_source/devices/kprobe/type)"));
  perf_event_attr attr{};
  attr.size = sizeof attr;
  attr.type = static_cast<uint32_t>(type);
  static const char kFunc[] = "vfs_read";
  attr.config1 = reinterpret_cast<uintptr_t>(kFunc);
  attr.config2 = 0;
  long pfd = ::syscall(__NR_perf_event_open, &attr, -1, 0, -1, PERF_FLAG_FD_CLOEXEC);
  if (pfd < 0)
    return unexpected(Error::unsupported("kprobes unavailable: " + Error::system("perf_event_open(kprobe vfs_read)", errno).message));
  UniqueFd perf(static_cast<int>(pfd));
  auto prog = return_imm(0);
  auto fd = load(BPF_PROG_TYPE_KPROBE, prog.data(), prog.size(), "kprobe");
  if (!fd) return unexpected(Error::unsupported(fd.error().message));
  if (::ioctl(perf.get(), PERF_EVENT_IOC_SET_BPF, fd->get()) < 0)
    return unexpected(Error::unsupported("kprobes unavailable: " + Error::system("ioctl(PERF_EVENT_IOC_SET_BPF)", errno).message));
  return ok();
}

Status probe_atomics() {
  // *(u64 *)(r10 - 8) = 0; r1 = 1; r1 = xchg_64(r10 - 8, r1); r0 = 0; exit
  std::array<bpf_insn, 5> prog = {
      insn(BPF_ST | BPF_MEM | BPF_DW, BPF_REG_10, 0, -8, 0),
      insn(BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_1, 0, 0, 1),
      insn(BPF_STX | BPF_ATOMIC | BPF_DW, BPF_REG_10, BPF_REG_1, -8, BPF_XCHG),
      insn(BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_0, 0, 0, 0),
      insn(BPF_JMP | BPF_EXIT, 0, 0, 0, 0),
  };
  auto fd = load(BPF_PROG_TYPE_SOCKET_FILTER, prog.data(), prog.size(), "atomic xchg");
  if (!fd) return unexpected(Error::unsupported("kernel lacks BPF atomic exchange (needs 5.12+): " + fd.error().message));
  return ok();
}

Status run_probe(KernelFeature f) {
  switch (f) {
    case KernelFeature::kBpfSyscall: return probe_bpf_syscall();
    case KernelFeature::kBtf:
      return need(::access("/sys/kernel/btf/vmlinux", R_OK) == 0, "kernel has no BTF (/sys/kernel/btf/vmlinux)");
    case KernelFeature::kRingBuf:
      return need(libbpf_probe_bpf_map_type(BPF_MAP_TYPE_RINGBUF, nullptr) == 1,
                  "kernel lacks BPF_MAP_TYPE_RINGBUF (needs 5.8+)");
    case KernelFeature::kTcCls: return probe_prog_type(BPF_PROG_TYPE_SCHED_CLS, "BPF_PROG_TYPE_SCHED_CLS", "4.1+");
    case KernelFeature::kTcx: return probe_tcx();
    case KernelFeature::kTpBtf:
      return probe_tracing(BPF_TRACE_RAW_TP, "btf_trace_kfree_skb", BTF_KIND_TYPEDEF, "tp_btf", "5.5+");
    case KernelFeature::kRawTp:
      return probe_prog_type(BPF_PROG_TYPE_RAW_TRACEPOINT, "BPF_PROG_TYPE_RAW_TRACEPOINT", "4.17+");
    case KernelFeature::kSocketFilter:
      return probe_prog_type(BPF_PROG_TYPE_SOCKET_FILTER, "BPF_PROG_TYPE_SOCKET_FILTER", "3.19+");
    case KernelFeature::kCgroupSkb: return probe_prog_type(BPF_PROG_TYPE_CGROUP_SKB, "BPF_PROG_TYPE_CGROUP_SKB", "4.10+");
    case KernelFeature::kKprobe: return probe_kprobe();
    case KernelFeature::kFentry: return probe_tracing(BPF_TRACE_FENTRY, "vfs_read", BTF_KIND_FUNC, "fentry", "5.5+");
    case KernelFeature::kAtomics: return probe_atomics();
    case KernelFeature::kForEachMapElem:
      return need(libbpf_probe_bpf_helper(BPF_PROG_TYPE_SCHED_CLS, BPF_FUNC_for_each_map_elem, nullptr) == 1,
                  "kernel lacks the bpf_for_each_map_elem helper (needs 5.13+)");
    case KernelFeature::kBpfTimer:
      return need(libbpf_probe_bpf_helper(BPF_PROG_TYPE_SCHED_CLS, BPF_FUNC_timer_start, nullptr) == 1,
                  "kernel lacks the bpf_timer helpers (needs 5.15+)");
    case KernelFeature::kCount: break;
  }
  return unexpected(Error::invalid("unknown kernel feature"));
}

// RETINA_KERNEL_FEATURES_OFF: feature names (to_string) separated by
// commas, which the detector reports missing without probing, to run the
// fallbacks on a kernel that has the features (tests, comparisons).
bool turned_off(KernelFeature f) {
  const char* env = std::getenv("RETINA_KERNEL_FEATURES_OFF");
  if (!env) return false;
  std::string_view list(env), name(to_string(f));
  while (!list.empty()) {
    const size_t comma = list.find(',');
    if (list.substr(0, comma) == name) return true;
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
  return false;
}

class KernelFeatureDetector final : public FeatureDetector {
 public:
  Status probe(KernelFeature f) override {
    const auto i = static_cast<size_t>(f);
    if (i >= cache_.size()) return unexpected(Error::invalid("unknown kernel feature"));
    std::lock_guard lock(mu_);
    if (!cache_[i]) {
      Status st = turned_off(f) ? Status(unexpected(Error::unsupported(
                                      fmt::format("{} turned off by RETINA_KERNEL_FEATURES_OFF", to_string(f)))))
                                : run_probe(f);
      if (!st && st.error().kind != Error::Kind::kUnsupported) {
        // A probe that failed for another reason (e.g. EPERM) also means
        // the feature cannot be used here; say which probe failed.
        Error e = st.error();
        e.kind = Error::Kind::kUnsupported;
        e.message = fmt::format("{} probe failed: {}", to_string(f), e.message);
        st = unexpected(std::move(e));
      }
      cache_[i] = std::move(st);
    }
    return *cache_[i];
  }

 private:
  std::mutex mu_;
  std::array<std::optional<Status>, static_cast<size_t>(KernelFeature::kCount)> cache_;
};

}  // namespace

std::unique_ptr<FeatureDetector> make_kernel_feature_detector() { return std::make_unique<KernelFeatureDetector>(); }

}  // namespace retina
