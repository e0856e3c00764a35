// A Flow as one line of Hubble-compatible JSON, the shape `hubble observe
// -o json` prints: {"flow":{...},"node_name":"...","time":"..."}.
//
// Field names and enum spellings follow Hubble's flow.proto as protojson
// renders it: zero values are omitted (so "sub_type":0 and "rcode":0 do not
// appear), is_reply appears whenever the direction is known, and Retina's
// custom verdicts (RETRANSMISSION 15, DNS 16), which Hubble's enum does not
// name, are written as numbers. "extensions" holds Retina's keyed values as
// a google.protobuf.Struct inside an Any, keys sorted, zeros omitted.
// drop_reason_desc is Hubble's DropReason name when Cilium has one for the
// kernel's reason; the kernel's name is extensions' "drop_reason". The
// Observer API's protobuf flows carry the same fields (src/core/flow_fields.hpp
// decides them for both).
#pragma once

#include <string>
#include <string_view>

#include "retina/flow.hpp"

namespace retina {

struct FlowJsonOptions {
  // The node that observed the flow; "node_name" is omitted when empty.
  std::string_view node_name{};
};

// Appends the JSON object (no newline) to `out`. Strings are escaped and
// invalid UTF-8 is replaced with U+FFFD, so the output is always valid JSON.
void append_flow_json(std::string& out, const Flow& flow, const FlowJsonOptions& options = {});
std::string flow_to_json(const Flow& flow, const FlowJsonOptions& options = {});

}  // namespace retina
