// Reading the small files the watcher depends on (tokens, certificates,
// kubeconfigs), with errors that name the file and errno.
#pragma once

#include <string>

#include "core/file.hpp"
#include "retina/error.hpp"

namespace retina::k8s {

// The whole file; files above 16 MiB are refused (none of these is that big).
inline Result<std::string> read_small_file(const std::string& path) { return read_file(path, 16u << 20); }

}  // namespace retina::k8s
