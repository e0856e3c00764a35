// Whole-file reads with errors that name the call, the path and errno: the
// one file reader (config.yaml, the endpoints file, kubeconfigs and
// tokens, procfs and sysfs attributes).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "retina/error.hpp"

namespace retina {

// Reads until EOF into `out`, reusing its capacity: procfs and sysfs report
// a meaningless size. More than `max_bytes` is kInvalid "<path>: larger
// than <max_bytes> bytes" (callers may word it their way).
Status read_file(const std::string& path, std::string& out, size_t max_bytes = SIZE_MAX);
Result<std::string> read_file(const std::string& path, size_t max_bytes = SIZE_MAX);

}  // namespace retina
