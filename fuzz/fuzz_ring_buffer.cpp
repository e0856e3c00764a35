// The ring-buffer reader over arbitrary ring contents: it stops at bad
// headers and never reads outside the ring.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <span>

#include "loader/ring_buffer.hpp"

namespace {

void count(void* user, std::span<const std::byte> rec) {
  auto* n = static_cast<size_t*>(user);
  // Touch every byte so a bad span shows up under ASan.
  uint8_t x = 0;
  for (std::byte b : rec) x ^= static_cast<uint8_t>(b);
  *n += 1 + (x & 0);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static std::unique_ptr<retina::loader::RingImage> img = [] {
    auto r = retina::loader::RingImage::create(4096);
    return r ? std::move(*r) : nullptr;
  }();
  if (!img || size < 8) return 0;
  uint64_t pos;
  std::memcpy(&pos, data, sizeof pos);
  img->load_raw(pos, std::as_bytes(std::span<const uint8_t>(data + 8, size - 8)));
  // Both reader modes: data mapped twice (contiguous wraps) and once (copies).
  auto layout = img->layout();
  layout.mapped_twice = (pos >> 63) != 0;
  auto rb = retina::loader::RingBuffer::over_memory("fuzz", layout);
  size_t n = 0;
  for (int i = 0; i < 8 && rb->drain(count, &n, 64) > 0; ++i) {
  }
  return 0;
}
