// Number parsing shared by the /proc and sysfs readers: whole-token decimal
// (no sign, no spaces, no overflow), with errors that quote the bad text.
#pragma once

#include <cstdint>
#include <string_view>

#include "retina/error.hpp"

namespace retina::linuxutil {

// A counter value as the kernel prints it. Only a few fields are signed
// (Tcp MaxConn is -1), so the magnitude keeps the full uint64 range exact.
struct StatValue {
  uint64_t magnitude = 0;
  bool negative = false;

  friend bool operator==(const StatValue&, const StatValue&) = default;
};

// "12345" -> 12345. Rejects empty text, signs, non-digits and values above 2^64-1.
Result<uint64_t> parse_u64(std::string_view token);
// Like parse_u64 but accepts one leading '-' (the magnitude still up to 2^64-1).
Result<StatValue> parse_stat_value(std::string_view token);
// A sysfs attribute holding one decimal number and a trailing newline.
Result<uint64_t> parse_sysfs_u64(std::string_view text);
// A sysfs attribute holding a signed decimal number ("-1" for unknown speed).
Result<int64_t> parse_sysfs_i64(std::string_view text);

// Strips ASCII spaces, tabs and newlines from both ends.
std::string_view trim(std::string_view s);
// Quotes at most 40 bytes of untrusted text for an error message.
std::string quote(std::string_view s);

}  // namespace retina::linuxutil
