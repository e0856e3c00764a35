#include "k8s/file_util.hpp"

#include <cerrno>
#include <string>

#include <fcntl.h>
#include <unistd.h>

#include <fmt/format.h>

namespace retina::k8s {

namespace {

class FdOwner {
 public:
  explicit FdOwner(int fd) : fd_(fd) {}
  FdOwner(const FdOwner&) = delete;
  FdOwner& operator=(const FdOwner&) = delete;
  ~FdOwner() {
    if (fd_ >= 0) ::close(fd_);
  }
  int get() const { return fd_; }

 private:
  int fd_;
};

}  // namespace

Result<std::string> read_small_file(const std::string& path) {
  constexpr size_t kMax = 16u << 20;
  const FdOwner fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) return unexpected(Error::system(fmt::format("open({})", path), errno));
  std::string out;
  char buf[8192];
  for (;;) {
    const ssize_t n = ::read(fd.get(), buf, sizeof(buf));
    if (n < 0) {
      if (errno == EINTR) continue;
      return unexpected(Error::system(fmt::format("read({})", path), errno));
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
    if (out.size() > kMax) return unexpected(Error::invalid(fmt::format("{}: larger than {} bytes", path, kMax)));
  }
  return out;
}

}  // namespace retina::k8s
