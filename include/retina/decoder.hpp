// The flow decoder: a pure function from one ring-buffer record to a Flow.
#pragma once

#include <cstddef>
#include <cstdint>
#include "retina/expected.hpp"
#include <span>
#include <string>
#include <vector>

#include "retina/flow.hpp"

namespace retina {

enum class DecodeError : uint8_t {
  kTooShort = 0,       // shorter than the common header or than its type's struct
  kLengthMismatch,     // header length disagrees with the record size
  kUnknownType,        // type not produced by any known plugin
  kUnsupportedVersion, // layout version newer than this decoder
  kBadField,           // a field holds an impossible value (family, obs point, ...)
  kDnsMalformed,       // DNS payload failed to parse
  kCount,
};

const char* to_string(DecodeError e);

struct DecodeContext {
  // Added to the kernel's CLOCK_BOOTTIME stamps to get unix time.
  int64_t boot_to_realtime_ns = 0;
  // Scratch the decoder fills for DNS events; Flow::dns points into it.
  DnsInfo* dns_scratch = nullptr;
  // Names of enum skb_drop_reason values, learned from kernel BTF; may be null.
  const std::vector<std::string>* drop_reason_names = nullptr;
};

// Decodes `record` into `out`. `out` is fully overwritten on success; on
// error its content is unspecified. Never reads outside `record`.
expected<void, DecodeError> decode(std::span<const std::byte> record, const DecodeContext& ctx,
                                        Flow& out) noexcept;

// CLOCK_REALTIME - CLOCK_BOOTTIME, sampled now.
int64_t boot_to_realtime_offset_ns();

}  // namespace retina
