// libFuzzer target for the DNS parser, in both strict and cut-capture modes.
#include <cstddef>
#include <cstdint>
#include <span>

#include "decoder/dns_parse.hpp"
#include "retina/dns.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static retina::DnsInfo info;  // reused, as the decoder does
  const auto msg = std::as_bytes(std::span<const uint8_t>(data, size));
  const bool strict = static_cast<bool>(retina::parse_dns(msg, info));
  const bool partial = static_cast<bool>(retina::dns_detail::parse(msg, info, true));
  // Whatever parses strictly also parses as a cut capture.
  if (strict && !partial) __builtin_trap();
  if (partial && info.query.empty()) __builtin_trap();
  return 0;
}
