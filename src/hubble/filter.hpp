// Hubble's FlowFilter, compiled once per request. A GetFlows request keeps
// a flow when it matches at least one whitelist filter (or there is none)
// and no blacklist filter. Inside one filter every set field must match;
// a field matches when any of its values does.
//
// Fields about things retina never sees (HTTP, Kafka, FQDNs, security
// identities, trace IDs, UUIDs) are rejected with a message rather than
// ignored, so a filter never silently selects more than it names.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <google/protobuf/repeated_ptr_field.h>

#include "flow/flow.pb.h"
#include "retina/error.hpp"
#include "retina/flow.hpp"

namespace retina::hubble {

class CompiledFilter;

class FlowFilters {
 public:
  FlowFilters();
  ~FlowFilters();
  FlowFilters(FlowFilters&&) noexcept;
  FlowFilters& operator=(FlowFilters&&) noexcept;

  // Errors are kInvalidArgument and name the field, e.g.
  // "whitelist[0].source_ip: \"10.0.0.300\" is not an IP address or CIDR".
  static Result<FlowFilters> compile(const google::protobuf::RepeatedPtrField<::flow::FlowFilter>& whitelist,
                                     const google::protobuf::RepeatedPtrField<::flow::FlowFilter>& blacklist);

  // `node_name` is the observing node's name.
  bool matches(const Flow& f, std::string_view node_name) const noexcept;
  bool empty() const noexcept { return whitelist_.empty() && blacklist_.empty(); }

 private:
  std::vector<std::unique_ptr<CompiledFilter>> whitelist_, blacklist_;
};

// A Kubernetes label selector ("app=web,tier!=db", "app in (a,b)", "!x")
// over "key=value" labels. Hubble's "k8s:" source prefix on a key is
// accepted and ignored.
class LabelSelector {
 public:
  static Result<LabelSelector> parse(std::string_view text);
  bool matches(const std::vector<std::string>& labels) const noexcept;

  struct Requirement {
    enum class Op { kExists, kNotExists, kIn, kNotIn } op;
    std::string key;
    std::vector<std::string> values;
  };
  const std::vector<Requirement>& requirements() const { return reqs_; }

 private:
  std::vector<Requirement> reqs_;
};

}  // namespace retina::hubble
