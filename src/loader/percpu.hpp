// Per-CPU array maps: one value per possible CPU for every key.
#pragma once

#include <cstdint>
#include <vector>

#include "retina/error.hpp"

namespace retina::loader {

// For keys 0..count-1 of a BPF_MAP_TYPE_PERCPU_ARRAY with __u64 values,
// the sum over all possible CPUs.
Result<std::vector<uint64_t>> sum_percpu_u64(int map_fd, uint32_t count);

// Number of possible CPUs (the per-CPU value count), cached.
Result<int> possible_cpus();

}  // namespace retina::loader
