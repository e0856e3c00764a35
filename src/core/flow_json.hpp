// JSON writing helpers shared by the flow renderer and other JSON emitters.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace retina::json {

// Appends `s` as a JSON string literal, quotes included. Control
// characters, '"' and '\\' are escaped; invalid UTF-8 becomes U+FFFD.
void append_string(std::string& out, std::string_view s);

void append_uint(std::string& out, uint64_t v);

// RFC 3339 UTC time as protojson writes a google.protobuf.Timestamp:
// "2026-01-02T03:04:05Z" with 0, 3, 6 or 9 fractional digits as needed.
void append_rfc3339(std::string& out, uint64_t unix_ns);

}  // namespace retina::json
