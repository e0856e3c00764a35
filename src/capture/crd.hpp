// The Capture custom resource (retina.sh/v1alpha1) on every agent: each
// agent watches Capture objects (list+watch by resourceVersion, through the
// watcher's Reflector), runs those whose captureTarget selects its node, and merge-patches its own entry under status.nodes.<node>. Merge
// patches of disjoint keys never conflict, so no operator has to collect
// the nodes' results.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "retina/capture.hpp"
#include "retina/k8s/watcher.hpp"

namespace retina::capture {

constexpr const char* kCaptureGroupPath = "/apis/retina.sh/v1alpha1";

struct CrdOptions {
  k8s::ClientConfig client;
  std::string node_name;
  // timeoutSeconds of each watch request is drawn from [watch_timeout, 2*watch_timeout).
  std::chrono::seconds watch_timeout{300};
};

class CrdRunner {
 public:
  static Result<std::unique_ptr<CrdRunner>> start(Manager& manager, CrdOptions options);
  ~CrdRunner();  // stops watching; running captures keep running in the manager
  CrdRunner(const CrdRunner&) = delete;
  CrdRunner& operator=(const CrdRunner&) = delete;

  struct Impl;

 private:
  CrdRunner() = default;
  // Shared with the manager's status callback, which may still be running
  // on a capture thread while this is destroyed.
  std::shared_ptr<Impl> impl_;
};

// {"status":{"nodes":{"<node>":{...}}}} for a merge patch.
std::string node_status_patch(const std::string& node, const CaptureStatus& s);

}  // namespace retina::capture
