// `retina observe` filter flags -> the FlowFilters a GetFlows request
// carries, built as `hubble observe` builds them: "from" flags constrain
// the source, "to" flags the destination, and an either-side flag (--pod,
// --ip, --port, --label, --namespace) sends two filters, one per side,
// each with every other flag.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "flow/flow.pb.h"
#include "retina/error.hpp"

namespace retina::hubble {

struct ObserveFlags {
  std::vector<std::string> values[32];  // by ObserveFlag::index
};

struct ObserveFlag {
  const char* name;  // without "--"
  const char* help;
};

// Every filter flag, in help order; the CLI registers exactly these.
extern const std::vector<ObserveFlag> kObserveFlags;

// Adds `value` to flag `name`; unknown names are an error.
Status add_flag(ObserveFlags& flags, std::string_view name, std::string value);

// The whitelist to send, checked with the server's own filter compiler so
// a bad value is reported before connecting. Errors name the flag.
Result<std::vector<::flow::FlowFilter>> build_whitelist(const ObserveFlags& flags);

}  // namespace retina::hubble
