// Per-CPU array maps: one value per possible CPU for every key.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "retina/error.hpp"

namespace retina::loader {

// For keys 0..count-1 of a BPF_MAP_TYPE_PERCPU_ARRAY with __u64 values,
// the sum over all possible CPUs.
Result<std::vector<uint64_t>> sum_percpu_u64(int map_fd, uint32_t count);

// The same for all N keys, as an array indexed like the map.
template <size_t N>
Result<std::array<uint64_t, N>> sum_percpu_array(int map_fd) {
  auto v = sum_percpu_u64(map_fd, static_cast<uint32_t>(N));
  if (!v) return unexpected(v.error());
  std::array<uint64_t, N> out{};
  for (size_t i = 0; i < N; ++i) out[i] = (*v)[i];
  return out;
}

// Number of possible CPUs (the per-CPU value count), cached.
Result<int> possible_cpus();

}  // namespace retina::loader
