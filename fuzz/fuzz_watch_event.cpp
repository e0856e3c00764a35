// Watch-event lines and LIST pages, fed through the line splitter in the
// chunks the input's first byte picks, then parsed as every resource type.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "k8s/json_parse.hpp"
#include "k8s/line_buffer.hpp"

using namespace retina::k8s;

namespace {

template <class T>
void parse_as(JsonParser& parser, std::string_view line) {
  auto ev = parser.parse_event<T>(line);
  if (ev && ev->type == EventType::kError) (void)ev->status.code;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const size_t chunk = 1 + data[0] % 64;
  const std::string_view input(reinterpret_cast<const char*>(data) + 1, size - 1);
  static JsonParser parser;

  LineBuffer lines(1 << 16);
  for (size_t off = 0; off < input.size(); off += chunk) {
    lines.feed(input.substr(off, chunk), [](std::string_view line) {
      parse_as<PodInfo>(parser, line);
      parse_as<ServiceInfo>(parser, line);
      parse_as<NodeInfo>(parser, line);
      parse_as<NamespaceInfo>(parser, line);
      parse_as<ReplicaSetInfo>(parser, line);
      parse_as<MetricsConfigurationInfo>(parser, line);
      parse_as<RawObject>(parser, line);
      return true;
    });
  }

  std::string body(input);
  ListPage<PodInfo> pods;
  (void)parser.parse_list(body, pods);
  ListPage<ServiceInfo> services;
  (void)parser.parse_list(body, services);
  ListPage<RawObject> raw;
  if (parser.parse_list(body, raw)) {
    for (const auto& o : raw.items) {
      if (o.json.empty() || o.json.front() != '{') __builtin_trap();  // kept whole, as an object
    }
  }
  (void)parser.parse_status(input);
  return 0;
}
