// A consumer of BPF ring buffers (BPF_MAP_TYPE_RINGBUF) that reads the
// mmap'ed ring directly, as the kernel documents it: a consumer page we
// write, then a producer page and the data pages. Each record has an
// 8-byte header {u32 len | BUSY | DISCARD, u32 page offset} and is padded
// to 8 bytes.
//
// The kernel lets a reader map the data pages twice in a row, so a record
// that wraps around the end is contiguous (libbpf does). Every mapped page
// counts in the agent's RSS, so this reader maps them once and copies the
// rare wrapping record into a scratch buffer instead.
//
// drain() hands over at most `max` records per call, so a flood cannot
// starve the caller. The same reader runs over an in-memory image
// (RingImage) for tests and benchmarks.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "retina/error.hpp"
#include "retina/plugin.hpp"

namespace retina::loader {

inline constexpr uint32_t kRingBusyBit = 1u << 31;     // BPF_RINGBUF_BUSY_BIT
inline constexpr uint32_t kRingDiscardBit = 1u << 30;  // BPF_RINGBUF_DISCARD_BIT
inline constexpr uint32_t kRingHeaderSize = 8;         // BPF_RINGBUF_HDR_SZ

// Where the three parts of a ring live.
struct RingLayout {
  uint64_t* consumer_pos = nullptr;        // written by the consumer
  const uint64_t* producer_pos = nullptr;  // written by the producer
  const std::byte* data = nullptr;         // `size` bytes (2 * size when mapped_twice)
  size_t size = 0;                         // power of two
  bool mapped_twice = false;               // data[size..2*size) repeats data[0..size)
};

class RingBuffer final : public EventSource {
 public:
  // Maps the ring of a BPF ring-buffer map. The map fd is borrowed and must
  // outlive the reader; it is also the fd to poll.
  static Result<std::unique_ptr<RingBuffer>> open(std::string name, int map_fd);
  // A reader over memory that the caller keeps alive (see RingImage).
  static std::unique_ptr<RingBuffer> over_memory(std::string name, RingLayout layout, int poll_fd = -1);

  ~RingBuffer() override;
  RingBuffer(const RingBuffer&) = delete;
  RingBuffer& operator=(const RingBuffer&) = delete;

  std::string_view name() const override { return name_; }
  int fd() const override { return fd_; }
  size_t drain(RecordFn fn, void* user, size_t max) override;

  // Bytes committed or in flight that the consumer has not passed yet.
  size_t pending_bytes() const;
  // Records whose header made no sense (length beyond the ring or past the
  // producer); reading stops at such a record. Never happens with a kernel ring.
  uint64_t corrupt_records() const { return corrupt_.load(std::memory_order_relaxed); }

 private:
  RingBuffer(std::string name, RingLayout layout, int fd) : name_(std::move(name)), layout_(layout), fd_(fd) {}

  std::string name_;
  RingLayout layout_;
  int fd_ = -1;
  void* consumer_map_ = nullptr;  // mmap'ed by open(); null over memory
  void* producer_map_ = nullptr;
  size_t producer_map_len_ = 0;
  std::atomic<uint64_t> corrupt_{0};
  std::vector<std::byte> wrap_scratch_;  // a record that wraps, made contiguous
};

// A ring in process memory with a producer that follows the kernel's
// protocol (reserve marks BUSY, submit clears it, discard sets DISCARD).
// Single producer; for tests and benchmarks.
class RingImage {
 public:
  // size: a power of two and a multiple of the page size.
  static Result<std::unique_ptr<RingImage>> create(size_t size);
  ~RingImage();
  RingImage(const RingImage&) = delete;
  RingImage& operator=(const RingImage&) = delete;

  RingLayout layout() const { return layout_; }
  size_t size() const { return layout_.size; }

  // Space for `len` payload bytes, or null when the ring is full.
  std::byte* reserve(uint32_t len);
  void submit(std::byte* payload);
  void discard(std::byte* payload);
  // Convenience: reserve + copy + submit; false when full.
  bool push(std::span<const std::byte> payload);

  // Starts both positions at `pos` (e.g. near the end of the ring, or near
  // 2^32 to cross a 32-bit boundary).
  void reset_positions(uint64_t pos);
  uint64_t producer_pos() const;
  uint64_t consumer_pos() const;
  // Writes a raw header at the current producer position and advances it;
  // lets tests build malformed rings.
  void write_raw_header(uint32_t len_word, uint64_t advance);
  // Puts arbitrary bytes (at most size() - 8) into the ring as if a
  // producer had written them from position `pos` on (fuzzing).
  void load_raw(uint64_t pos, std::span<const std::byte> bytes);

 private:
  RingImage() = default;
  RingLayout layout_;
  void* consumer_page_ = nullptr;
  void* region_ = nullptr;  // producer page + data twice
  size_t region_len_ = 0;
  size_t page_ = 0;
  int memfd_ = -1;
  uint64_t prod_ = 0;
};

}  // namespace retina::loader
