// Fuzzes the endpoints file parser (YAML streamed from yaml-cpp's parser
// events, entry by entry; JSON through simdjson; malformed JSON through
// the YAML path again) and
// feeds whatever parses into an IpCache, which must accept it.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "cache/endpoints_file.hpp"
#include "retina/ip_cache.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto eps = retina::parse_endpoints(text);
  if (!eps) return 0;
  retina::IpCache cache;
  cache.replace_source(retina::EndpointSource::kFile, *eps);
  auto guard = cache.read();
  for (const auto& ep : *eps) {
    (void)ep->key();
    for (const auto& ip : ep->ips)
      if (guard.lookup(ip) != ep.get()) __builtin_trap();  // file entries never share an address
  }
  return 0;
}
