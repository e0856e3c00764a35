#include <charconv>

#include <fmt/format.h>

#include "retina/api_server.hpp"

namespace retina {

Result<BindAddress> parse_bind_address(std::string_view text) {
  const auto bad = [&](std::string_view why) {
    return unexpected(Error::invalid(fmt::format("bind address \"{}\": {}", text, why)));
  };
  const size_t colon = text.rfind(':');
  if (colon == std::string_view::npos) return bad("want host:port or :port");
  std::string_view host = text.substr(0, colon);
  const std::string_view port = text.substr(colon + 1);
  if (host.starts_with('[')) {
    if (!host.ends_with(']') || host.size() < 3) return bad("an IPv6 host needs [addr]");
    host = host.substr(1, host.size() - 2);
  } else if (host.find(':') != std::string_view::npos) {
    return bad("an IPv6 host needs [addr]");
  }
  for (char c : host) {
    if (static_cast<unsigned char>(c) <= ' ' || c == '[' || c == ']' || c == '/') return bad("bad host");
  }
  unsigned value = 0;
  const auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (port.empty() || ec != std::errc() || end != port.data() + port.size() || value > 65535)
    return bad("the port must be a number from 0 to 65535");
  BindAddress a;
  a.host = host.empty() ? "0.0.0.0" : std::string(host);
  a.port = static_cast<uint16_t>(value);
  return a;
}

}  // namespace retina
