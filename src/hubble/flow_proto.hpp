// retina::Flow -> Hubble's protobuf flow (flow.Flow). The fields and values
// come from core/flow_fields.hpp, shared with the JSON writer, so a flow
// reads the same over gRPC, in /flows and in the flow log.
//
// The flow is written straight to protobuf's wire format, field by field
// in field-number order as protobuf itself serializes them, without
// building a message: a GetFlows stream converts every flow it sends, and
// building the message tree (a dozen sub-messages, their strings) cost
// several times what the bytes do.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include <google/protobuf/timestamp.pb.h>

#include "flow/flow.pb.h"
#include "observer/observer.pb.h"
#include "retina/flow.hpp"

namespace retina::hubble {

// Appends the serialized flow.Flow for `flow` to `out`.
void append_flow_wire(const Flow& flow, std::string_view node_name, std::string& out);

// The same flow as a message (parsed from those bytes), for callers that
// want to read fields.
void to_proto(const Flow& flow, std::string_view node_name, ::flow::Flow& out);

// One GetFlowsResponse reused for a stream of flows. The flow travels as
// its wire bytes in the response's unknown field 1, which protobuf writes
// out as is: on the wire that is exactly the response's `flow` field, so
// any client reads a GetFlowsResponse carrying the flow.
class FlowResponse {
 public:
  explicit FlowResponse(std::string_view node_name);
  // Sets the response to `flow`; returns the message to write.
  const ::observer::GetFlowsResponse& set(const Flow& flow);
  // Sets the response to a flow already encoded by append_flow_wire();
  // takes `bytes` (it gets the previous flow's buffer back).
  const ::observer::GetFlowsResponse& set_encoded(uint64_t time_ns, std::string& bytes);

 private:
  std::string node_;
  ::observer::GetFlowsResponse resp_;
  std::string* bytes_;  // the unknown field's value
};

// google.protobuf.Timestamp from unix nanoseconds, and back.
void set_timestamp(uint64_t unix_ns, google::protobuf::Timestamp& out);
uint64_t unix_ns(const google::protobuf::Timestamp& ts);

}  // namespace retina::hubble
