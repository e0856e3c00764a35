// One resource's list+watch loop on its own thread:
//   LIST (paginated with limit/continue) -> WATCH from the list's
//   resourceVersion with bookmarks -> on a clean end WATCH again from the
//   last seen resourceVersion; on 410 Gone (status or ERROR event) or lost
//   events (a malformed line) LIST again; on any other failure back off
//   (exponential, jittered, capped) and retry.
// The cache keeps its contents throughout: only a completed LIST replaces them.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "k8s/http_client.hpp"
#include "k8s/objects.hpp"
#include "k8s/watch_metrics.hpp"
#include "retina/k8s/watcher.hpp"

namespace retina::k8s {

// Parses one resource's JSON and applies it to wherever it goes.
class ResourceHandler {
 public:
  struct PageMeta {
    std::string resource_version;
    std::string continue_token;
    uint32_t invalid_values = 0;
  };
  struct EventMeta {
    EventType type = EventType::kAdded;
    std::string resource_version;
    ApiStatus status;  // ERROR events
    uint32_t invalid_values = 0;
  };

  virtual ~ResourceHandler() = default;
  virtual void begin_list() = 0;
  // Parses a page; its items are held until commit_list().
  virtual Result<PageMeta> add_page(std::string& body) = 0;
  virtual void commit_list() = 0;
  // Parses one watch-event line and applies ADDED/MODIFIED/DELETED.
  virtual Result<EventMeta> apply_event(std::string_view line) = 0;
  virtual size_t objects() const = 0;
  virtual ApiStatus parse_status(std::string_view body) = 0;
};

// Receives a stream of whole objects (see make_raw_handler), on the
// reflector's thread.
class RawObjectSink {
 public:
  virtual ~RawObjectSink() = default;
  virtual void replace(std::vector<RawObject> items) = 0;  // a completed LIST
  virtual void apply(EventType type, RawObject obj) = 0;   // ADDED, MODIFIED, DELETED
  virtual size_t count() const = 0;
};
// A handler that keeps each object whole and hands it to `sink`.
std::unique_ptr<ResourceHandler> make_raw_handler(Resource resource, RawObjectSink& sink);
// The API path of a resource's collection ("/api/v1/pods", ...).
const char* api_path(Resource resource);

// Fires when a resource becomes synced; wait_synced() waits on it.
struct SyncSignal {
  std::mutex mu;
  std::condition_variable cv;
};

class Reflector {
 public:
  Reflector(Resource resource, std::string path, std::string field_selector, const WatcherOptions& opts,
            std::unique_ptr<HttpStream> http, std::shared_ptr<Credentials> credentials,
            std::unique_ptr<ResourceHandler> handler, ResourceMetrics& metrics, SyncSignal& sync);
  ~Reflector();
  Reflector(const Reflector&) = delete;
  Reflector& operator=(const Reflector&) = delete;

  void start();
  // Wakes the transfer and any backoff sleep; the thread then ends promptly.
  void request_stop();
  void stop();  // request_stop() and join
  ResourceStatus status() const;
  bool synced() const;

 private:
  enum class Outcome {
    kListed,   // a LIST completed
    kClean,    // the watch ended normally (timeoutSeconds): watch again
    kRelist,   // 410 Gone or lost events: list again
    kError,    // back off, then retry what failed
    kAbsent,   // the optional CRD is not installed
    kStopped,
  };

  void run();
  Outcome list();
  Outcome watch();
  Outcome http_failure(const HttpResponse& r, std::string_view what);
  void record_error(ErrorReason reason, std::string message);
  void clear_error();
  void set_synced();
  // Interruptible by stop(); false when stopping.
  bool sleep_for(std::chrono::milliseconds d);
  std::chrono::milliseconds backoff(uint32_t failures);

  const Resource resource_;
  const std::string path_;
  const std::string field_selector_;  // already URL-encoded, e.g. "spec.nodeName%3Dnode-1"
  const WatcherOptions& opts_;
  std::unique_ptr<HttpStream> http_;
  std::shared_ptr<Credentials> credentials_;
  std::unique_ptr<ResourceHandler> handler_;
  ResourceMetrics& metrics_;
  SyncSignal& sync_;
  std::mt19937_64 rng_;

  mutable std::mutex mu_;  // guards the fields below and the stop flag
  std::condition_variable cv_;
  bool stopping_ = false;
  bool synced_ = false;
  bool listed_once_ = false;
  bool absent_logged_ = false;
  std::string resource_version_;
  std::string last_error_;
  std::thread thread_;
};

// Percent-encodes a query-string value.
std::string url_encode(std::string_view s);

}  // namespace retina::k8s
