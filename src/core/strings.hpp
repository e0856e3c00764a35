// ASCII text helpers for std::string_view, over absl's. Debian's absl keeps
// its own string_view type (ABSL_OPTION_USE_STD_STRING_VIEW 0), so views
// are handed over explicitly here, once.
#pragma once

#include <string>
#include <string_view>

#include <absl/strings/ascii.h>
#include <absl/strings/strip.h>

namespace retina::text {

inline absl::string_view to_absl(std::string_view s) { return {s.data(), s.size()}; }

inline std::string lower(std::string_view s) { return absl::AsciiStrToLower(to_absl(s)); }
inline std::string upper(std::string_view s) { return absl::AsciiStrToUpper(to_absl(s)); }
// Without leading and trailing ASCII white space.
inline std::string_view trim(std::string_view s) {
  const absl::string_view t = absl::StripAsciiWhitespace(to_absl(s));
  return {t.data(), t.size()};
}

}  // namespace retina::text
