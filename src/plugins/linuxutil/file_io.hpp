// Small POSIX helpers for the polling plugins: whole-file reads of
// procfs/sysfs attributes and directory listings. Errors name the call,
// the path and errno.
#pragma once

#include <string>
#include <vector>

#include "core/fd.hpp"
#include "core/file.hpp"
#include "retina/error.hpp"

namespace retina::linuxutil {

using retina::UniqueFd;

// Reads the whole file into `out` (reusing its capacity); core/file.hpp.
inline Status read_text_file(const std::string& path, std::string& out) { return read_file(path, out); }

// True for an Error::system(...) with this errno.
inline bool has_errno(const Error& e, int code) { return e.kind == Error::Kind::kSystem && e.code == code; }

enum class EntryKind { kAny, kDirectory };
// Entry names of a directory, sorted, without "." and "..". kDirectory
// keeps entries that are (or link to) directories.
Result<std::vector<std::string>> list_dir(const std::string& path, EntryKind kind = EntryKind::kAny);

}  // namespace retina::linuxutil
