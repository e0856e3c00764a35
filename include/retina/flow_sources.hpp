// The event sources: which plugin's kernel records become which kind of
// flow. One table (src/decoder/decoder.cpp) answers every question about
// them: the decoder's dispatch, /flows?origin=, the Flow JSON "origin" and
// the Python bindings read it.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "retina/flow.hpp"

namespace retina {

struct FlowSourceInfo {
  FlowSource source;
  std::string_view name;  // the plugin that emits it; /flows origin= value
  uint16_t event_type;    // RETINA_EV_* of its records (abi/events.h)
};

// Every source, indexed by FlowSource.
std::span<const FlowSourceInfo> flow_sources();
// The plugin name of a source; "unknown" for a value outside the table.
std::string_view to_string(FlowSource s);
std::optional<FlowSource> flow_source_from(std::string_view name);
// The source whose records carry this RETINA_EV_* type, if any.
const FlowSourceInfo* flow_source_of_event(uint16_t event_type);
// "packetparser, dropreason, dns or tcpretrans", for error messages.
std::string flow_source_names();

}  // namespace retina
