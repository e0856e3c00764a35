#include "loader/ring_buffer.hpp"

#include <linux/bpf.h>
#include <sys/mman.h>
#include <unistd.h>

#include <bpf/bpf.h>

#include <cerrno>
#include <algorithm>
#include <cstring>

#include <fmt/format.h>

namespace retina::loader {

namespace {

inline uint64_t load_acquire(const uint64_t* p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }
inline void store_release(uint64_t* p, uint64_t v) { __atomic_store_n(p, v, __ATOMIC_RELEASE); }
inline uint32_t load_acquire32(const uint32_t* p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }

inline uint64_t round_up8(uint64_t v) { return (v + 7) & ~uint64_t{7}; }

bool is_pow2(size_t v) { return v && (v & (v - 1)) == 0; }

// Publish the consumer position at least this often while draining, so
// the producer regains space during a long drain.
constexpr size_t kPublishEvery = 64;

}  // namespace

Result<std::unique_ptr<RingBuffer>> RingBuffer::open(std::string name, int map_fd) {
  bpf_map_info info;
  std::memset(&info, 0, sizeof info);
  uint32_t len = sizeof info;
  if (bpf_obj_get_info_by_fd(map_fd, &info, &len) < 0)
    return unexpected(Error::system(fmt::format("bpf_obj_get_info_by_fd(ring buffer {})", name), errno));
  if (info.type != BPF_MAP_TYPE_RINGBUF)
    return unexpected(Error::invalid(fmt::format("map '{}' is not a ring buffer (type {})", info.name, info.type)));
  const size_t size = info.max_entries;
  const size_t page = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
  if (!is_pow2(size) || size < page)
    return unexpected(Error::invalid(fmt::format("ring buffer '{}' has invalid size {}", info.name, size)));

  void* cons = ::mmap(nullptr, page, PROT_READ | PROT_WRITE, MAP_SHARED, map_fd, 0);
  if (cons == MAP_FAILED) return unexpected(Error::system(fmt::format("mmap(ring buffer {} consumer page)", name), errno));
  const size_t plen = page + size;  // data mapped once: see the header
  void* prod = ::mmap(nullptr, plen, PROT_READ, MAP_SHARED, map_fd, static_cast<off_t>(page));
  if (prod == MAP_FAILED) {
    int err = errno;
    ::munmap(cons, page);
    return unexpected(Error::system(fmt::format("mmap(ring buffer {} data, {} bytes)", name, plen), err));
  }
  RingLayout l;
  l.consumer_pos = static_cast<uint64_t*>(cons);
  l.producer_pos = static_cast<const uint64_t*>(prod);
  l.data = static_cast<const std::byte*>(prod) + page;
  l.size = size;
  std::unique_ptr<RingBuffer> rb(new RingBuffer(std::move(name), l, map_fd));
  rb->consumer_map_ = cons;
  rb->producer_map_ = prod;
  rb->producer_map_len_ = plen;
  return rb;
}

std::unique_ptr<RingBuffer> RingBuffer::over_memory(std::string name, RingLayout layout, int poll_fd) {
  return std::unique_ptr<RingBuffer>(new RingBuffer(std::move(name), layout, poll_fd));
}

RingBuffer::~RingBuffer() {
  const size_t page = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
  if (consumer_map_) ::munmap(consumer_map_, page);
  if (producer_map_) ::munmap(producer_map_, producer_map_len_);
}

size_t RingBuffer::pending_bytes() const {
  return static_cast<size_t>(load_acquire(layout_.producer_pos) - load_acquire(layout_.consumer_pos));
}

size_t RingBuffer::drain(RecordFn fn, void* user, size_t max) {
  const uint64_t mask = layout_.size - 1;
  uint64_t cons = load_acquire(layout_.consumer_pos);
  uint64_t prod = load_acquire(layout_.producer_pos);
  uint64_t published = cons;
  size_t delivered = 0;
  size_t visited = 0;
  // Discarded records cost no delivery but still time: bound them too.
  size_t budget = max + layout_.size / kRingHeaderSize;

  while (delivered < max && budget-- > 0) {
    if (cons >= prod) {
      // Caught up: publish first, then look again. The producer wakes
      // pollers only when it commits at the published position, so a
      // record committed in between is either seen here or signalled.
      if (cons != published) {
        store_release(layout_.consumer_pos, cons);
        published = cons;
        __atomic_thread_fence(__ATOMIC_SEQ_CST);
      }
      prod = load_acquire(layout_.producer_pos);
      if (cons >= prod) break;
    }
    const auto* hdr = reinterpret_cast<const uint32_t*>(layout_.data + (cons & mask));
    const uint32_t word = load_acquire32(hdr);
    if (word & kRingBusyBit) break;  // reserved, not yet committed
    const uint32_t len = word & ~(kRingBusyBit | kRingDiscardBit);
    const uint64_t advance = round_up8(uint64_t{len} + kRingHeaderSize);
    if (advance > layout_.size || cons + advance > prod) {
      corrupt_.fetch_add(1, std::memory_order_relaxed);
      break;
    }
    if (!(word & kRingDiscardBit)) {
      // Headers are 8-byte aligned and never wrap; a payload may.
      const uint64_t start = (cons & mask) + kRingHeaderSize;
      const std::byte* payload;
      // An empty record needs no copy (and the scratch may have no storage).
      if (len == 0 || start + len <= layout_.size || layout_.mapped_twice) {
        payload = layout_.data + start;
      } else {
        if (wrap_scratch_.size() < len) wrap_scratch_.resize(len);
        const size_t first = start < layout_.size ? layout_.size - start : 0;
        std::memcpy(wrap_scratch_.data(), layout_.data + (start & mask), first);
        std::memcpy(wrap_scratch_.data() + first, layout_.data, len - first);
        payload = wrap_scratch_.data();
      }
      fn(user, std::span<const std::byte>(payload, len));
      ++delivered;
    }
    cons += advance;
    if (++visited % kPublishEvery == 0) {
      store_release(layout_.consumer_pos, cons);
      published = cons;
    }
  }
  if (cons != published) store_release(layout_.consumer_pos, cons);
  return delivered;
}

// ------------------------------------------------------------------ image

Result<std::unique_ptr<RingImage>> RingImage::create(size_t size) {
  const size_t page = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
  if (!is_pow2(size) || size < page || size % page)
    return unexpected(Error::invalid(fmt::format("ring image size {} is not a power-of-two multiple of the page size", size)));
  std::unique_ptr<RingImage> img(new RingImage());
  img->page_ = page;
  img->memfd_ = ::memfd_create("retina-ring-image", MFD_CLOEXEC);
  if (img->memfd_ < 0) return unexpected(Error::system("memfd_create(ring image)", errno));
  // [consumer page][producer page][data]
  if (::ftruncate(img->memfd_, static_cast<off_t>(2 * page + size)) < 0)
    return unexpected(Error::system("ftruncate(ring image)", errno));
  void* cons = ::mmap(nullptr, page, PROT_READ | PROT_WRITE, MAP_SHARED, img->memfd_, 0);
  if (cons == MAP_FAILED) return unexpected(Error::system("mmap(ring image consumer page)", errno));
  img->consumer_page_ = cons;
  img->region_len_ = page + 2 * size;
  void* region = ::mmap(nullptr, img->region_len_, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (region == MAP_FAILED) return unexpected(Error::system("mmap(ring image reserve)", errno));
  img->region_ = region;
  auto* base = static_cast<std::byte*>(region);
  if (::mmap(base, page, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, img->memfd_, static_cast<off_t>(page)) == MAP_FAILED)
    return unexpected(Error::system("mmap(ring image producer page)", errno));
  for (int copy = 0; copy < 2; ++copy) {
    if (::mmap(base + page + copy * size, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, img->memfd_,
               static_cast<off_t>(2 * page)) == MAP_FAILED)
      return unexpected(Error::system("mmap(ring image data)", errno));
  }
  img->layout_.consumer_pos = static_cast<uint64_t*>(cons);
  img->layout_.producer_pos = reinterpret_cast<const uint64_t*>(base);
  img->layout_.data = base + page;
  img->layout_.mapped_twice = true;
  img->layout_.size = size;
  return img;
}

RingImage::~RingImage() {
  if (region_) ::munmap(region_, region_len_);
  if (consumer_page_) ::munmap(consumer_page_, page_);
  if (memfd_ >= 0) ::close(memfd_);
}

uint64_t RingImage::producer_pos() const { return load_acquire(layout_.producer_pos); }
uint64_t RingImage::consumer_pos() const { return load_acquire(layout_.consumer_pos); }

void RingImage::reset_positions(uint64_t pos) {
  prod_ = pos;
  store_release(const_cast<uint64_t*>(layout_.producer_pos), pos);
  store_release(layout_.consumer_pos, pos);
}

std::byte* RingImage::reserve(uint32_t len) {
  if (len > (kRingDiscardBit - 1)) return nullptr;
  const uint64_t total = round_up8(uint64_t{len} + kRingHeaderSize);
  const uint64_t cons = load_acquire(layout_.consumer_pos);
  const uint64_t mask = layout_.size - 1;
  if (prod_ + total - cons > mask) return nullptr;  // the kernel's rule
  auto* data = const_cast<std::byte*>(layout_.data);
  auto* hdr = reinterpret_cast<uint32_t*>(data + (prod_ & mask));
  __atomic_store_n(hdr, len | kRingBusyBit, __ATOMIC_RELAXED);
  hdr[1] = static_cast<uint32_t>(prod_ & mask);
  prod_ += total;
  store_release(const_cast<uint64_t*>(layout_.producer_pos), prod_);
  return reinterpret_cast<std::byte*>(hdr) + kRingHeaderSize;
}

void RingImage::submit(std::byte* payload) {
  auto* hdr = reinterpret_cast<uint32_t*>(payload - kRingHeaderSize);
  __atomic_fetch_and(hdr, ~kRingBusyBit, __ATOMIC_RELEASE);
}

void RingImage::discard(std::byte* payload) {
  auto* hdr = reinterpret_cast<uint32_t*>(payload - kRingHeaderSize);
  uint32_t w = __atomic_load_n(hdr, __ATOMIC_RELAXED);
  __atomic_store_n(hdr, (w & ~kRingBusyBit) | kRingDiscardBit, __ATOMIC_RELEASE);
}

bool RingImage::push(std::span<const std::byte> payload) {
  std::byte* p = reserve(static_cast<uint32_t>(payload.size()));
  if (!p) return false;
  if (!payload.empty()) std::memcpy(p, payload.data(), payload.size());
  submit(p);
  return true;
}

void RingImage::write_raw_header(uint32_t len_word, uint64_t advance) {
  const uint64_t mask = layout_.size - 1;
  auto* data = const_cast<std::byte*>(layout_.data);
  auto* hdr = reinterpret_cast<uint32_t*>(data + (prod_ & mask));
  __atomic_store_n(hdr, len_word, __ATOMIC_RELEASE);
  hdr[1] = 0;
  prod_ += advance;
  store_release(const_cast<uint64_t*>(layout_.producer_pos), prod_);
}

void RingImage::load_raw(uint64_t pos, std::span<const std::byte> bytes) {
  const uint64_t mask = layout_.size - 1;
  const size_t n = std::min(bytes.size(), layout_.size - kRingHeaderSize) & ~size_t{7};
  auto* data = const_cast<std::byte*>(layout_.data);
  // The second mapping takes what runs past the end.
  if (n) std::memcpy(data + (pos & mask), bytes.data(), n);
  store_release(layout_.consumer_pos, pos);
  prod_ = pos + n;
  store_release(const_cast<uint64_t*>(layout_.producer_pos), prod_);
}

}  // namespace retina::loader
