// Bounds-checked DNS message parser (RFC 1035 with name compression).
#pragma once

#include <cstddef>
#include <cstdint>
#include "retina/expected.hpp"
#include <span>

#include "retina/flow.hpp"

namespace retina {

enum class DnsError : uint8_t {
  kTooShort = 0,      // fewer than 12 header bytes
  kNoQuestion,        // QDCOUNT is 0
  kBadName,           // label too long, name too long, pointer loop or out of bounds
  kTruncatedRecord,   // a record runs past the end of the message
  kCount,
};

const char* to_string(DnsError e);

// Parses the header, the first question and the A/AAAA answers into `out`.
// Reuses `out`'s capacity: no allocation once its buffers have grown.
expected<void, DnsError> parse_dns(std::span<const std::byte> msg, DnsInfo& out) noexcept;

}  // namespace retina
