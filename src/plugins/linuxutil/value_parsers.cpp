#include "plugins/linuxutil/value_parsers.hpp"

#include <charconv>
#include <limits>
#include <string>

namespace retina::linuxutil {

std::string_view trim(std::string_view s) {
  constexpr std::string_view kSpace = " \t\n\r";
  const size_t b = s.find_first_not_of(kSpace);
  if (b == std::string_view::npos) return {};
  const size_t e = s.find_last_not_of(kSpace);
  return s.substr(b, e - b + 1);
}

std::string quote(std::string_view s) {
  constexpr size_t kMax = 40;
  std::string out = "'";
  for (char c : s.substr(0, kMax)) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u >= 0x7f) {
      static constexpr char kHex[] = "0123456789abcdef";
      out += "\\x";
      out += kHex[u >> 4];
      out += kHex[u & 15];
    } else {
      out += c;
    }
  }
  out += s.size() > kMax ? "'..." : "'";
  return out;
}

Result<uint64_t> parse_u64(std::string_view token) {
  if (token.empty()) return unexpected(Error::parse("empty number"));
  uint64_t v = 0;
  const char* end = token.data() + token.size();
  // from_chars accepts neither '+' nor whitespace, so a full match is a plain decimal.
  auto [p, ec] = std::from_chars(token.data(), end, v, 10);
  if (ec == std::errc::result_out_of_range)
    return unexpected(Error::parse("number " + quote(token) + " exceeds 2^64-1"));
  if (ec != std::errc() || p != end)
    return unexpected(Error::parse(quote(token) + " is not a decimal number"));
  return v;
}

Result<StatValue> parse_stat_value(std::string_view token) {
  StatValue out;
  if (!token.empty() && token[0] == '-') {
    out.negative = true;
    token.remove_prefix(1);
    if (token.empty() || token[0] == '-') return unexpected(Error::parse("'-' is not a decimal number"));
  }
  auto v = parse_u64(token);
  if (!v) return unexpected(v.error());
  out.magnitude = *v;
  if (out.magnitude == 0) out.negative = false;  // "-0" is 0
  return out;
}

Result<uint64_t> parse_sysfs_u64(std::string_view text) {
  const std::string_view t = trim(text);
  if (t.empty()) return unexpected(Error::parse("empty attribute"));
  return parse_u64(t);
}

Result<int64_t> parse_sysfs_i64(std::string_view text) {
  auto v = parse_stat_value(trim(text));
  if (!v) return unexpected(v.error());
  constexpr uint64_t kMax = static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
  if (v->negative) {
    if (v->magnitude > kMax + 1) return unexpected(Error::parse("number " + quote(text) + " below -2^63"));
    return v->magnitude == kMax + 1 ? std::numeric_limits<int64_t>::min() : -static_cast<int64_t>(v->magnitude);
  }
  if (v->magnitude > kMax) return unexpected(Error::parse("number " + quote(text) + " exceeds 2^63-1"));
  return static_cast<int64_t>(v->magnitude);
}

}  // namespace retina::linuxutil
