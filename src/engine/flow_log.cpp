#include "engine/flow_log.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
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

// Cuts a file that ends inside a line back to its last newline; returns
// the bytes removed.
Result<uint64_t> cut_to_last_line(int fd, uint64_t size) {
  char buf[64 * 1024];
  uint64_t end = size;
  while (end > 0) {
    const uint64_t len = std::min<uint64_t>(end, sizeof buf);
    const ssize_t n = ::pread(fd, buf, len, static_cast<off_t>(end - len));
    if (n != static_cast<ssize_t>(len)) return unexpected(Error::system("pread", n < 0 ? errno : EIO));
    const std::string_view chunk(buf, len);
    if (end == size && !chunk.empty() && chunk.back() == '\n') return 0;
    const size_t nl = chunk.rfind('\n');
    if (nl != std::string_view::npos) {
      end = end - len + nl + 1;
      break;
    }
    end -= len;
  }
  if (::ftruncate(fd, static_cast<off_t>(end)) != 0) return unexpected(Error::system("ftruncate", errno));
  return size - end;
}

Result<int> open_append(const std::string& path) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
  if (fd < 0) return unexpected(Error::system(fmt::format("open({})", path), errno));
  return fd;
}

}  // namespace

Result<std::unique_ptr<FlowLog>> FlowLog::open(FlowLogOptions options, Pipeline& pipeline,
                                               metrics::Registry* registry) {
  auto fd = open_append(options.path);
  if (!fd) return unexpected(fd.error());
  std::unique_ptr<FlowLog> log(new FlowLog());
  log->opts_ = std::move(options);
  log->fd_ = *fd;
  struct stat st {};
  if (::fstat(log->fd_, &st) != 0) return unexpected(Error::system(fmt::format("fstat({})", log->opts_.path), errno));
  log->regular_ = S_ISREG(st.st_mode);
  if (log->regular_) {
    // The append descriptor is write-only: read and cut through another.
    const int rfd = ::open(log->opts_.path.c_str(), O_RDWR | O_CLOEXEC);
    if (rfd < 0) return unexpected(Error::system(fmt::format("open({})", log->opts_.path), errno));
    auto cut = cut_to_last_line(rfd, static_cast<uint64_t>(st.st_size));
    ::close(rfd);
    if (!cut) return unexpected(cut.error().wrap(log->opts_.path));
    if (*cut > 0) {
      log::warn("flowlog", "the file ended inside a line (a write was cut short); removed the partial line",
                {{"path", log->opts_.path}, {"bytes", *cut}});
    }
    log->size_ = static_cast<uint64_t>(st.st_size) - *cut;
  }
  if (registry) {
    log->lost_ = &registry
                      ->counter(metrics::names::kLostEvents, "Events lost before reaching every consumer",
                                {std::string(metrics::names::kType), std::string(metrics::names::kReason)})
                      .with({metrics::names::kLostExternalChannel, kSubscriberName});
    log->rotations_metric_ =
        &registry->counter("retina_flow_log_rotations_total", "Times the flow log reached flowLogMaxSize and was rotated", {})
             .with({});
    log->failing_metric_ =
        &registry->gauge("retina_flow_log_failing", "1 while the flow log cannot write (a full disk); its flows count as lost", {})
             .with({});
  }
  log->sub_ = pipeline.subscribe(std::string(kSubscriberName), kQueueCapacity);
  log->thread_ = std::thread([p = log.get()] { p->run(); });
  return log;
}

FlowLog::~FlowLog() { stop(); }

FlowLogStatus FlowLog::status() const {
  FlowLogStatus s;
  s.written = written_.load();
  s.rotations = rotations_.load();
  std::lock_guard lock(status_mu_);
  s.failing = failing_;
  s.last_error = last_error_;
  return s;
}

void FlowLog::set_failing(bool failing, std::string error) {
  std::lock_guard lock(status_mu_);
  if (failing_ != failing) {
    if (failing) {
      log::error("flowlog", "cannot write flows; counting them as lost until writes succeed",
                 {{"path", opts_.path}, {"error", error}});
    } else {
      log::info("flowlog", "writing again", {{"path", opts_.path}});
    }
  }
  failing_ = failing;
  if (failing) last_error_ = std::move(error);
  if (failing_metric_) failing_metric_->set(failing ? 1 : 0);
}

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

// <path>.<i> -> <path>.<i+1> from the oldest down, <path> -> <path>.1, and a
// new <path>. Renames are atomic: a kill in between loses no whole file.
void FlowLog::rotate() {
  const auto name = [this](uint32_t i) { return i == 0 ? opts_.path : fmt::format("{}.{}", opts_.path, i); };
  for (uint32_t i = opts_.max_files; i > 0; --i) {
    if (::rename(name(i - 1).c_str(), name(i).c_str()) != 0 && errno != ENOENT) {
      log::warn("flowlog", "cannot rotate; writing on to the current file",
                {{"from", name(i - 1)}, {"to", name(i)}, {"error", Error::system("rename", errno).message}});
      return;
    }
  }
  auto fd = open_append(opts_.path);
  if (!fd) {
    // The current file was renamed: keep appending to it under its new name.
    log::warn("flowlog", "cannot open a new file after rotating; writing on to the rotated one",
              {{"path", opts_.path}, {"error", fd.error().message}});
    return;
  }
  ::close(fd_);
  fd_ = *fd;
  size_ = 0;
  rotations_.fetch_add(1);
  if (rotations_metric_) rotations_metric_->add();
}

void FlowLog::write_batch(const std::string& data, size_t flows) {
  if (regular_ && opts_.max_bytes > 0 && size_ > 0 && size_ + data.size() > opts_.max_bytes) rotate();
  if (write_all(data)) {
    size_ += data.size();
    written_.fetch_add(flows, std::memory_order_relaxed);
    set_failing(false, {});
    return;
  }
  const int err = errno;
  // Keep the file whole lines: drop what part of the batch did land.
  if (regular_) (void)::ftruncate(fd_, static_cast<off_t>(size_));
  if (lost_) lost_->add(flows);
  set_failing(true, Error::system(fmt::format("write({})", opts_.path), err).message);
}

void FlowLog::run() {
  std::vector<OwnedFlow> batch;
  std::string out;
  const FlowJsonOptions json{opts_.node_name};
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
    write_batch(out, batch.size());
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
