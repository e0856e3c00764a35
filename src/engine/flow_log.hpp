// The flow log (flowLogPath): every flow as one Hubble JSON line, appended
// to a file by a thread of its own from a pipeline subscription, so a slow
// disk never holds up the reader. Flows the file cannot take (queue full,
// write error) are counted in lost_events_counter{type="external_channel",
// reason="flowlog"}.
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <thread>

#include "retina/error.hpp"
#include "retina/pipeline.hpp"

namespace retina {

namespace metrics {
class Registry;
class Counter;
}  // namespace metrics

class FlowLog {
 public:
  static constexpr std::string_view kSubscriberName = "flowlog";

  // Opens `path` for appending (created 0640 when missing) and starts writing.
  static Result<std::unique_ptr<FlowLog>> open(const std::string& path, Pipeline& pipeline,
                                               metrics::Registry* registry, std::string node_name);
  ~FlowLog();
  FlowLog(const FlowLog&) = delete;
  FlowLog& operator=(const FlowLog&) = delete;

  // Writes what is still queued, then stops and closes the file. Idempotent.
  void stop() noexcept;

  uint64_t written() const { return written_.load(); }

 private:
  FlowLog() = default;
  void run();
  bool write_all(const std::string& data);

  std::string path_;
  std::string node_name_;
  int fd_ = -1;
  std::shared_ptr<Subscription> sub_;
  metrics::Counter* lost_ = nullptr;
  std::atomic<bool> stopping_{false};
  std::atomic<uint64_t> written_{0};
  std::thread thread_;
};

}  // namespace retina
