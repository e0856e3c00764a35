// Query strings of the API server, parsed and validated without the HTTP
// library so the parser can be fuzzed on its own.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "retina/error.hpp"
#include "retina/pipeline.hpp"

namespace retina::http {

inline constexpr size_t kMaxQueryParams = 64;
inline constexpr size_t kMaxQueryValueBytes = 512;

// Splits "a=1&b=x%20y" into decoded pairs ('+' is a space). Errors name the
// offending parameter: bad percent escapes, NUL bytes, too many or too long
// parameters.
Result<std::vector<std::pair<std::string, std::string>>> parse_query(std::string_view query);

// GET /flows parameters.
struct FlowQuery {
  bool follow = false;  // stream until the client leaves (or `max` flows)
  size_t max = 0;       // 0: no limit when following, kDefaultMax otherwise
  FlowFilter filter;
};

inline constexpr size_t kDefaultFlowMax = 100;
inline constexpr size_t kMaxFlowMax = 1000000;

// follow=0|1|true|false, max=N (1..1000000), namespace=, pod=, ip=, port=,
// verdict= (FORWARDED DROPPED ERROR RETRANSMISSION DNS), origin=
// (packetparser dropreason dns tcpretrans). Filter keys repeat or take
// comma-separated lists; values of one key are alternatives, different keys
// must all match. Unknown keys are errors.
Result<FlowQuery> parse_flow_query(std::string_view query);

}  // namespace retina::http
