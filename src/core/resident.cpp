#include "retina/resident.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <vector>

#include "core/fd.hpp"

namespace retina {
namespace {

// /proc/self/pagemap: one 64-bit entry per virtual page.
constexpr uint64_t kPresent = 1ull << 63;
constexpr uint64_t kFileOrShared = 1ull << 61;  // clear for a private (anonymous, copied-on-write) page

struct Mapping {
  uintptr_t start, end;
};

// Read-only private mappings of files (not the stack, vdso or BPF maps).
std::vector<Mapping> read_only_file_mappings() {
  std::vector<Mapping> out;
  FILE* f = std::fopen("/proc/self/maps", "re");
  if (!f) return out;
  char line[4096 + 128];
  while (std::fgets(line, sizeof line, f)) {
    unsigned long start = 0, end = 0, offset = 0, inode = 0;
    char perms[8] = {};
    char dev[16] = {};
    int path_at = 0;
    if (std::sscanf(line, "%lx-%lx %7s %lx %15s %lu %n", &start, &end, perms, &offset, dev, &inode, &path_at) < 6)
      continue;
    if (inode == 0 || line[path_at] != '/') continue;      // anonymous, [heap], anon_inode:...
    if (perms[1] == 'w' || perms[3] != 'p') continue;      // writable or shared
    out.push_back({static_cast<uintptr_t>(start), static_cast<uintptr_t>(end)});
  }
  std::fclose(f);
  return out;
}

}  // namespace

Result<size_t> release_clean_file_pages() {
  const long page_size = ::sysconf(_SC_PAGESIZE);
  const uintptr_t page = page_size > 0 ? static_cast<uintptr_t>(page_size) : 4096;
  UniqueFd pagemap(::open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC));
  if (!pagemap) return unexpected(Error::system("open(/proc/self/pagemap)", errno));
  size_t released = 0;
  std::vector<uint64_t> entries;
  for (const Mapping& m : read_only_file_mappings()) {
    const size_t pages = (m.end - m.start) / page;
    entries.assign(pages, 0);
    const off_t at = static_cast<off_t>(m.start / page * sizeof(uint64_t));
    const ssize_t n = ::pread(pagemap.get(), entries.data(), pages * sizeof(uint64_t), at);
    if (n != static_cast<ssize_t>(pages * sizeof(uint64_t))) continue;  // the mapping changed meanwhile
    // Runs of pages that are not private copies; only resident ones count.
    size_t i = 0;
    while (i < pages) {
      if ((entries[i] & kPresent) && !(entries[i] & kFileOrShared)) {
        ++i;
        continue;
      }
      size_t j = i, resident = 0;
      for (; j < pages && !((entries[j] & kPresent) && !(entries[j] & kFileOrShared)); ++j)
        if (entries[j] & kPresent) ++resident;
      if (resident && ::madvise(reinterpret_cast<void*>(m.start + i * page), (j - i) * page, MADV_DONTNEED) == 0)
        released += resident * page;
      i = j;
    }
  }
  return released;
}

}  // namespace retina
