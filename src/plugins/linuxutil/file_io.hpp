// Small POSIX helpers for the polling plugins: an owned fd, whole-file reads
// of procfs/sysfs attributes, and directory listings. Errors name the call,
// the path and errno.
#pragma once

#include <string>
#include <vector>

#include "retina/error.hpp"

namespace retina::linuxutil {

class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(UniqueFd&& o) noexcept : fd_(o.release()) {}
  UniqueFd& operator=(UniqueFd&& o) noexcept;
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd();

  int get() const { return fd_; }
  explicit operator bool() const { return fd_ >= 0; }
  int release() {
    const int fd = fd_;
    fd_ = -1;
    return fd;
  }

 private:
  int fd_ = -1;
};

// Reads the whole file into `out` (reusing its capacity). procfs and sysfs
// report a meaningless size, so this reads until EOF.
Status read_text_file(const std::string& path, std::string& out);

// True for an Error::system(...) with this errno.
inline bool has_errno(const Error& e, int code) { return e.kind == Error::Kind::kSystem && e.code == code; }

enum class EntryKind { kAny, kDirectory };
// Entry names of a directory, sorted, without "." and "..". kDirectory
// keeps entries that are (or link to) directories.
Result<std::vector<std::string>> list_dir(const std::string& path, EntryKind kind = EntryKind::kAny);

}  // namespace retina::linuxutil
