#include "hubble/flow_store.hpp"

#include <algorithm>

namespace retina::hubble {

WriterFirstLock::WriterFirstLock() {
  pthread_rwlockattr_t attr;
  pthread_rwlockattr_init(&attr);
  pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
  pthread_rwlock_init(&rw_, &attr);
  pthread_rwlockattr_destroy(&attr);
}

WriterFirstLock::~WriterFirstLock() { pthread_rwlock_destroy(&rw_); }

FlowStore::FlowStore(size_t capacity) : slots_(std::max<size_t>(capacity, 1)) {}

FlowStore::~FlowStore() { detach(); }

void FlowStore::attach(Pipeline& pipeline, size_t intake_capacity, std::function<void(const Flow&)> on_flow) {
  detach();
  stop_.store(false);
  on_flow_ = std::move(on_flow);
  sub_ = pipeline.subscribe("hubble", intake_capacity);
  thread_ = std::thread([this] { run(); });
}

void FlowStore::detach() noexcept {
  stop_.store(true);
  if (sub_) sub_->close();
  if (thread_.joinable()) thread_.join();
  sub_.reset();
}

void FlowStore::run() {
  std::vector<OwnedFlow> batch;
  batch.reserve(1024);
  while (!stop_.load(std::memory_order_acquire)) {
    batch.clear();
    if (sub_->pop_batch(batch, 1024, std::chrono::milliseconds(100)) == 0) {
      if (sub_->closed()) break;
      continue;
    }
    if (on_flow_)
      for (const auto& f : batch) on_flow_(f.flow());
    append(batch);
  }
}

void FlowStore::append(std::vector<OwnedFlow>& flows) {
  if (flows.empty()) return;
  // Allocated before the lock; the flows they replace are released after it.
  incoming_.clear();
  for (auto& f : flows) incoming_.push_back(std::make_shared<const OwnedFlow>(std::move(f)));
  {
    std::unique_lock lock(ring_mu_);
    uint64_t h = head_.load(std::memory_order_relaxed);
    for (auto& f : incoming_) slots_[h++ % slots_.size()].swap(f);
    head_.store(h, std::memory_order_release);
  }
  incoming_.clear();
  // Taking the mutex orders the head update before a waiter's check.
  { std::lock_guard lock(wait_mu_); }
  wait_cv_.notify_all();
}

uint64_t FlowStore::oldest() const noexcept {
  const uint64_t h = head();
  return h > slots_.size() ? h - slots_.size() : 0;
}

uint64_t FlowStore::read(uint64_t* cursor, std::vector<StoredFlow>& out, size_t max) const {
  std::shared_lock lock(ring_mu_);
  const uint64_t h = head_.load(std::memory_order_acquire);
  const uint64_t first = h > slots_.size() ? h - slots_.size() : 0;
  uint64_t lost = 0;
  if (*cursor < first) {
    lost = first - *cursor;
    *cursor = first;
  }
  const uint64_t end = std::min<uint64_t>(h, *cursor + max);
  for (uint64_t s = *cursor; s < end; ++s) out.push_back({s, slots_[s % slots_.size()]});
  *cursor = end;
  return lost;
}

void FlowStore::read_range(uint64_t from, uint64_t to, std::vector<StoredFlow>& out) const {
  std::shared_lock lock(ring_mu_);
  const uint64_t h = head_.load(std::memory_order_acquire);
  const uint64_t first = h > slots_.size() ? h - slots_.size() : 0;
  from = std::max(from, first);
  to = std::min(to, h);
  for (uint64_t s = from; s < to; ++s) out.push_back({s, slots_[s % slots_.size()]});
}

bool FlowStore::wait(uint64_t cursor, std::chrono::milliseconds timeout) const {
  std::unique_lock lock(wait_mu_);
  wait_cv_.wait_for(lock, timeout, [&] { return head() > cursor || closed(); });
  return head() > cursor;
}

void FlowStore::close() noexcept {
  {
    std::lock_guard lock(wait_mu_);
    closed_.store(true, std::memory_order_release);
  }
  wait_cv_.notify_all();
}

}  // namespace retina::hubble
