#include "pipeline/subscription.hpp"

#include <algorithm>
#include <iterator>
#include <thread>

#include "retina/metrics/registry.hpp"

namespace retina::pipeline {

namespace {
// Blocks are allocated as the queue fills; start small so that a large,
// mostly idle subscriber costs little.
constexpr size_t kInitialSlots = 256;
}  // namespace

SubscriptionState::SubscriptionState(std::string name, size_t capacity, FlowFilter filter,
                                     metrics::Counter* lost)
    : name_(std::move(name)),
      capacity_(std::max<size_t>(capacity, 1)),
      filter_(std::move(filter)),
      lost_(lost),
      queue_(std::min(capacity_, kInitialSlots)),
      producer_(queue_),
      consumer_(queue_) {}

void SubscriptionState::push(OwnedFlow&& flow) {
  // Counted before it is queued, so a consumer never takes the count
  // below zero; it may briefly see a count ahead of the queue.
  size_.fetch_add(1, std::memory_order_seq_cst);
  if (!queue_.enqueue(producer_, std::move(flow))) {  // out of memory for a new block
    size_.fetch_sub(1, std::memory_order_relaxed);
    drop();
    return;
  }
  delivered_.fetch_add(1, std::memory_order_relaxed);
  // seq_cst pairs with the consumer's store to waiting_ (see pop_batch).
  if (waiting_.load(std::memory_order_seq_cst)) {
    std::lock_guard lock(wait_mu_);
    wait_cv_.notify_one();
  }
}

void SubscriptionState::drop() noexcept {
  dropped_.fetch_add(1, std::memory_order_relaxed);
  if (lost_) lost_->add();
}

bool SubscriptionState::try_pop(OwnedFlow& out) {
  std::lock_guard lock(consumer_mu_);
  if (!queue_.try_dequeue(consumer_, out)) return false;
  size_.fetch_sub(1, std::memory_order_release);
  return true;
}

size_t SubscriptionState::drain(std::vector<OwnedFlow>& out, size_t max) {
  const size_t n = queue_.try_dequeue_bulk(consumer_, std::back_inserter(out), max);
  if (n) size_.fetch_sub(n, std::memory_order_release);
  return n;
}

size_t SubscriptionState::pop_batch(std::vector<OwnedFlow>& out, size_t max, std::chrono::milliseconds wait) {
  if (max == 0) return 0;
  std::lock_guard consumer_lock(consumer_mu_);
  if (size_t n = drain(out, max)) return n;
  if (wait.count() <= 0) return 0;

  const auto deadline = std::chrono::steady_clock::now() + wait;
  std::unique_lock lock(wait_mu_);
  size_t n = 0;
  for (;;) {
    // Announce the wait, then look again: either the producer sees
    // waiting_ and notifies under wait_mu_, or this look sees its flow.
    waiting_.store(true, std::memory_order_seq_cst);
    if ((n = drain(out, max)) != 0 || closed()) break;
    if (size_.load(std::memory_order_seq_cst) != 0) {
      // Counted but not yet visible in the queue: an enqueue in flight.
      lock.unlock();
      std::this_thread::yield();
      lock.lock();
      continue;
    }
    if (wait_cv_.wait_until(lock, deadline) == std::cv_status::timeout) {
      n = drain(out, max);
      break;
    }
  }
  waiting_.store(false, std::memory_order_relaxed);
  return n;
}

void SubscriptionState::close() {
  closed_.store(true, std::memory_order_release);
  std::lock_guard lock(wait_mu_);
  wait_cv_.notify_all();
}

}  // namespace retina::pipeline
