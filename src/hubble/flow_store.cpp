#include "hubble/flow_store.hpp"

#include <algorithm>

namespace retina::hubble {

namespace {

size_t ring_flows_for(size_t capacity) {
  const size_t flows = std::max(capacity, FlowStore::kMinRingFlows);
  // Whole blocks, plus one: the block being rewritten never holds one of
  // the last `capacity` published flows.
  return ((flows + FlowStore::kBlockFlows - 1) / FlowStore::kBlockFlows + 1) * FlowStore::kBlockFlows;
}

}  // namespace

FlowStore::FlowStore(size_t capacity)
    : capacity_(std::max<size_t>(capacity, 1)),
      ring_flows_(ring_flows_for(capacity_)),
      ring_(ring_flows_ / kBlockFlows) {
  for (auto& pos : ring_) pos.store(new_block(), std::memory_order_relaxed);
}

FlowStore::~FlowStore() { detach(); }

FlowStore::Block* FlowStore::new_block() {
  owned_.push_back(std::make_unique<Block>());
  allocated_.store(owned_.size(), std::memory_order_relaxed);
  return owned_.back().get();
}

void FlowStore::attach(const std::shared_ptr<FlowStore>& self, Pipeline& pipeline,
                       std::function<void(const Flow&)> on_flow) {
  self->detach();
  self->stop_.store(false);
  self->on_flow_ = std::move(on_flow);
  // The follower starts at the head as of now, not as of when its thread runs.
  const uint64_t from = self->head();
  self->observed_.store(from, std::memory_order_relaxed);
  if (self->on_flow_) self->observer_ = std::thread([s = self.get(), from] { s->observe_run(from); });
  self->pipeline_ = &pipeline;
  // The pipeline holds the store until the batch it was last part of ends.
  self->sink_id_ = pipeline.add_sink(self);
}

void FlowStore::detach() noexcept {
  if (pipeline_) {
    pipeline_->remove_sink(sink_id_);
    pipeline_ = nullptr;
    sink_id_ = 0;
  }
  stop_.store(true);
  {
    std::lock_guard lock(wait_mu_);
  }
  wait_cv_.notify_all();
  if (observer_.joinable()) observer_.join();
}

void FlowStore::observe_run(uint64_t cursor) {
  auto each = [this](uint64_t, const Flow& f) {
    on_flow_(f);
    return true;
  };
  while (!stop_.load(std::memory_order_acquire)) {
    if (const uint64_t lost = read_impl(&cursor, kNone, 1024, ring_flows_ - kBlockFlows, each))
      observer_lost_.fetch_add(lost, std::memory_order_relaxed);
    observed_.store(cursor, std::memory_order_release);
    if (cursor >= head()) wait(cursor, std::chrono::milliseconds(100));
  }
}

// ---- writer ----

void FlowStore::start_block() noexcept {
  const uint64_t number = written_ / kBlockFlows;
  std::atomic<Block*>& pos = ring_[number % ring_.size()];
  Block* b = pos.load(std::memory_order_relaxed);
  if (const uint64_t old = b->first.load(std::memory_order_relaxed); old != kNone) {
    // Readers learn that the block's flows are gone before it changes.
    low_.store(old + kBlockFlows, std::memory_order_seq_cst);
    b->first.store(kNone, std::memory_order_seq_cst);
    // A reader pins, then checks `first`; the writer marks, then checks
    // pins: one of the two sees the other.
    if (b->pins.load(std::memory_order_seq_cst) != 0) {
      // A reader is inside: it keeps the block, a spare takes its place.
      // Set-aside blocks are invalid, so once unpinned nobody pins them again.
      std::erase_if(set_aside_, [this](Block* x) {
        if (x->pins.load(std::memory_order_acquire) != 0) return false;
        spares_.push_back(x);
        return true;
      });
      Block* fresh = nullptr;
      if (!spares_.empty()) {
        fresh = spares_.back();
        spares_.pop_back();
      } else {
        try {
          fresh = new_block();
        } catch (...) {
        }
      }
      if (fresh) {
        set_aside_.push_back(b);
        b = fresh;
        pos.store(b, std::memory_order_release);
      } else {
        // Out of memory: wait for the reader, which holds a pin for one
        // block's worth of flows and never across a wait.
        while (b->pins.load(std::memory_order_acquire) != 0) std::this_thread::yield();
      }
    }
  }
  // Nobody reads the block now: its old endpoints can go.
  b->refs.clear();
  memo_.fill(nullptr);
  b->first.store(number * kBlockFlows, std::memory_order_release);
  current_ = b;
}

FlowStore::Slot& FlowStore::next_slot() noexcept {
  if (written_ % kBlockFlows == 0) start_block();
  return current_->slots[written_++ % kBlockFlows];
}

const Endpoint* FlowStore::keep(const Endpoint* raw, const EndpointPtr* owner) noexcept {
  if (!raw) return nullptr;
  auto& refs = current_->refs;
  if (owner) {
    const auto bits = reinterpret_cast<uintptr_t>(raw);
    const size_t i = ((bits >> 4) ^ (bits >> 12)) % kMemo;
    // Two ways: a flow's source and destination that hash alike do not
    // evict each other (that took two references for every flow).
    const Endpoint*& first = memo_[i];
    const Endpoint*& second = memo_[(i + 1) % kMemo];
    if (first == raw || second == raw) return raw;  // this block already holds it
    (first ? second : first) = raw;
    // Within the reserve (two per slot): no allocation.
    refs.push_back(*owner);
    return raw;
  }
  // Nobody owns it: the block keeps a copy.
  try {
    refs.push_back(std::make_shared<const Endpoint>(*raw));
    return refs.back().get();
  } catch (...) {
    return nullptr;
  }
}

void FlowStore::on_kept_flow(const Flow& f, const EndpointPtr* source, const EndpointPtr* destination) noexcept {
  Slot& s = next_slot();
  s.flow = f;
  s.flow.source = keep(f.source, source);
  s.flow.destination = keep(f.destination, destination);
  if (f.dns) {
    // Assigned member by member: the strings and vector keep their capacity.
    s.dns.query.assign(f.dns->query);
    s.dns.ips.assign(f.dns->ips.begin(), f.dns->ips.end());
    s.dns.id = f.dns->id;
    s.dns.qtype = f.dns->qtype;
    s.dns.rcode = f.dns->rcode;
    s.dns.answer_count = f.dns->answer_count;
    s.dns.is_response = f.dns->is_response;
    s.flow.dns = &s.dns;
  }
  if (!f.drop_reason_desc.empty()) {
    s.drop_reason_desc.assign(f.drop_reason_desc.data(), f.drop_reason_desc.size());
    s.flow.drop_reason_desc = s.drop_reason_desc;
  }
}

void FlowStore::on_flow(const Flow& f) noexcept { on_kept_flow(f, nullptr, nullptr); }

void FlowStore::on_batch_end() noexcept {
  if (written_ != head_.load(std::memory_order_relaxed)) head_.store(written_, std::memory_order_seq_cst);
  wake_if_owed();
}

void FlowStore::wake_if_owed() noexcept {
  const uint64_t head = head_.load(std::memory_order_relaxed);
  if (woken_ == head) return;
  // A waiter counts itself, then checks the head under the lock: with no
  // waiter counted now, any later one sees this head.
  if (waiters_.load(std::memory_order_seq_cst) == 0) {
    woken_ = head;
    return;
  }
  const auto now = std::chrono::steady_clock::now();
  if (now - last_wake_ < kWakeEvery) return;
  last_wake_ = now;
  woken_ = head;
  { std::lock_guard lock(wait_mu_); }
  wait_cv_.notify_all();
}

// ---- readers ----

const FlowStore::Block* FlowStore::pin(uint64_t seq) const noexcept {
  const uint64_t number = seq / kBlockFlows;
  const Block* b = ring_[number % ring_.size()].load(std::memory_order_acquire);
  b->pins.fetch_add(1, std::memory_order_seq_cst);
  if (b->first.load(std::memory_order_seq_cst) == number * kBlockFlows) return b;
  unpin(b);
  return nullptr;
}

bool FlowStore::wait(uint64_t cursor, std::chrono::milliseconds timeout) const {
  std::unique_lock lock(wait_mu_);
  waiters_.fetch_add(1, std::memory_order_seq_cst);
  wait_cv_.wait_for(lock, timeout, [&] {
    return head() > cursor || closed() || stop_.load(std::memory_order_relaxed);
  });
  waiters_.fetch_sub(1, std::memory_order_relaxed);
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
