// retina::Flow -> Hubble's protobuf flow (flow.Flow). The fields and values
// come from core/flow_fields.hpp, shared with the JSON writer, so a flow
// reads the same over gRPC, in /flows and in the flow log.
#pragma once

#include <memory>
#include <string_view>

#include <google/protobuf/arena.h>

#include "flow/flow.pb.h"
#include "retina/flow.hpp"

namespace retina::hubble {

// Fills `out` (cleared first; reusing one message reuses its memory).
void to_proto(const Flow& flow, std::string_view node_name, ::flow::Flow& out);

// Messages built one after another, each used (written) before the next
// is made: they live on an arena that restarts every kBatch messages, in
// a block of its own, so a stream of flows allocates (almost) nothing.
// Clearing one reused message instead would free and reallocate every
// sub-message (protobuf's Clear() deletes them).
class MessageScratch {
 public:
  static constexpr size_t kBatch = 256;
  MessageScratch();
  MessageScratch(const MessageScratch&) = delete;
  MessageScratch& operator=(const MessageScratch&) = delete;

  // A new empty message; those made before the last restart are gone.
  template <class M>
  M* make() {
    if (++made_ > kBatch) {
      arena_->Reset();
      made_ = 1;
    }
    return google::protobuf::Arena::CreateMessage<M>(arena_.get());
  }

 private:
  std::unique_ptr<char[]> block_;
  std::unique_ptr<google::protobuf::Arena> arena_;
  size_t made_ = 0;
};

// google.protobuf.Timestamp from unix nanoseconds, and back.
void set_timestamp(uint64_t unix_ns, google::protobuf::Timestamp& out);
uint64_t unix_ns(const google::protobuf::Timestamp& ts);

}  // namespace retina::hubble
