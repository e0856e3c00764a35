// A subscriber's bounded queue. One producer (the pipeline thread) offers
// flows; consumers pop them (serialized among themselves). The queue is a
// moodycamel::ConcurrentQueue fed through one producer token, so it keeps
// FIFO order and reuses its blocks; the bound is kept exactly by a size
// counter, so a full queue drops the flow and counts it.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <concurrentqueue/concurrentqueue.h>

#include "retina/pipeline.hpp"

namespace retina::metrics {
class Counter;
}

namespace retina::pipeline {

class SubscriptionState {
 public:
  SubscriptionState(std::string name, size_t capacity, FlowFilter filter, metrics::Counter* lost);

  const std::string& name() const { return name_; }
  const FlowFilter& filter() const { return filter_; }

  // ---- producer ----
  // True when a flow offered now would be accepted.
  bool has_room() const noexcept { return size_.load(std::memory_order_acquire) < capacity_; }
  // Queues a flow; call only after has_room() returned true.
  void push(OwnedFlow&& flow);
  // Counts a flow that did not fit.
  void drop() noexcept;

  // ---- consumers ----
  bool try_pop(OwnedFlow& out);
  size_t pop_batch(std::vector<OwnedFlow>& out, size_t max, std::chrono::milliseconds wait);

  void close();
  bool closed() const noexcept { return closed_.load(std::memory_order_acquire); }
  uint64_t dropped() const noexcept { return dropped_.load(std::memory_order_relaxed); }
  uint64_t delivered() const noexcept { return delivered_.load(std::memory_order_relaxed); }
  size_t queued() const noexcept { return size_.load(std::memory_order_relaxed); }

 private:
  size_t drain(std::vector<OwnedFlow>& out, size_t max);

  const std::string name_;
  const size_t capacity_;
  const FlowFilter filter_;
  metrics::Counter* const lost_;

  moodycamel::ConcurrentQueue<OwnedFlow> queue_;
  moodycamel::ProducerToken producer_;
  std::atomic<size_t> size_{0};
  std::atomic<uint64_t> dropped_{0};
  std::atomic<uint64_t> delivered_{0};
  std::atomic<bool> closed_{false};

  // Waking a consumer blocked in pop_batch(); the producer only touches
  // the mutex when a consumer announced that it waits.
  std::atomic<bool> waiting_{false};
  std::mutex wait_mu_;
  std::condition_variable wait_cv_;

  std::mutex consumer_mu_;  // serializes consumers
  moodycamel::ConsumerToken consumer_;
};

// What subscribe() hands out: closes the subscription when the last user
// reference goes away, so a forgotten subscriber stops costing anything.
class SubscriptionHandle final : public Subscription {
 public:
  explicit SubscriptionHandle(std::shared_ptr<SubscriptionState> s) : s_(std::move(s)) {}
  ~SubscriptionHandle() override { s_->close(); }

  std::string_view name() const override { return s_->name(); }
  bool try_pop(OwnedFlow& out) override { return s_->try_pop(out); }
  size_t pop_batch(std::vector<OwnedFlow>& out, size_t max, std::chrono::milliseconds wait) override {
    return s_->pop_batch(out, max, wait);
  }
  uint64_t dropped() const override { return s_->dropped(); }
  uint64_t delivered() const override { return s_->delivered(); }
  size_t queued() const override { return s_->queued(); }
  void close() override { s_->close(); }
  bool closed() const override { return s_->closed(); }

 private:
  std::shared_ptr<SubscriptionState> s_;
};

}  // namespace retina::pipeline
