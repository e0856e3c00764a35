#include "core/file.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>

#include <fmt/format.h>

#include "core/fd.hpp"

namespace retina {

Status read_file(const std::string& path, std::string& out, size_t max_bytes) {
  out.clear();
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return unexpected(Error::system(fmt::format("open({})", path), errno));
  constexpr size_t kChunk = 16384;
  for (;;) {
    const size_t old = out.size();
    out.resize(old + kChunk);
    const ssize_t n = ::read(fd.get(), out.data() + old, kChunk);
    if (n < 0) {
      const int err = errno;
      out.resize(old);
      if (err == EINTR) continue;
      out.clear();
      return unexpected(Error::system(fmt::format("read({})", path), err));
    }
    out.resize(old + static_cast<size_t>(n));
    if (out.size() > max_bytes) {
      out.clear();
      return unexpected(Error::invalid(fmt::format("{}: larger than {} bytes", path, max_bytes)));
    }
    if (n == 0) return ok();
  }
}

Result<std::string> read_file(const std::string& path, size_t max_bytes) {
  std::string out;
  if (auto st = read_file(path, out, max_bytes); !st) return unexpected(st.error());
  return out;
}

}  // namespace retina
