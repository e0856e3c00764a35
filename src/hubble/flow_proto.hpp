// retina::Flow -> Hubble's protobuf flow (flow.Flow). The fields and values
// come from core/flow_fields.hpp, shared with the JSON writer, so a flow
// reads the same over gRPC, in /flows and in the flow log.
#pragma once

#include <string_view>

#include "flow/flow.pb.h"
#include "retina/flow.hpp"

namespace retina::hubble {

// Fills `out` (cleared first; reusing one message reuses its memory).
void to_proto(const Flow& flow, std::string_view node_name, ::flow::Flow& out);

// google.protobuf.Timestamp from unix nanoseconds, and back.
void set_timestamp(uint64_t unix_ns, google::protobuf::Timestamp& out);
uint64_t unix_ns(const google::protobuf::Timestamp& ts);

}  // namespace retina::hubble
