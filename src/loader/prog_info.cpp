#include "loader/prog_info.hpp"

#include <bpf/bpf.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "loader/fd.hpp"

namespace retina::loader {

Result<std::string> bpf_prog_name(uint32_t id) {
  int fd = bpf_prog_get_fd_by_id(id);
  if (fd < 0) return unexpected(Error::system(fmt::format("bpf_prog_get_fd_by_id({})", id), errno));
  UniqueFd owner(fd);
  bpf_prog_info info;
  std::memset(&info, 0, sizeof info);
  uint32_t len = sizeof info;
  if (bpf_obj_get_info_by_fd(fd, &info, &len) < 0)
    return unexpected(Error::system(fmt::format("bpf_obj_get_info_by_fd(prog {})", id), errno));
  return std::string(info.name, strnlen(info.name, sizeof info.name));
}

}  // namespace retina::loader
