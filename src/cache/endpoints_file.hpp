// The endpoints file: a static list of pods, services, nodes and external
// endpoints, in YAML (yaml-cpp) or JSON (simdjson), for clusters without an
// API server connection or for addresses Kubernetes does not know.
//
//   endpoints:
//     - kind: pod            # pod | service | node | external (default pod)
//       namespace: default   # default "default" for pods and services; none for nodes
//       name: web-7d9f       # required
//       ips: [10.0.0.5, "fd00::5"]   # required, at least one
//       labels: {app: web, tier: frontend}   # or a list of "key=value"
//       workload: {kind: Deployment, name: web}   # or a list under workloads:
//       node: node-1
//       zone: eastus-1
//       service: web-svc
//       observe: true        # retina.sh: observe annotation
//
// The same as JSON: {"endpoints": [{"kind": "pod", "name": "web-7d9f", ...}]}.
// Unknown fields, a kind/namespace/name listed twice and an address listed
// twice are errors; every error names the entry index and the field. An
// empty list (`endpoints: []`) is valid and clears the file's endpoints.
// docs/endpoints-file.md is the user-facing description.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "retina/endpoint.hpp"
#include "retina/error.hpp"
#include "retina/ip_cache.hpp"

namespace retina {

// Parses endpoints-file text. Errors name the entry and field, with the line.
Result<std::vector<EndpointPtr>> parse_endpoints(std::string_view text);

// Reads a whole endpoints file (at most 256 MiB).
Result<std::string> read_endpoints_text(const std::string& path);

// Reads and parses `path`; errors are prefixed with the path.
Result<std::vector<EndpointPtr>> load_endpoints_file(const std::string& path);

// What the watcher last did, for logs and metrics.
struct EndpointsFileStatus {
  std::string path;
  bool ok = false;             // the last attempt applied the file (or found it unchanged)
  bool loaded = false;         // some version of the file has been applied
  uint64_t reloads = 0;        // versions applied to the cache
  uint64_t failures = 0;       // attempts rejected: unreadable, missing or invalid
  size_t endpoints = 0;        // endpoints in the applied version
  std::string last_error;      // why the last attempt failed; empty when ok
  std::chrono::system_clock::time_point last_reload{};  // when a version was last applied
};

// Keeps IpCache source kFile equal to the file's last valid content.
//
// Watches the file's directory with inotify, so it follows editors that
// write a new file and rename it over the old one, files that appear after
// start, and Kubernetes ConfigMap volumes (whose "..data" symlink is
// swapped). A file that turns invalid, unreadable or disappears keeps the
// last good content in the cache; the error is reported via status() and
// the callback, and counted in `failures`.
class EndpointsFileWatcher {
 public:
  struct Options {
    // Endpoints dropped from the file keep resolving this long (IpCache::remove grace).
    std::chrono::nanoseconds grace{0};
    // Called after every load attempt, on the thread that made it. Must not throw.
    std::function<void(const EndpointsFileStatus&)> on_load;
    // Called once a parse has freed its text and tree (a large transient):
    // where the process may hand freed heap back to the kernel. Must not throw.
    std::function<void()> after_parse;
  };

  // Starts watching and loads the file if it exists. Fails for an empty
  // path, a path ending in "/", a null cache, or when inotify is
  // unavailable; a missing file or directory is waited for.
  static Result<std::unique_ptr<EndpointsFileWatcher>> create(std::string path, std::shared_ptr<IpCache> cache,
                                                              Options options);
  static Result<std::unique_ptr<EndpointsFileWatcher>> create(std::string path, std::shared_ptr<IpCache> cache) {
    return create(std::move(path), std::move(cache), Options{});
  }
  ~EndpointsFileWatcher();
  EndpointsFileWatcher(const EndpointsFileWatcher&) = delete;
  EndpointsFileWatcher& operator=(const EndpointsFileWatcher&) = delete;

  // The inotify descriptor, readable when events are pending (for an
  // external epoll loop that then calls poll(0ms)).
  int fd() const { return inotify_fd_; }

  // Handles pending events, waiting up to `timeout` for the first one, and
  // reloads the file if it changed. Returns an error only for a failing
  // system call; load errors go to status(). Drive the watcher either with
  // poll() from your own loop or with start(); calls are serialized.
  Status poll(std::chrono::milliseconds timeout);

  // Calls poll() on a background thread until stop() or destruction.
  Status start();
  void stop();

  // Loads the file now, whether or not it changed.
  void reload();

  EndpointsFileStatus status() const;

 private:
  EndpointsFileWatcher(std::string path, std::shared_ptr<IpCache> cache, Options options);
  void ensure_watch();
  void load(bool force);
  void report(bool ok, std::string error);

  std::string path_;
  std::string dir_;
  std::string base_;
  std::shared_ptr<IpCache> cache_;
  Options options_;
  int inotify_fd_ = -1;
  int stop_fd_ = -1;  // eventfd that wakes the background thread
  int wd_ = -1;       // watch on dir_, -1 while the directory is missing
  std::mutex load_mu_;  // serializes poll() and reload()
  uint64_t applied_hash_ = 0;
  bool have_applied_ = false;
  mutable std::mutex status_mu_;
  EndpointsFileStatus status_;
  std::thread thread_;
  std::atomic<bool> stopping_{false};
};

}  // namespace retina
