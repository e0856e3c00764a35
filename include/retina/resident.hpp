// What a process keeps resident that it does not need to.
#pragma once

#include <cstddef>

#include "retina/error.hpp"

namespace retina {

// Unmaps from this process the clean file pages it has touched in its
// read-only private file mappings (the executable's and shared libraries'
// code, read-only data, the symbol tables the dynamic linker searched), so
// they stop counting in its RSS. Each page stays in the page cache and
// faults back in on its next use: after start-up, what stays resident is
// what the process goes on using. Pages a mapping holds privately (those
// relocated before RELRO made them read-only) are never touched. Returns
// the bytes that were resident and are no longer mapped.
Result<size_t> release_clean_file_pages();

}  // namespace retina
