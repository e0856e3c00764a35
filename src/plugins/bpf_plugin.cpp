#include "plugins/bpf_plugin.hpp"

#include <unistd.h>

#include <algorithm>

namespace retina {

namespace {
constexpr uint64_t kMaxRingBuffer = 1ull << 30;  // the kernel's limit
}

Status validate_ring_buffer_size(std::string_view what, uint64_t size) {
  const long page_size = ::sysconf(_SC_PAGESIZE);
  const uint64_t page = page_size > 0 ? static_cast<uint64_t>(page_size) : 4096;
  const bool pow2 = size && (size & (size - 1)) == 0;
  if (pow2 && size >= page && size <= kMaxRingBuffer) return ok();
  return unexpected(Error::invalid(
      fmt::format("{} {} must be a power of two between {} and {}", what, size, page, kMaxRingBuffer)));
}

uint64_t ring_size_by_cpus(uint64_t per_cpu, uint64_t min) {
  const long online = ::sysconf(_SC_NPROCESSORS_ONLN);
  const long page_size = ::sysconf(_SC_PAGESIZE);
  const uint64_t page = page_size > 0 ? static_cast<uint64_t>(page_size) : 4096;
  const uint64_t want = std::max({per_cpu * static_cast<uint64_t>(online > 0 ? online : 1), min, page});
  uint64_t size = page;
  while (size < want && size < kMaxRingBuffer) size <<= 1;
  return size;
}

Status require_features(std::string_view plugin, FeatureDetector& features,
                        std::initializer_list<KernelFeature> needed) {
  for (KernelFeature f : needed) {
    if (auto st = features.probe(f); !st)
      return unexpected(Error::unsupported(fmt::format("{}: {}", plugin, st.error().message)));
  }
  return ok();
}

}  // namespace retina
