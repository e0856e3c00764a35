// Programs attached to an interface through TCX (Linux 6.6+), in run order:
// what tools and tests look at to see who holds a hook.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "retina/error.hpp"

namespace retina {

struct TcxProgram {
  uint32_t prog_id = 0;
  std::string name;
};

// BPF_PROG_QUERY on the ingress (or egress) TCX hook of `ifindex`.
Result<std::vector<TcxProgram>> tcx_programs(int ifindex, bool ingress);

}  // namespace retina
