// Looks up loaded BPF programs by id.
#pragma once

#include <cstdint>
#include <string>

#include "retina/error.hpp"

namespace retina::loader {

// Every program retina loads has a name starting with this.
inline constexpr const char* kRetinaProgPrefix = "retina_";

// The kernel's name of program `id` (at most 15 characters).
Result<std::string> bpf_prog_name(uint32_t id);

inline bool is_retina_prog_name(const std::string& name) { return name.rfind(kRetinaProgPrefix, 0) == 0; }

}  // namespace retina::loader
