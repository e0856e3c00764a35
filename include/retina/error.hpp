// Error type and Result<T> used by every fallible retina API.
#pragma once

#include "retina/expected.hpp"
#include <string>
#include <string_view>
#include <vector>

namespace retina {

// One of several problems found at once: where (a config key path such as
// "metricsConfiguration.contextOptions[0].metricName") and what is wrong.
struct Problem {
  std::string path;
  std::string message;
  bool operator==(const Problem&) const = default;
};

struct Error {
  enum class Kind {
    kInvalidArgument,  // bad config, bad input
    kSystem,           // a kernel call failed; `code` holds errno
    kUnsupported,      // the kernel or environment lacks a feature
    kNotFound,
    kParse,            // malformed external data (YAML, JSON, events)
    kInternal,
  };

  Kind kind = Kind::kInternal;
  int code = 0;  // errno for kSystem
  std::string message;
  // Every problem when validation found several (message then holds one
  // "path: message" line each); empty for other errors.
  std::vector<Problem> problems;

  // "bpf_tc_attach(ifindex 4, ingress): File exists (errno 17)"
  static Error system(std::string_view call, int err);
  static Error invalid(std::string message) { return {Kind::kInvalidArgument, 0, std::move(message), {}}; }
  // kInvalidArgument listing every problem, one "path: message" line each.
  static Error invalid(std::vector<Problem> problems);
  static Error unsupported(std::string message) { return {Kind::kUnsupported, 0, std::move(message), {}}; }
  static Error parse(std::string message) { return {Kind::kParse, 0, std::move(message), {}}; }
  static Error not_found(std::string message) { return {Kind::kNotFound, 0, std::move(message), {}}; }
  static Error internal(std::string message) { return {Kind::kInternal, 0, std::move(message), {}}; }

  // Prefixes context: err.wrap("load packetparser") -> "load packetparser: <message>"
  Error wrap(std::string_view context) const;
};

template <class T>
using Result = expected<T, Error>;

using Status = expected<void, Error>;

inline Status ok() { return {}; }

}  // namespace retina
