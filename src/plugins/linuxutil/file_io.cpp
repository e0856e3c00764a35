#include "plugins/linuxutil/file_io.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

namespace retina::linuxutil {

Result<std::vector<std::string>> list_dir(const std::string& path, EntryKind kind) {
  DIR* dir = ::opendir(path.c_str());
  if (!dir) return unexpected(Error::system("opendir(" + path + ")", errno));
  std::vector<std::string> names;
  int err = 0;
  for (;;) {
    errno = 0;  // readdir returns null both at the end and on error
    const dirent* e = ::readdir(dir);
    if (!e) {
      err = errno;
      break;
    }
    const std::string_view name = e->d_name;
    if (name == "." || name == "..") continue;
    if (kind == EntryKind::kDirectory) {
      bool is_dir = e->d_type == DT_DIR;
      if (e->d_type == DT_LNK || e->d_type == DT_UNKNOWN) {
        struct stat st {};
        is_dir = ::fstatat(::dirfd(dir), e->d_name, &st, 0) == 0 && S_ISDIR(st.st_mode);
      }
      if (!is_dir) continue;
    }
    names.emplace_back(name);
  }
  ::closedir(dir);
  if (err != 0) return unexpected(Error::system("readdir(" + path + ")", err));
  std::sort(names.begin(), names.end());
  return names;
}

}  // namespace retina::linuxutil
