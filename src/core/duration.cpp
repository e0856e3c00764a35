// parse_duration: Go's time.ParseDuration, so Retina's duration strings
// ("10s", "1m30s", "1.5h", "300ms") mean the same thing here.
#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "retina/config.hpp"

namespace retina {
namespace {

constexpr uint64_t kMaxMagnitude = uint64_t{1} << 63;  // |INT64_MIN| in nanoseconds

bool is_digit(char c) { return c >= '0' && c <= '9'; }

// Consumes leading digits into `v`; false on overflow past 2^63.
bool leading_int(std::string_view& s, uint64_t& v) {
  size_t i = 0;
  v = 0;
  for (; i < s.size() && is_digit(s[i]); ++i) {
    if (v > kMaxMagnitude / 10) return false;
    v = v * 10 + static_cast<uint64_t>(s[i] - '0');
    if (v > kMaxMagnitude) return false;
  }
  s.remove_prefix(i);
  return true;
}

// Consumes the digits after a '.', keeping as many as fit; `scale` is the
// power of ten they were divided by.
void leading_fraction(std::string_view& s, uint64_t& f, double& scale) {
  size_t i = 0;
  f = 0;
  scale = 1;
  bool overflow = false;
  for (; i < s.size() && is_digit(s[i]); ++i) {
    if (overflow) continue;
    if (f > (UINT64_MAX >> 1) / 10) {
      overflow = true;  // further digits cannot change the result
      continue;
    }
    const uint64_t y = f * 10 + static_cast<uint64_t>(s[i] - '0');
    if (y > kMaxMagnitude) {
      overflow = true;
      continue;
    }
    f = y;
    scale *= 10;
  }
  s.remove_prefix(i);
}

uint64_t unit_nanos(std::string_view u) {
  if (u == "ns") return 1;
  if (u == "us" || u == "\xc2\xb5s" || u == "\xce\xbcs") return 1000;  // us, U+00B5 s, U+03BC s
  if (u == "ms") return 1000 * 1000;
  if (u == "s") return 1000 * 1000 * 1000;
  if (u == "m") return 60ull * 1000 * 1000 * 1000;
  if (u == "h") return 3600ull * 1000 * 1000 * 1000;
  return 0;
}

Error bad(std::string_view what, std::string_view orig) {
  std::string msg(what);
  msg += " \"";
  msg += orig;
  msg += "\" (expected a duration such as 300ms, 30s, 1m30s or 2h)";
  return Error::invalid(std::move(msg));
}

}  // namespace

Result<std::chrono::nanoseconds> parse_duration(std::string_view text) {
  const std::string_view orig = text;
  std::string_view s = text;
  bool neg = false;
  if (!s.empty() && (s[0] == '-' || s[0] == '+')) {
    neg = s[0] == '-';
    s.remove_prefix(1);
  }
  if (s == "0") return std::chrono::nanoseconds{0};
  if (s.empty()) return unexpected(bad("invalid duration", orig));

  uint64_t total = 0;
  while (!s.empty()) {
    if (!(s[0] == '.' || is_digit(s[0]))) return unexpected(bad("invalid duration", orig));
    size_t before = s.size();
    uint64_t v = 0;
    if (!leading_int(s, v)) return unexpected(bad("duration out of range:", orig));
    const bool pre = before != s.size();

    uint64_t f = 0;
    double scale = 1;
    bool post = false;
    if (!s.empty() && s[0] == '.') {
      s.remove_prefix(1);
      before = s.size();
      leading_fraction(s, f, scale);
      post = before != s.size();
    }
    if (!pre && !post) return unexpected(bad("invalid duration", orig));

    size_t i = 0;
    while (i < s.size() && s[i] != '.' && !is_digit(s[i])) ++i;
    if (i == 0) return unexpected(bad("missing unit in duration", orig));
    const std::string_view u = s.substr(0, i);
    s.remove_prefix(i);
    const uint64_t unit = unit_nanos(u);
    if (unit == 0) {
      return unexpected(bad("unknown unit \"" + std::string(u) + "\" in duration", orig));
    }
    if (v > kMaxMagnitude / unit) return unexpected(bad("duration out of range:", orig));
    v *= unit;
    if (f > 0) {
      v += static_cast<uint64_t>(static_cast<double>(f) * (static_cast<double>(unit) / scale));
      if (v > kMaxMagnitude) return unexpected(bad("duration out of range:", orig));
    }
    total += v;
    if (total > kMaxMagnitude) return unexpected(bad("duration out of range:", orig));
  }
  if (neg) {
    // -2^63 is representable; negate in unsigned space to avoid overflow.
    return std::chrono::nanoseconds{static_cast<int64_t>(0 - total)};
  }
  if (total > kMaxMagnitude - 1) return unexpected(bad("duration out of range:", orig));
  return std::chrono::nanoseconds{static_cast<int64_t>(total)};
}

}  // namespace retina
