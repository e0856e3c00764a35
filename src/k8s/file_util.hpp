// Reading the small files the watcher depends on (tokens, certificates,
// kubeconfigs), with errors that name the file and errno.
#pragma once

#include <string>

#include "retina/error.hpp"

namespace retina::k8s {

// The whole file; files above 16 MiB are refused (none of these is that big).
Result<std::string> read_small_file(const std::string& path);

}  // namespace retina::k8s
