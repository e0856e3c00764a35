// The flow decoder: a pure function from one ring-buffer record to a Flow.
#pragma once

#include <cstddef>
#include <cstdint>
#include "retina/expected.hpp"
#include <span>
#include <string>
#include <string_view>
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
  // Names of enum skb_drop_reason values, learned from kernel BTF, indexed
  // by retina_drop_reason_slot(value) (abi/events.h); may be null.
  const std::vector<std::string>* drop_reason_names = nullptr;
};

// Decodes `record` into `out`. A batch record (is_batch()) is not one
// record: split_batch() takes it apart; decode() gives kUnknownType for it,
// or the reason split_batch() cannot. `out` is fully overwritten on success; on
// error its content is unspecified. Never reads outside `record`, never
// throws, and allocates nothing except when a DNS message needs more
// room in *ctx.dns_scratch than earlier ones did.
//
// Length rules: the record must hold the header (kTooShort); the header's
// len must cover the header and not exceed the record, which the ring
// buffer may pad to 8 bytes (kLengthMismatch); after type and version
// checks, len must cover the type's struct (kTooShort). A DNS record may
// end right after its dns_len message bytes. Bytes past len are ignored.
//
// Flow::time_ns is hdr.ts_ns + ctx.boot_to_realtime_ns. Flow::dns points
// at ctx.dns_scratch and drop_reason_desc into ctx.drop_reason_names (or
// a static "UNKNOWN"); they stay valid while those do.
expected<void, DecodeError> decode(std::span<const std::byte> record, const DecodeContext& ctx,
                                        Flow& out) noexcept;

// The name of the source whose event type the record's header carries
// (flow_sources()), or "unknown" when the header is short or the type is not
// in the table. Labels rejects of records whose origin the caller does not know.
std::string_view record_source(std::span<const std::byte> record) noexcept;

// A batch record (RETINA_EV_BATCH, abi/events.h) carries `count` whole
// records of `stride` bytes each, back to back; decode() takes them one at
// a time. packetparser sends its packets in batches at aggregation low.
struct BatchView {
  std::span<const std::byte> records;  // count * stride bytes
  size_t count = 0;
  size_t stride = 0;
  std::span<const std::byte> record(size_t i) const noexcept { return records.subspan(i * stride, stride); }
};

// Whether the record's header names a batch (reads the type only).
bool is_batch(std::span<const std::byte> record) noexcept;

// Checks a batch's framing, in the decoder's order: the batch header fits
// (kTooShort); hdr.len covers it and not more than the record
// (kLengthMismatch); the version is known (kUnsupportedVersion); count is
// 1..RETINA_BATCH_MAX and stride a non-zero multiple of 8 that holds a
// record header (kBadField); count * stride fits in hdr.len (kTooShort).
// The records themselves are checked by decode().
expected<BatchView, DecodeError> split_batch(std::span<const std::byte> record) noexcept;

// CLOCK_REALTIME - CLOCK_BOOTTIME, sampled now.
int64_t boot_to_realtime_offset_ns();

}  // namespace retina
