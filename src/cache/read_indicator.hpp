// Read indicator for the left-right IpCache: counts readers inside a read
// section of one version. Striped over cache lines so that reader threads
// do not bounce one line between cores; a reader arrives and departs on the
// same stripe, so each stripe alone returns to zero.
#pragma once

#include <pthread.h>

#include <atomic>
#include <cstdint>

namespace retina::cache {

class ReadIndicator {
 public:
  static constexpr unsigned kStripes = 16;

  // Stripe for the calling thread: a hash of its thread descriptor address,
  // which costs no thread_local access (PIC code would pay __tls_get_addr).
  static unsigned stripe_of_this_thread() noexcept {
    auto id = static_cast<uint64_t>(reinterpret_cast<uintptr_t>(pthread_self()));
    return static_cast<unsigned>((id * 0x9E3779B97F4A7C15ull) >> 60) & (kStripes - 1);
  }

  // seq_cst: the writer must see this increment before the reader loads the
  // left-right switch (a store-load order only a full fence guarantees).
  void arrive(unsigned stripe) noexcept { slots_[stripe].n.fetch_add(1, std::memory_order_seq_cst); }
  // release: the reader's loads from the index happen before the writer,
  // which observes zero with acquire, touches that copy again.
  void depart(unsigned stripe) noexcept { slots_[stripe].n.fetch_sub(1, std::memory_order_release); }

  bool empty() const noexcept {
    for (const auto& s : slots_)
      if (s.n.load(std::memory_order_acquire) != 0) return false;
    return true;
  }

 private:
  struct alignas(64) Slot {
    std::atomic<int64_t> n{0};
  };
  Slot slots_[kStripes];
};

}  // namespace retina::cache
