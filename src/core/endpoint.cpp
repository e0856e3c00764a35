#include "retina/endpoint.hpp"

#include <string>

namespace retina {

const char* to_string(EndpointKind kind) {
  switch (kind) {
    case EndpointKind::kPod: return "pod";
    case EndpointKind::kService: return "service";
    case EndpointKind::kNode: return "node";
    case EndpointKind::kExternal: return "external";
    case EndpointKind::kUnknown: break;
  }
  return "unknown";
}

std::string Endpoint::key() const {
  const char* k = to_string(kind);
  std::string out;
  out.reserve(std::char_traits<char>::length(k) + namespace_.size() + name.size() + 2);
  out += k;
  out += '/';
  out += namespace_;
  out += '/';
  out += name;
  return out;
}

}  // namespace retina
