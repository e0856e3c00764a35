// Kernel feature detection. Plugins ask before they load; a missing feature
// disables the plugin with the reason this returns. Tests substitute a fake.
#pragma once

#include <memory>
#include <string>

#include "retina/error.hpp"

namespace retina {

enum class KernelFeature : uint8_t {
  kBpfSyscall,     // bpf(2) usable by this process
  kBtf,            // /sys/kernel/btf/vmlinux
  kRingBuf,        // BPF_MAP_TYPE_RINGBUF
  kTcCls,          // BPF_PROG_TYPE_SCHED_CLS via clsact
  kTcx,            // BPF_LINK_TYPE_TCX (6.6+)
  kTpBtf,          // BTF-enabled raw tracepoints
  kRawTp,          // raw tracepoints
  kSocketFilter,   // BPF_PROG_TYPE_SOCKET_FILTER
  kCgroupSkb,      // BPF_PROG_TYPE_CGROUP_SKB
  kKprobe,         // kprobes (not needed by any plugin; reported for /healthz)
  kFentry,         // fentry/fexit trampolines
  kAtomics,        // BPF atomic xchg/fetch-add (5.12+)
  kForEachMapElem, // bpf_for_each_map_elem helper (5.13+)
  kBpfTimer,       // bpf_timer helpers (5.15+)
  kCount,
};

const char* to_string(KernelFeature f);

class FeatureDetector {
 public:
  virtual ~FeatureDetector() = default;
  // ok() when present; an Error of kind kUnsupported saying why otherwise.
  virtual Status probe(KernelFeature f) = 0;
};

// Probes the running kernel (libbpf_probe_* and small test loads), caching
// each answer.
std::unique_ptr<FeatureDetector> make_kernel_feature_detector();

}  // namespace retina
