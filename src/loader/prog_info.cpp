#include "loader/prog_info.hpp"

#include <bpf/bpf.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

namespace retina::loader {

Result<uint32_t> bpf_prog_id_of_fd(int prog_fd) {
  bpf_prog_info info;
  std::memset(&info, 0, sizeof info);
  uint32_t len = sizeof info;
  if (bpf_obj_get_info_by_fd(prog_fd, &info, &len) < 0)
    return unexpected(Error::system(fmt::format("bpf_obj_get_info_by_fd(prog fd {})", prog_fd), errno));
  return info.id;
}

}  // namespace retina::loader
