// Counts heap allocations in the bench binary (a replacement global
// operator new/delete), so benchmarks can report allocations and bytes per
// event next to their timings.
#pragma once

#include <benchmark/benchmark.h>

#include <cstdint>

namespace retina::bench {

struct AllocCounts {
  uint64_t allocations = 0;
  uint64_t bytes = 0;
};

// Totals since the program started, over all threads.
AllocCounts alloc_counts() noexcept;

// Measures allocations inside a benchmark loop, from the start of the
// first iteration to the end of the last, so the framework's own work
// before and after the loop is left out:
//   for (auto _ : state) { w.begin(); ...; w.end(); }
//   w.report(state, events);
class AllocWindow {
 public:
  void begin() noexcept {
    if (!started_) {
      start_ = alloc_counts();
      started_ = true;
    }
  }
  void end() noexcept { end_ = alloc_counts(); }
  // Sets the "allocs/event" and "alloc_bytes/event" counters.
  void report(benchmark::State& state, int64_t events) const {
    const double n = events > 0 ? static_cast<double>(events) : 1.0;
    state.counters["allocs/event"] = static_cast<double>(end_.allocations - start_.allocations) / n;
    state.counters["alloc_bytes/event"] = static_cast<double>(end_.bytes - start_.bytes) / n;
  }

 private:
  bool started_ = false;
  AllocCounts start_, end_;
};

// "ns/event" as a rate counter, inverted: seconds per event, printed in ns.
inline void report_per_event(benchmark::State& state, int64_t events) {
  state.SetItemsProcessed(events);
  state.counters["time/event"] =
      benchmark::Counter(static_cast<double>(events), benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}

}  // namespace retina::bench
