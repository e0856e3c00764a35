// The flow log (flowLogPath): every flow as one Hubble JSON line, appended
// to a file by a thread of its own from a pipeline subscription, so a slow
// disk never holds up the reader. Flows the file cannot take (queue full,
// write error) are counted in lost_events_counter{type="external_channel",
// reason="flowlog"}.
//
// The file only ever holds whole lines: a batch that fails half-way (a full
// disk) is cut back off, and a file that ends inside a line (the agent was
// killed mid-write) is cut back to its last full line when opened. Past
// max_bytes it is renamed to <path>.1, older ones shift up to
// <path>.<max_files>, and a new file begins. A failing disk is reported
// (log, retina_flow_log_failing, /healthz), never fatal: writing resumes
// once the disk takes data again.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "retina/error.hpp"
#include "retina/pipeline.hpp"

namespace retina {

namespace metrics {
class Registry;
class Counter;
class Gauge;
}  // namespace metrics

struct FlowLogOptions {
  std::string path;
  uint64_t max_bytes = 0;  // 0: never rotate
  uint32_t max_files = 5;  // rotated files kept
  std::string node_name;   // node_name of each line
};

struct FlowLogStatus {
  bool failing = false;
  std::string last_error;
  uint64_t written = 0;
  uint64_t rotations = 0;
};

class FlowLog {
 public:
  static constexpr std::string_view kSubscriberName = "flowlog";

  // Opens the path for appending (created 0640 when missing) and starts writing.
  static Result<std::unique_ptr<FlowLog>> open(FlowLogOptions options, Pipeline& pipeline,
                                               metrics::Registry* registry);
  ~FlowLog();
  FlowLog(const FlowLog&) = delete;
  FlowLog& operator=(const FlowLog&) = delete;

  // Writes what is still queued, then stops and closes the file. Idempotent.
  void stop() noexcept;

  uint64_t written() const { return written_.load(); }
  FlowLogStatus status() const;

 private:
  FlowLog() = default;
  void run();
  void write_batch(const std::string& data, size_t flows);
  bool write_all(const std::string& data);
  void rotate();
  void set_failing(bool failing, std::string error);

  FlowLogOptions opts_;
  int fd_ = -1;
  bool regular_ = false;  // rotation and repair apply to regular files only
  uint64_t size_ = 0;     // bytes in the current file, all whole lines
  std::shared_ptr<Subscription> sub_;
  metrics::Counter* lost_ = nullptr;
  metrics::Counter* rotations_metric_ = nullptr;
  metrics::Gauge* failing_metric_ = nullptr;
  std::atomic<bool> stopping_{false};
  std::atomic<uint64_t> written_{0};
  std::atomic<uint64_t> rotations_{0};
  mutable std::mutex status_mu_;
  bool failing_ = false;
  std::string last_error_;
  std::thread thread_;
};

}  // namespace retina
