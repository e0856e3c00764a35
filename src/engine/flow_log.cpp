#include "engine/flow_log.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "core/log.hpp"
#include "retina/flow_json.hpp"
#include "retina/metrics/names.hpp"
#include "retina/metrics/registry.hpp"

namespace retina {
namespace {

constexpr size_t kBatch = 512;
constexpr size_t kQueueCapacity = 1 << 16;
constexpr auto kWait = std::chrono::milliseconds(200);

}  // namespace

Result<std::unique_ptr<FlowLog>> FlowLog::open(const std::string& path, Pipeline& pipeline,
                                               metrics::Registry* registry, std::string node_name) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
  if (fd < 0) return unexpected(Error::system(fmt::format("open({})", path), errno));
  std::unique_ptr<FlowLog> log(new FlowLog());
  log->path_ = path;
  log->node_name_ = std::move(node_name);
  log->fd_ = fd;
  if (registry) {
    log->lost_ = &registry
                      ->counter(metrics::names::kLostEvents, "Events lost before reaching every consumer",
                                {std::string(metrics::names::kType), std::string(metrics::names::kReason)})
                      .with({metrics::names::kLostExternalChannel, kSubscriberName});
  }
  log->sub_ = pipeline.subscribe(std::string(kSubscriberName), kQueueCapacity);
  log->thread_ = std::thread([p = log.get()] { p->run(); });
  return log;
}

FlowLog::~FlowLog() { stop(); }

bool FlowLog::write_all(const std::string& data) {
  size_t off = 0;
  while (off < data.size()) {
    const ssize_t n = ::write(fd_, data.data() + off, data.size() - off);
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    off += static_cast<size_t>(n);
  }
  return true;
}

void FlowLog::run() {
  std::vector<OwnedFlow> batch;
  std::string out;
  const FlowJsonOptions json{node_name_};
  bool failing = false;
  for (;;) {
    const bool last = stopping_.load(std::memory_order_acquire);
    batch.clear();
    // After stop(), take what is queued without waiting, until it is empty.
    sub_->pop_batch(batch, kBatch, last ? std::chrono::milliseconds(0) : kWait);
    if (batch.empty()) {
      if (last) break;
      continue;
    }
    out.clear();
    for (const auto& f : batch) {
      append_flow_json(out, f.flow(), json);
      out.push_back('\n');
    }
    if (write_all(out)) {
      written_.fetch_add(batch.size(), std::memory_order_relaxed);
      if (failing) log::info("flowlog", "writing again", {{"path", path_}});
      failing = false;
    } else {
      const int err = errno;
      if (lost_) lost_->add(batch.size());
      if (!failing) {
        log::error("flowlog", "cannot write flows; counting them as lost until writes succeed",
                   {{"path", path_}, {"error", Error::system("write", err).message}});
      }
      failing = true;
    }
  }
}

void FlowLog::stop() noexcept {
  stopping_.store(true, std::memory_order_release);
  if (thread_.joinable()) thread_.join();
  if (sub_) sub_->close();
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

}  // namespace retina
