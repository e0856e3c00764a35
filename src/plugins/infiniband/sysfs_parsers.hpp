// Pure parsers for the sysfs attributes the infiniband plugin reads. Each
// takes the attribute's text (trailing newline allowed).
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

#include "retina/error.hpp"

namespace retina::infiniband {

// counters/* and hw_counters/*: a decimal up to 2^64-1. nullopt for
// "N/A (no PMA)", which ib_core prints when the port's performance
// management agent cannot be queried: not a value, not an error.
Result<std::optional<uint64_t>> parse_ib_counter(std::string_view text);

// IPoIB mode: "datagram" -> 0, "connected" -> 1.
Result<uint64_t> parse_ipoib_mode(std::string_view text);

// operstate as the kernel's IF_OPER_* number: unknown 0, notpresent 1,
// down 2, lowerlayerdown 3, testing 4, dormant 5, up 6.
Result<uint64_t> parse_operstate(std::string_view text);

// A "0x"-prefixed hex attribute such as the IPoIB pkey ("0xffff").
Result<uint64_t> parse_sysfs_hex(std::string_view text);

}  // namespace retina::infiniband
