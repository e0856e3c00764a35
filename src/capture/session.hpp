// One interface of a running capture: a libpcap handle (TPACKET_V3 ring,
// kernel filter) and its packet file, sharing the capture's limits with
// the capture's other interfaces.
#pragma once

#include <pcap/pcap.h>
#include <sys/time.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "capture/targets.hpp"
#include "capture/writer.hpp"
#include "loader/fd.hpp"
#include "retina/capture.hpp"

namespace retina::capture {

enum class StopReason : int { kNone = 0, kDuration, kMaxSize, kPacketCount, kCancelled, kError };
const char* to_string(StopReason r);

// Shared by every interface of one capture.
class CaptureLimits {
 public:
  static Result<std::unique_ptr<CaptureLimits>> create(uint64_t max_packets, uint64_t max_bytes);

  // Reserves room for one packet of `record` bytes; false (and the capture
  // stops) when a limit would be passed.
  bool reserve(size_t record);
  void add_header(size_t bytes) { bytes_.fetch_add(bytes, std::memory_order_relaxed); }
  // The first reason wins; wakes every interface.
  void stop(StopReason reason);
  bool stopping() const { return reason_.load(std::memory_order_acquire) != 0; }
  StopReason reason() const { return static_cast<StopReason>(reason_.load(std::memory_order_acquire)); }
  // Packets stamped after this were not part of the capture.
  timeval stop_time() const;
  int wake_fd() const { return wake_.get(); }
  uint64_t bytes() const { return bytes_.load(std::memory_order_relaxed); }

 private:
  CaptureLimits() = default;
  uint64_t max_packets_ = 0, max_bytes_ = 0;
  std::atomic<uint64_t> packets_{0}, bytes_{0};
  std::atomic<int> reason_{0};
  std::atomic<int64_t> stop_us_{0};
  loader::UniqueFd wake_;
};

// Compiles `filter` for Ethernet; the libpcap message on failure.
retina::Status check_filter(const std::string& filter, uint32_t snaplen);

// fileCount: `count` files of at most `file_bytes` each per interface.
struct FileRing {
  uint32_t count = 1;
  uint64_t file_bytes = 0;
};

class InterfaceCapture {
 public:
  // Opens, filters and starts buffering packets at once (the capture's
  // start time), writing to `path`.
  static Result<std::unique_ptr<InterfaceCapture>> open(const CaptureInterface& target, const std::string& filter,
                                                        uint32_t snaplen, FileFormat format, const std::string& dir,
                                                        std::string file_name, CaptureLimits& limits, FileRing ring = {});
  ~InterfaceCapture();
  InterfaceCapture(const InterfaceCapture&) = delete;
  InterfaceCapture& operator=(const InterfaceCapture&) = delete;

  // Captures until the limits say stop, then writes what the kernel
  // buffered before the stop time, reads pcap_stats and closes the file.
  void run();
  const InterfaceStats& stats() const { return stats_; }

 private:
  InterfaceCapture() = default;
  static void on_packet(u_char* user, const pcap_pkthdr* h, const u_char* data);
  int dispatch();
  // Closes the current ring file, starts the next, drops the oldest beyond the count.
  bool rotate();
  std::string ring_name(uint64_t seq) const;

  struct RingFile {
    std::string name;
    uint64_t packets = 0, bytes = 0;
  };

  pcap_t* pcap_ = nullptr;
  std::unique_ptr<PacketWriter> writer_;
  CaptureLimits* limits_ = nullptr;
  bool draining_ = false;
  timeval cutoff_{};
  InterfaceStats stats_;
  std::string dir_, base_name_;
  FileFormat format_ = FileFormat::kPcap;
  FileRing ring_;
  uint64_t seq_ = 0;
  uint64_t file_bytes_ = 0;  // the current file's size
  std::vector<RingFile> ring_files_;  // kept, oldest first (ring mode)
};

}  // namespace retina::capture
