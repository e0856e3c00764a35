#include "loader/percpu.hpp"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <cerrno>

#include <fmt/format.h>

namespace retina::loader {

Result<int> possible_cpus() {
  static const int n = libbpf_num_possible_cpus();
  if (n <= 0) return unexpected(Error::system("libbpf_num_possible_cpus", n));
  return n;
}

Result<std::vector<uint64_t>> sum_percpu_u64(int map_fd, uint32_t count) {
  auto ncpu = possible_cpus();
  if (!ncpu) return unexpected(ncpu.error());
  std::vector<uint64_t> values(static_cast<size_t>(*ncpu));
  std::vector<uint64_t> out(count, 0);
  for (uint32_t key = 0; key < count; ++key) {
    if (bpf_map_lookup_elem(map_fd, &key, values.data()) < 0)
      return unexpected(Error::system(fmt::format("bpf_map_lookup_elem(per-cpu map fd {}, key {})", map_fd, key), errno));
    for (uint64_t v : values) out[key] += v;
  }
  return out;
}

}  // namespace retina::loader
