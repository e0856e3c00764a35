#include "loader/libbpf_log.hpp"

#include <bpf/libbpf.h>

#include <cstdarg>
#include <cstdio>
#include <mutex>
#include <string>

#include "core/log.hpp"


namespace retina::loader {

namespace {

int libbpf_print(enum libbpf_print_level level, const char* fmt, va_list args) {
  char buf[1024];
  va_list copy;
  va_copy(copy, args);
  int n = std::vsnprintf(buf, sizeof buf, fmt, copy);
  va_end(copy);
  std::string msg;
  if (n >= static_cast<int>(sizeof buf)) {
    msg.resize(static_cast<size_t>(n) + 1);
    std::vsnprintf(msg.data(), msg.size(), fmt, args);
    msg.resize(static_cast<size_t>(n));
  } else if (n > 0) {
    msg.assign(buf, static_cast<size_t>(n));
  }
  while (!msg.empty() && msg.back() == '\n') msg.pop_back();
  try {
    switch (level) {
      case LIBBPF_WARN: log::warn("libbpf", msg); break;
      case LIBBPF_INFO: log::debug("libbpf", msg); break;
      case LIBBPF_DEBUG: log::trace("libbpf", msg); break;
    }
  } catch (...) {
    // Never let an exception cross into libbpf.
  }
  return n;
}

}  // namespace

void install_libbpf_logging() {
  static std::once_flag once;
  std::call_once(once, [] { libbpf_set_print(libbpf_print); });
}

}  // namespace retina::loader
