#include "capture/session.hpp"

#include <errno.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <chrono>

#include <fmt/format.h>

#include "core/log.hpp"

namespace retina::capture {
namespace {

constexpr int kBlockTimeoutMs = 100;          // TPACKET_V3 block retire timeout
constexpr int kBufferBytes = 32 << 20;        // kernel ring per interface
constexpr uint32_t kDefaultSnaplen = 262144;

bool after(const timeval& a, const timeval& b) {
  return a.tv_sec > b.tv_sec || (a.tv_sec == b.tv_sec && a.tv_usec > b.tv_usec);
}

}  // namespace

const char* to_string(StopReason r) {
  switch (r) {
    case StopReason::kNone: return "";
    case StopReason::kDuration: return "duration";
    case StopReason::kMaxSize: return "max size";
    case StopReason::kPacketCount: return "packet count";
    case StopReason::kCancelled: return "cancelled";
    case StopReason::kError: return "error";
  }
  return "";
}

Result<std::unique_ptr<CaptureLimits>> CaptureLimits::create(uint64_t max_packets, uint64_t max_bytes) {
  std::unique_ptr<CaptureLimits> l(new CaptureLimits());
  l->max_packets_ = max_packets;
  l->max_bytes_ = max_bytes;
  const int fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (fd < 0) return unexpected(Error::system("eventfd", errno));
  l->wake_.reset(fd);
  return l;
}

bool CaptureLimits::reserve(size_t record) {
  if (max_packets_ != 0) {
    if (packets_.fetch_add(1, std::memory_order_relaxed) >= max_packets_) {
      packets_.fetch_sub(1, std::memory_order_relaxed);
      stop(StopReason::kPacketCount);
      return false;
    }
  }
  if (bytes_.fetch_add(record, std::memory_order_relaxed) + record > max_bytes_) {
    bytes_.fetch_sub(record, std::memory_order_relaxed);
    if (max_packets_ != 0) packets_.fetch_sub(1, std::memory_order_relaxed);
    stop(StopReason::kMaxSize);
    return false;
  }
  // The last allowed packet ends the capture at once.
  if (max_packets_ != 0 && packets_.load(std::memory_order_relaxed) >= max_packets_) stop(StopReason::kPacketCount);
  return true;
}

void CaptureLimits::stop(StopReason reason) {
  timeval now{};
  ::gettimeofday(&now, nullptr);
  int expected = 0;
  if (reason_.compare_exchange_strong(expected, static_cast<int>(reason), std::memory_order_acq_rel)) {
    stop_us_.store(static_cast<int64_t>(now.tv_sec) * 1000000 + now.tv_usec, std::memory_order_release);
    const uint64_t one = 1;
    (void)!::write(wake_.get(), &one, sizeof one);
  }
}

timeval CaptureLimits::stop_time() const {
  const int64_t us = stop_us_.load(std::memory_order_acquire);
  return timeval{static_cast<time_t>(us / 1000000), static_cast<suseconds_t>(us % 1000000)};
}

retina::Status check_filter(const std::string& filter, uint32_t snaplen) {
  pcap_t* dead = pcap_open_dead(DLT_EN10MB, static_cast<int>(snaplen ? snaplen : kDefaultSnaplen));
  if (!dead) return unexpected(Error::internal("pcap_open_dead failed"));
  bpf_program prog{};
  const int rc = pcap_compile(dead, &prog, filter.c_str(), 1, PCAP_NETMASK_UNKNOWN);
  std::string message = rc != 0 ? pcap_geterr(dead) : "";
  if (rc == 0) pcap_freecode(&prog);
  pcap_close(dead);
  if (rc != 0) return unexpected(Error::invalid(fmt::format("filter '{}' does not compile: {}", filter, message)));
  return ok();
}

Result<std::unique_ptr<InterfaceCapture>> InterfaceCapture::open(const CaptureInterface& target,
                                                                 const std::string& filter, uint32_t snaplen,
                                                                 FileFormat format, const std::string& dir,
                                                                 std::string file_name, CaptureLimits& limits,
                                                                 FileRing ring) {
  std::unique_ptr<InterfaceCapture> c(new InterfaceCapture());
  c->limits_ = &limits;
  c->stats_.name = target.name;
  c->dir_ = dir;
  c->base_name_ = std::move(file_name);
  c->format_ = format;
  c->ring_ = ring;
  c->stats_.file = c->ring_.count > 1 ? c->ring_name(0) : c->base_name_;
  char errbuf[PCAP_ERRBUF_SIZE] = {};
  c->pcap_ = pcap_create(target.name.c_str(), errbuf);
  if (!c->pcap_) return unexpected(Error::internal(fmt::format("pcap_create({}): {}", target.name, errbuf)));
  pcap_set_snaplen(c->pcap_, static_cast<int>(snaplen ? snaplen : kDefaultSnaplen));
  pcap_set_promisc(c->pcap_, 0);
  pcap_set_timeout(c->pcap_, kBlockTimeoutMs);
  pcap_set_buffer_size(c->pcap_, kBufferBytes);
  const int rc = pcap_activate(c->pcap_);
  if (rc < 0) {
    return unexpected(Error::internal(fmt::format("pcap_activate({}): {}", target.name, pcap_geterr(c->pcap_))));
  }
  std::string full = filter;
  if (!target.pod_filter.empty()) full = filter.empty() ? target.pod_filter : fmt::format("({}) and ({})", target.pod_filter, filter);
  if (!full.empty()) {
    bpf_program prog{};
    if (pcap_compile(c->pcap_, &prog, full.c_str(), 1, PCAP_NETMASK_UNKNOWN) != 0) {
      return unexpected(Error::invalid(fmt::format("filter '{}' does not compile on {}: {}", full, target.name,
                                                   pcap_geterr(c->pcap_))));
    }
    const int set = pcap_setfilter(c->pcap_, &prog);
    pcap_freecode(&prog);
    if (set != 0) {
      return unexpected(Error::internal(fmt::format("pcap_setfilter({}): {}", target.name, pcap_geterr(c->pcap_))));
    }
  }
  if (pcap_setnonblock(c->pcap_, 1, errbuf) != 0) {
    return unexpected(Error::internal(fmt::format("pcap_setnonblock({}): {}", target.name, errbuf)));
  }
  auto w = PacketWriter::open(format, dir + "/" + c->stats_.file, c->pcap_, target.name);
  if (!w) return unexpected(w.error());
  c->writer_ = std::move(*w);
  limits.add_header(c->writer_->header_size());
  c->file_bytes_ = c->writer_->header_size();
  if (c->ring_.count > 1) c->ring_files_.push_back({c->stats_.file, 0, 0});
  return c;
}

std::string InterfaceCapture::ring_name(uint64_t seq) const {
  // "eth0.pcap" -> "eth0.000003.pcap": names sort in capture order.
  const size_t dot = base_name_.rfind('.');
  return fmt::format("{}.{:06}{}", base_name_.substr(0, dot), seq, base_name_.substr(dot));
}

bool InterfaceCapture::rotate() {
  if (auto st = writer_->close(); !st) {
    stats_.error = st.error().message + " (disk full?)";
    limits_->stop(StopReason::kError);
    return false;
  }
  const std::string next = ring_name(++seq_);
  auto w = PacketWriter::open(format_, dir_ + "/" + next, pcap_, stats_.name);
  if (!w) {
    stats_.error = w.error().message;
    limits_->stop(StopReason::kError);
    return false;
  }
  writer_ = std::move(*w);
  file_bytes_ = writer_->header_size();
  stats_.file = next;
  ring_files_.push_back({next, 0, 0});
  if (ring_files_.size() > ring_.count) {
    const RingFile& old = ring_files_.front();
    (void)::unlink((dir_ + "/" + old.name).c_str());
    stats_.packets -= old.packets;
    stats_.bytes -= old.bytes;
    stats_.overwritten_packets += old.packets;
    ring_files_.erase(ring_files_.begin());
  }
  return true;
}

InterfaceCapture::~InterfaceCapture() {
  writer_.reset();
  if (pcap_) pcap_close(pcap_);
}

void InterfaceCapture::on_packet(u_char* user, const pcap_pkthdr* h, const u_char* data) {
  auto* self = reinterpret_cast<InterfaceCapture*>(user);
  if (self->limits_->stopping()) {
    if (!self->draining_) self->cutoff_ = self->limits_->stop_time();
    if (after(h->ts, self->cutoff_)) return;
  }
  const size_t record = self->writer_->record_size(*h);
  if (self->ring_.count > 1 && self->file_bytes_ > self->writer_->header_size() &&
      self->file_bytes_ + record > self->ring_.file_bytes && !self->rotate()) {
    return;
  }
  if (!self->limits_->reserve(record)) return;
  self->writer_->write(*h, data);
  self->file_bytes_ += record;
  ++self->stats_.packets;
  self->stats_.bytes += h->len;
  if (!self->ring_files_.empty()) {
    ++self->ring_files_.back().packets;
    self->ring_files_.back().bytes += h->len;
  }
  // stdio buffers: an error shows within a few packets of the disk filling up.
  if ((self->stats_.packets & 63) == 0 && self->writer_->failed()) {
    self->stats_.error = "writing the packet file failed (disk full?)";
    self->limits_->stop(StopReason::kError);
  }
}

int InterfaceCapture::dispatch() {
  const int n = pcap_dispatch(pcap_, -1, &InterfaceCapture::on_packet, reinterpret_cast<u_char*>(this));
  if (n == PCAP_ERROR) {
    stats_.error = fmt::format("pcap_dispatch: {}", pcap_geterr(pcap_));
    log::warn("capture", "interface failed", {{"interface", stats_.name}, {"error", stats_.error}});
  }
  return n;
}

void InterfaceCapture::run() {
  pollfd fds[2] = {{pcap_get_selectable_fd(pcap_), POLLIN, 0}, {limits_->wake_fd(), POLLIN, 0}};
  while (!limits_->stopping() && stats_.error.empty()) {
    const int r = ::poll(fds, 2, kBlockTimeoutMs);
    if (r < 0 && errno != EINTR) {
      stats_.error = fmt::format("poll: {}", std::strerror(errno));
      break;
    }
    if (dispatch() < 0) break;
  }
  // Packets stamped before the stop may sit in a ring block the kernel
  // retires only after its timeout: keep reading until then.
  cutoff_ = limits_->stop_time();
  draining_ = true;
  const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(2 * kBlockTimeoutMs + 50);
  while (stats_.error.empty() && std::chrono::steady_clock::now() < until) {
    (void)::poll(fds, 1, 20);
    if (dispatch() < 0) break;
  }
  pcap_stat ps{};
  if (pcap_stats(pcap_, &ps) == 0) {
    stats_.kernel_dropped = ps.ps_drop;
    stats_.interface_dropped = ps.ps_ifdrop;
  }
  if (auto st = writer_->close(); !st) {
    stats_.error = st.error().message + " (disk full?)";
    limits_->stop(StopReason::kError);
  }
  stats_.files.clear();
  if (ring_files_.empty()) {
    stats_.files.push_back(stats_.file);
  } else {
    for (const auto& f : ring_files_) stats_.files.push_back(f.name);
  }
}

}  // namespace retina::capture
