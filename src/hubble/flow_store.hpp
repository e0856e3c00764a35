// The flow store: a bounded ring of the node's most recent flows (Hubble's
// ring buffer, hubbleEventBufferCapacity entries), read by any number of
// followers.
//
// The pipeline hands flows to the store through one subscription; a store
// thread appends them, each flow once, as an immutable shared object. Each
// reader keeps its own cursor (a sequence number) and takes references to
// the flows under a shared lock (a reference count each, not a copy of the
// flow), so readers never wait for each other, the pipeline never waits
// for a reader, and any number of readers cost the store nothing per flow. A reader that falls a
// whole ring behind loses the overwritten flows and is told how many.
#pragma once

#include <pthread.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <thread>
#include <vector>

#include "retina/pipeline.hpp"

namespace retina::hubble {

// A reader-writer lock that lets a waiting writer in before new readers:
// with many followers reading back to back, glibc's default rwlock (which
// prefers readers) could keep the store thread out indefinitely.
class WriterFirstLock {
 public:
  WriterFirstLock();
  ~WriterFirstLock();
  WriterFirstLock(const WriterFirstLock&) = delete;
  WriterFirstLock& operator=(const WriterFirstLock&) = delete;
  void lock() { pthread_rwlock_wrlock(&rw_); }
  void unlock() { pthread_rwlock_unlock(&rw_); }
  void lock_shared() { pthread_rwlock_rdlock(&rw_); }
  void unlock_shared() { pthread_rwlock_unlock(&rw_); }

 private:
  pthread_rwlock_t rw_;
};

using SharedFlow = std::shared_ptr<const OwnedFlow>;

struct StoredFlow {
  uint64_t seq = 0;
  SharedFlow flow;
};

class FlowStore {
 public:
  explicit FlowStore(size_t capacity);
  ~FlowStore();  // detaches
  FlowStore(const FlowStore&) = delete;
  FlowStore& operator=(const FlowStore&) = delete;

  // Subscribes to `pipeline` (subscriber name "hubble", whose drops the
  // pipeline counts) and appends from a thread of its own until detach().
  // `on_flow`, when set, sees every flow first, on that thread.
  void attach(Pipeline& pipeline, size_t intake_capacity = 1 << 16,
              std::function<void(const Flow&)> on_flow = {});
  void detach() noexcept;
  // Flows the intake queue dropped because the store thread fell behind.
  uint64_t intake_dropped() const noexcept { return sub_ ? sub_->dropped() : 0; }

  // Appends flows (the store thread, or tests and benchmarks directly).
  void append(std::vector<OwnedFlow>& flows);

  size_t capacity() const noexcept { return slots_.size(); }
  // Sequence number the next flow gets; flows [oldest(), head()) are stored.
  uint64_t head() const noexcept { return head_.load(std::memory_order_acquire); }
  uint64_t oldest() const noexcept;
  size_t size() const noexcept { return static_cast<size_t>(head() - oldest()); }
  // Flows appended since the store started (Hubble's seen_flows).
  uint64_t seen() const noexcept { return head(); }

  // Appends up to `max` flows from `*cursor` on to `out` and
  // advances the cursor. Returns how many flows between the cursor and the
  // oldest stored flow were overwritten before this read (0 normally).
  uint64_t read(uint64_t* cursor, std::vector<StoredFlow>& out, size_t max) const;
  // Appends flows [from, to) that are still stored, newest last.
  void read_range(uint64_t from, uint64_t to, std::vector<StoredFlow>& out) const;

  // Waits until a flow at or after `cursor` exists, `timeout` passes or the
  // store closes. Returns whether one exists.
  bool wait(uint64_t cursor, std::chrono::milliseconds timeout) const;
  // Wakes every waiter for good (shutdown).
  void close() noexcept;
  bool closed() const noexcept { return closed_.load(std::memory_order_acquire); }

 private:
  void run();

  std::vector<SharedFlow> slots_;
  std::vector<SharedFlow> incoming_;  // append()'s scratch
  mutable WriterFirstLock ring_mu_;
  std::atomic<uint64_t> head_{0};

  mutable std::mutex wait_mu_;
  mutable std::condition_variable wait_cv_;
  std::atomic<bool> closed_{false};

  std::shared_ptr<Subscription> sub_;
  std::function<void(const Flow&)> on_flow_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
};

}  // namespace retina::hubble
