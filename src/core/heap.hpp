// Gives freed heap memory back to the kernel. glibc keeps freed chunks in
// its arenas and returns only the top of a heap on its own, so after a
// large transient that later allocations fragment (the endpoints file's
// YAML tree, libbpf's parsed kernel BTF) an idle process would keep
// tens of MiB resident that it no longer uses.
#pragma once

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace retina {

inline void release_free_heap() noexcept {
#if defined(__GLIBC__)
  ::malloc_trim(0);
#endif
}

}  // namespace retina
