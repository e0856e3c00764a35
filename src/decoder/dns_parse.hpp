// The DNS parser behind parse_dns(), with the one knob the flow decoder
// needs: a message whose capture was cut short (dns_len < wire_len) still
// yields its header, question and the answers that fit.
#pragma once

#include <span>

#include "retina/dns.hpp"

namespace retina::dns_detail {

// When `captured_prefix` is true, a record running past the end of `msg`
// ends the answer section instead of failing: the header and the first
// question must still be complete.
expected<void, DnsError> parse(std::span<const std::byte> msg, DnsInfo& out,
                               bool captured_prefix) noexcept;

}  // namespace retina::dns_detail
