// Structured logging: one logfmt line per event on stderr (through spdlog),
//
//   ts=2026-11-22T03:04:05.123Z level=info component=engine msg="plugin started" plugin=packetparser
//
// Every component logs through here:
//
//   retina::log::info("engine", "plugin started", {{"plugin", name}, {"ifindex", 4}});
//
// Field values are views: building a field never allocates, and a call below
// the current level costs one relaxed atomic load.
#pragma once

#include <cstdint>
#include <functional>
#include <initializer_list>
#include <string>
#include <string_view>
#include <type_traits>

#include "retina/config.hpp"

namespace retina::log {

// A field value: text, an integer, a floating-point number or a bool.
class Value {
 public:
  enum class Kind : uint8_t { kText, kSigned, kUnsigned, kDouble, kBool };

  Value(std::string_view s) : kind_(Kind::kText), text_(s) {}  // NOLINT(google-explicit-constructor)
  Value(const std::string& s) : kind_(Kind::kText), text_(s) {}  // NOLINT
  Value(const char* s) : kind_(Kind::kText), text_(s ? s : "") {}  // NOLINT
  Value(bool b) : kind_(Kind::kBool), u_(b ? 1 : 0) {}  // NOLINT
  Value(double d) : kind_(Kind::kDouble), d_(d) {}  // NOLINT
  template <class T>
    requires(std::is_integral_v<T> && !std::is_same_v<T, bool>)
  Value(T v) {  // NOLINT
    if constexpr (std::is_signed_v<T>) {
      kind_ = Kind::kSigned;
      i_ = v;
    } else {
      kind_ = Kind::kUnsigned;
      u_ = v;
    }
  }

  // Appends the logfmt form: bare when safe, quoted and escaped otherwise.
  void append_to(std::string& out) const;

 private:
  Kind kind_ = Kind::kText;
  std::string_view text_;
  union {
    int64_t i_;
    uint64_t u_ = 0;
    double d_;
  };
};

struct Field {
  std::string_view key;
  Value value;
};

using Fields = std::initializer_list<Field>;

void set_level(LogLevel level) noexcept;
LogLevel level() noexcept;
bool enabled(LogLevel level) noexcept;

// Writes one line when `level` is enabled. Never throws.
void write(LogLevel level, std::string_view component, std::string_view msg, Fields fields = {}) noexcept;

inline void trace(std::string_view component, std::string_view msg, Fields fields = {}) noexcept {
  write(LogLevel::kTrace, component, msg, fields);
}
inline void debug(std::string_view component, std::string_view msg, Fields fields = {}) noexcept {
  write(LogLevel::kDebug, component, msg, fields);
}
inline void info(std::string_view component, std::string_view msg, Fields fields = {}) noexcept {
  write(LogLevel::kInfo, component, msg, fields);
}
inline void warn(std::string_view component, std::string_view msg, Fields fields = {}) noexcept {
  write(LogLevel::kWarn, component, msg, fields);
}
inline void error(std::string_view component, std::string_view msg, Fields fields = {}) noexcept {
  write(LogLevel::kError, component, msg, fields);
}

// Formats one line (without the trailing newline). `unix_ms` is the event
// time in milliseconds since the epoch.
std::string format_line(int64_t unix_ms, LogLevel level, std::string_view component,
                        std::string_view msg, Fields fields);

// Makes spdlog's default logger (spdlog::info(...) and friends, used by
// code that predates this API and by the libbpf print hook) write through
// here, so the process logs one format. "packetparser: loaded" becomes
// component=packetparser msg=loaded. The agent calls this at startup;
// embedders that own spdlog's default logger need not.
void route_spdlog();

// Sends lines to `out` instead of stderr (tests, embedders); an empty
// function restores stderr. Lines are passed without a trailing newline.
void set_output(std::function<void(std::string_view line)> out);

}  // namespace retina::log
