// The ring-buffer reader over a synthetic in-memory ring that follows the
// kernel's layout and producer protocol.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <cstring>
#include <random>
#include <vector>

#include "loader/ring_buffer.hpp"

using retina::loader::RingBuffer;
using retina::loader::RingImage;
using retina::loader::kRingBusyBit;
using retina::loader::kRingDiscardBit;

namespace {

const size_t kPage = static_cast<size_t>(::sysconf(_SC_PAGESIZE));

struct Collected {
  std::vector<std::vector<std::byte>> records;
};

void collect(void* user, std::span<const std::byte> rec) {
  static_cast<Collected*>(user)->records.emplace_back(rec.begin(), rec.end());
}

std::vector<std::byte> pattern(uint32_t seq, size_t len) {
  std::vector<std::byte> v(len);
  for (size_t i = 0; i < len; ++i) v[i] = static_cast<std::byte>((seq * 31 + i) & 0xff);
  return v;
}

std::unique_ptr<RingImage> image(size_t size) {
  auto img = RingImage::create(size);
  REQUIRE(img.has_value());
  return std::move(*img);
}

}  // namespace

TEST_CASE("ring buffer delivers records in order with their exact bytes", "[ring_buffer]") {
  auto img = image(kPage);
  auto rb = RingBuffer::over_memory("test", img->layout());
  for (uint32_t i = 0; i < 5; ++i) REQUIRE(img->push(pattern(i, 1 + i * 13)));
  Collected c;
  REQUIRE(rb->drain(collect, &c, 100) == 5);
  for (uint32_t i = 0; i < 5; ++i) CHECK(c.records[i] == pattern(i, 1 + i * 13));
  CHECK(img->consumer_pos() == img->producer_pos());
  CHECK(rb->pending_bytes() == 0);
  CHECK(rb->drain(collect, &c, 100) == 0);
  CHECK(rb->name() == "test");
}

TEST_CASE("ring buffer reads records that wrap around the end contiguously", "[ring_buffer]") {
  auto img = image(kPage);
  auto rb = RingBuffer::over_memory("test", img->layout());
  // Start 40 bytes before the end of the third lap.
  img->reset_positions(3 * kPage - 40);
  std::vector<std::vector<std::byte>> sent;
  for (uint32_t i = 0; i < 6; ++i) {
    sent.push_back(pattern(i, 100 + i));
    REQUIRE(img->push(sent.back()));
  }
  Collected c;
  REQUIRE(rb->drain(collect, &c, 100) == 6);
  CHECK(c.records == sent);
  CHECK(img->consumer_pos() > 3 * kPage);
}

TEST_CASE("ring buffer mapped once copies wrapping records whole", "[ring_buffer]") {
  auto img = image(kPage);
  auto layout = img->layout();
  layout.mapped_twice = false;  // as RingBuffer::open maps a kernel ring
  auto rb = RingBuffer::over_memory("test", layout);
  // Cases: a payload split mid-way, one starting exactly at the end (its
  // header in the last 8 bytes), and records that do not wrap.
  for (uint64_t start : {uint64_t{3} * kPage - 40, uint64_t{5} * kPage - 8, uint64_t{7} * kPage - 200}) {
    img->reset_positions(start);
    std::vector<std::vector<std::byte>> sent;
    for (uint32_t i = 0; i < 6; ++i) {
      sent.push_back(pattern(i + static_cast<uint32_t>(start), 100 + i));
      REQUIRE(img->push(sent.back()));
    }
    Collected c;
    REQUIRE(rb->drain(collect, &c, 100) == 6);
    CHECK(c.records == sent);
  }
}

TEST_CASE("ring buffer skips discarded records without counting them", "[ring_buffer]") {
  auto img = image(kPage);
  auto rb = RingBuffer::over_memory("test", img->layout());
  REQUIRE(img->push(pattern(1, 16)));
  std::byte* d = img->reserve(32);
  REQUIRE(d);
  img->discard(d);
  REQUIRE(img->push(pattern(2, 8)));
  Collected c;
  CHECK(rb->drain(collect, &c, 2) == 2);
  REQUIRE(c.records.size() == 2);
  CHECK(c.records[0] == pattern(1, 16));
  CHECK(c.records[1] == pattern(2, 8));
  CHECK(img->consumer_pos() == img->producer_pos());
}

TEST_CASE("ring buffer stops at a record still being written (busy bit)", "[ring_buffer]") {
  auto img = image(kPage);
  auto rb = RingBuffer::over_memory("test", img->layout());
  REQUIRE(img->push(pattern(1, 24)));
  std::byte* busy = img->reserve(24);
  REQUIRE(busy);
  std::memcpy(busy, pattern(2, 24).data(), 24);
  REQUIRE(img->push(pattern(3, 24)));

  Collected c;
  CHECK(rb->drain(collect, &c, 100) == 1);
  CHECK(rb->drain(collect, &c, 100) == 0);  // still busy: nothing behind it is read
  img->submit(busy);
  CHECK(rb->drain(collect, &c, 100) == 2);
  REQUIRE(c.records.size() == 3);
  CHECK(c.records[1] == pattern(2, 24));
  CHECK(c.records[2] == pattern(3, 24));
}

TEST_CASE("ring buffer drain is bounded so a flood cannot starve the caller", "[ring_buffer]") {
  auto img = image(4 * kPage);
  auto rb = RingBuffer::over_memory("test", img->layout());
  for (uint32_t i = 0; i < 100; ++i) REQUIRE(img->push(pattern(i, 40)));
  Collected c;
  CHECK(rb->drain(collect, &c, 10) == 10);
  CHECK(c.records.size() == 10);
  CHECK(rb->pending_bytes() == 90 * 48);  // 40 bytes + 8-byte header each
  size_t total = 10;
  while (size_t n = rb->drain(collect, &c, 10)) {
    CHECK(n <= 10);
    total += n;
  }
  CHECK(total == 100);
  for (uint32_t i = 0; i < 100; ++i) CHECK(c.records[i] == pattern(i, 40));
}

TEST_CASE("ring buffer producer refuses records when full until the consumer moves", "[ring_buffer]") {
  auto img = image(kPage);
  auto rb = RingBuffer::over_memory("test", img->layout());
  size_t pushed = 0;
  while (img->push(pattern(static_cast<uint32_t>(pushed), 56))) ++pushed;
  CHECK(pushed == (kPage - 1) / 64);
  Collected c;
  CHECK(rb->drain(collect, &c, 3) == 3);
  CHECK(img->push(pattern(999, 56)));
}

TEST_CASE("ring buffer positions cross 2^32 without trouble", "[ring_buffer]") {
  auto img = image(kPage);
  auto rb = RingBuffer::over_memory("test", img->layout());
  img->reset_positions((uint64_t{1} << 32) - 3 * 64);
  Collected c;
  for (uint32_t i = 0; i < 20; ++i) {
    REQUIRE(img->push(pattern(i, 50)));
    REQUIRE(rb->drain(collect, &c, 1) == 1);
  }
  CHECK(c.records.size() == 20);
  CHECK(c.records[19] == pattern(19, 50));
  CHECK(img->consumer_pos() > (uint64_t{1} << 32));
}

TEST_CASE("ring buffer stops at a corrupt header instead of reading past the ring", "[ring_buffer]") {
  auto img = image(kPage);
  auto rb = RingBuffer::over_memory("test", img->layout());
  REQUIRE(img->push(pattern(1, 8)));
  img->write_raw_header(static_cast<uint32_t>(kPage * 4), 64);  // longer than the ring
  Collected c;
  CHECK(rb->drain(collect, &c, 100) == 1);
  CHECK(rb->corrupt_records() == 1);
  CHECK(rb->drain(collect, &c, 100) == 0);
}

TEST_CASE("ring buffer record headers use the kernel's flag bits", "[ring_buffer]") {
  CHECK(kRingBusyBit == 0x80000000u);
  CHECK(kRingDiscardBit == 0x40000000u);
  CHECK_FALSE(RingImage::create(kPage + 1).has_value());
  CHECK_FALSE(RingImage::create(3 * kPage).has_value());
}

TEST_CASE("ring buffer survives random interleaving of producer and consumer", "[ring_buffer]") {
  auto img = image(2 * kPage);
  auto rb = RingBuffer::over_memory("test", img->layout());
  std::mt19937 rng(12345);
  uint32_t next_seq = 0, expect_seq = 0;
  struct State {
    uint32_t* expect;
    size_t bad = 0;
  } st{&expect_seq};
  auto check = [](void* user, std::span<const std::byte> rec) {
    auto* s = static_cast<State*>(user);
    uint32_t seq;
    if (rec.size() < sizeof seq) {
      ++s->bad;
      return;
    }
    std::memcpy(&seq, rec.data(), sizeof seq);
    if (seq != *s->expect || rec.size() != 4 + (seq % 200)) ++s->bad;
    ++*s->expect;
  };
  for (int round = 0; round < 20000; ++round) {
    if (rng() % 3) {
      std::vector<std::byte> rec(4 + next_seq % 200);
      std::memcpy(rec.data(), &next_seq, 4);
      if (rng() % 10 == 0) {
        std::byte* p = img->reserve(17);  // a discarded record between real ones
        if (p) img->discard(p);
      }
      if (img->push(rec)) ++next_seq;
    } else {
      rb->drain(check, &st, rng() % 8 + 1);
    }
  }
  while (rb->drain(check, &st, 64)) {
  }
  CHECK(st.bad == 0);
  CHECK(expect_seq == next_seq);
  CHECK(next_seq > 5000);
}
