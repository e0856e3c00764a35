#include "support/privileged.hpp"

#include <sys/syscall.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <linux/bpf.h>

namespace retina::test {

std::string privilege_problem() {
  if (geteuid() != 0) return "not root (privileged suite needs CAP_BPF, CAP_NET_ADMIN, CAP_SYS_ADMIN)";
  // A tiny probe: creating an array map needs a working bpf(2).
  union bpf_attr attr;
  std::memset(&attr, 0, sizeof attr);
  attr.map_type = BPF_MAP_TYPE_ARRAY;
  attr.key_size = 4;
  attr.value_size = 4;
  attr.max_entries = 1;
  long fd = syscall(__NR_bpf, BPF_MAP_CREATE, &attr, sizeof attr);
  if (fd < 0) return std::string("bpf(BPF_MAP_CREATE) fails: ") + std::strerror(errno);
  close(static_cast<int>(fd));
  if (access("/sys/kernel/btf/vmlinux", R_OK) != 0) return "no kernel BTF at /sys/kernel/btf/vmlinux";
  return {};
}

bool privileged_required() {
  const char* v = std::getenv("RETINA_REQUIRE_PRIVILEGED");
  return v && std::strcmp(v, "0") != 0 && *v;
}

}  // namespace retina::test
