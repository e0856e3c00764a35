// The flow store: a bounded ring of the node's most recent flows (Hubble's
// ring buffer, hubbleEventBufferCapacity entries), read by any number of
// followers.
//
// The store is a sink of the pipeline: the pipeline thread copies each
// flow into the next slot of a ring of fixed-size blocks (no allocation
// and no lock per flow; the slots' strings keep their capacity). Each
// block owns references to the endpoints its flows point to, one per
// distinct endpoint, so stored flows stay valid after the IP cache
// changes. The new flows are published once per batch (one release store
// of the head); waiting followers are woken at most once per kWakeEvery.
//
// Each follower reads by cursor (a sequence number) at its own pace. To
// read, it pins the block holding its cursor and checks that the block
// still holds it. The writer, before reusing a block, marks it invalid
// and looks for pins: a pinned block is set aside for its readers and a
// spare takes its place, so the pipeline never waits for a reader. A
// follower that falls more than the capacity behind finds its flows
// overwritten and is told how many it lost.
//
// Besides the capacity that history requests see, the ring keeps a
// slack of older flows for the store's own follower (the hubble_* metrics),
// so that metrics see bursts that outrun a small history.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "retina/pipeline.hpp"

namespace retina::hubble {

class FlowStore final : public FlowSink {
 public:
  static constexpr size_t kBlockFlows = 64;
  // The least the ring holds, whatever the capacity: the metrics follower's slack.
  static constexpr size_t kMinRingFlows = size_t{1} << 15;

  explicit FlowStore(size_t capacity);
  ~FlowStore() override;
  FlowStore(const FlowStore&) = delete;
  FlowStore& operator=(const FlowStore&) = delete;

  // Adds `self` to `pipeline` as a sink until detach(). `on_flow`, when
  // set, sees every flow on a follower thread of the store's own; the
  // flows it loses (it fell a whole ring behind) are counted in lost_by_observer().
  static void attach(const std::shared_ptr<FlowStore>& self, Pipeline& pipeline,
                     std::function<void(const Flow&)> on_flow = {});
  void detach() noexcept;
  uint64_t lost_by_observer() const noexcept { return observer_lost_.load(std::memory_order_relaxed); }
  // Sequence number up to which `on_flow` has seen (or lost) every flow.
  uint64_t observed() const noexcept { return observed_.load(std::memory_order_acquire); }

  // ---- the writer: the pipeline thread (or a test), one at a time ----
  bool keeps_flows() const noexcept override { return true; }
  void on_kept_flow(const Flow& flow, const EndpointPtr* source, const EndpointPtr* destination) noexcept override;
  // Copies the flow's endpoints (for flows whose endpoints nobody owns).
  void on_flow(const Flow& flow) noexcept override;
  // Publishes the flows written since the last call and wakes waiting
  // followers, at most once per kWakeEvery: waking n threads costs the
  // pipeline thread microseconds each, too much per batch under load. A
  // wake put off is made at a later batch end or idle call.
  void on_batch_end() noexcept override;
  void on_idle() noexcept override { wake_if_owed(); }
  static constexpr std::chrono::milliseconds kWakeEvery{2};

  // ---- readers: any thread ----
  size_t capacity() const noexcept { return capacity_; }
  // Sequence number the next published flow gets.
  uint64_t head() const noexcept { return head_.load(std::memory_order_acquire); }
  // Flows [oldest(), head()) are stored (at most capacity()).
  uint64_t oldest() const noexcept { return oldest(head(), capacity_); }
  size_t size() const noexcept {
    const uint64_t h = head();
    return static_cast<size_t>(h - oldest(h, capacity_));
  }
  // Flows published since the store started (Hubble's seen_flows).
  uint64_t seen() const noexcept { return head(); }

  // Calls fn(seq, flow) for the stored flows from *cursor up to `end`, at
  // most `max` of them, advancing the cursor past each flow fn accepts
  // (returns true); a false return stops the read at that flow. fn runs
  // while the flow's block is pinned: it must not block (copy or encode
  // what it needs). Returns how many flows from the cursor on had been
  // overwritten before they could be read (0 normally); the cursor skips them.
  template <class Fn>
  uint64_t read(uint64_t* cursor, uint64_t end, size_t max, Fn&& fn) const {
    return read_impl(cursor, end, max, capacity_, fn);
  }

  // Waits until a flow at or after `cursor` is published, `timeout` passes
  // or the store closes. Returns whether one exists.
  bool wait(uint64_t cursor, std::chrono::milliseconds timeout) const;
  // Wakes every waiter for good (shutdown).
  void close() noexcept;
  bool closed() const noexcept { return closed_.load(std::memory_order_acquire); }

  // Blocks the ring holds now, for tests: the ring's, spares and set-aside ones.
  size_t blocks_allocated() const noexcept { return allocated_.load(std::memory_order_relaxed); }

 private:
  static constexpr uint64_t kNone = ~uint64_t{0};
  // Readers and the writer work on neighbouring data at the same time: what
  // one side writes often sits on cache lines of its own (no false sharing).
  static constexpr size_t kLine = 64;
  struct alignas(kLine) Slot {
    Flow flow;  // source and destination: held by the block's refs
    DnsInfo dns;
    std::string drop_reason_desc;
  };
  struct Block {
    Block() { refs.reserve(2 * kBlockFlows); }
    // Written by readers (pins) with each read.
    alignas(kLine) std::atomic<uint64_t> first{kNone};  // sequence number of slot 0; kNone while unused or rewritten
    mutable std::atomic<uint32_t> pins{0};
    // Read by the writer with each flow.
    alignas(kLine) std::unique_ptr<Slot[]> slots{new Slot[kBlockFlows]};
    // The endpoints the slots point to, one reference per distinct
    // endpoint (mostly): flows share endpoints, and a reference count per
    // flow would be two atomic operations more per flow.
    std::vector<EndpointPtr> refs;
  };
  // Entries of the writer's memo of endpoints the current block holds.
  static constexpr size_t kMemo = 16;

  uint64_t oldest(uint64_t head, size_t keep) const noexcept {
    const uint64_t by_size = head > keep ? head - keep : 0;
    const uint64_t held = low_.load(std::memory_order_seq_cst);
    return by_size > held ? by_size : held;
  }
  // The block holding `seq`, pinned, or null if it no longer holds it.
  const Block* pin(uint64_t seq) const noexcept;
  static void unpin(const Block* b) noexcept { b->pins.fetch_sub(1, std::memory_order_release); }

  template <class Fn>
  uint64_t read_impl(uint64_t* cursor, uint64_t end, size_t max, size_t keep, Fn& fn) const {
    uint64_t lost = 0;
    size_t n = 0;
    while (n < max) {
      const uint64_t h = head();
      const uint64_t first = oldest(h, keep);
      if (*cursor < first) {
        lost += first - *cursor;
        *cursor = first;
      }
      const uint64_t stop = h < end ? h : end;
      if (*cursor >= stop) break;
      const Block* b = pin(*cursor);
      if (!b) continue;  // rewritten since `h` was read: oldest() has moved past the cursor
      const uint64_t block_end = (*cursor / kBlockFlows + 1) * kBlockFlows;
      bool more = true;
      for (; *cursor < stop && *cursor < block_end && n < max; ++*cursor, ++n)
        if (!(more = fn(*cursor, b->slots[*cursor % kBlockFlows].flow))) break;
      unpin(b);
      if (!more) break;
    }
    return lost;
  }

  Slot& next_slot() noexcept;
  void wake_if_owed() noexcept;
  // The endpoint a stored flow points to: `raw`, held by the current block.
  const Endpoint* keep(const Endpoint* raw, const EndpointPtr* owner) noexcept;
  void start_block() noexcept;
  Block* new_block();
  void observe_run(uint64_t cursor);

  const size_t capacity_;
  const size_t ring_flows_;  // the ring's size: capacity and slack, whole blocks
  std::vector<std::atomic<Block*>> ring_;
  std::vector<std::unique_ptr<Block>> owned_;  // every block, for the destructor
  std::atomic<size_t> allocated_{0};

  // ---- writer state ----
  alignas(kLine) uint64_t written_ = 0;  // flows written, published or not
  Block* current_ = nullptr;
  std::array<const Endpoint*, kMemo> memo_{};  // cleared with each block
  uint64_t woken_ = 0;                         // head as of the last wake (or of no waiters)
  std::chrono::steady_clock::time_point last_wake_{};
  std::vector<Block*> spares_, set_aside_;

  // Read by every reader all the time, written once per batch or block.
  alignas(kLine) std::atomic<uint64_t> head_{0};
  std::atomic<uint64_t> low_{0};  // first sequence number the ring still holds

  alignas(kLine) mutable std::mutex wait_mu_;
  mutable std::condition_variable wait_cv_;
  mutable std::atomic<uint32_t> waiters_{0};
  std::atomic<bool> closed_{false};

  // The store's own follower (hubble_* metrics).
  Pipeline* pipeline_ = nullptr;
  uint64_t sink_id_ = 0;
  std::function<void(const Flow&)> on_flow_;
  std::thread observer_;
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> observer_lost_{0};
  std::atomic<uint64_t> observed_{0};
};

}  // namespace retina::hubble
