// Identifies retina's BPF programs without CAP_SYS_ADMIN: looking a
// program up by id (bpf_prog_get_fd_by_id) needs it, so retina reads ids
// from fds it holds and names from the tc filter dump.
#pragma once

#include <cstdint>
#include <string_view>

#include "loader/netlink.hpp"
#include "retina/error.hpp"

namespace retina::loader {

// Every program retina loads has a name starting with this.
inline constexpr std::string_view kRetinaProgPrefix = "retina_";

// The kernel's id of the program behind `prog_fd` (bpf_obj_get_info_by_fd
// on an fd we hold needs no capability).
Result<uint32_t> bpf_prog_id_of_fd(int prog_fd);

inline bool is_retina_prog_name(std::string_view name) { return name.substr(0, kRetinaProgPrefix.size()) == kRetinaProgPrefix; }

// A cls_bpf filter running a retina program. libbpf's bpf_tc_attach names
// the filter "<prog name>:[<prog id>]" (TCA_BPF_NAME), so a killed earlier
// run's filters are recognised from the dump alone; classic BPF has no
// program id, and `tc filter add ... bpf obj` names the object file.
inline bool is_retina_filter(const TcFilterInfo& f) {
  return f.kind == "bpf" && f.bpf_prog_id != 0 && is_retina_prog_name(f.bpf_name);
}

}  // namespace retina::loader
