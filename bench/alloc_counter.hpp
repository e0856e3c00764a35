// Counts heap allocations in the bench binary (a replacement global
// operator new/delete), so benchmarks can report allocations and bytes per
// event next to their timings.
#pragma once

#include <benchmark/benchmark.h>

#include <ctime>

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
// CPU time the calling thread has used, in seconds.
inline double thread_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

// The events per second the calling thread's own CPU time allows, for
// benchmarks timed in real time while other threads share the cores.
inline void report_thread_cpu(benchmark::State& state, int64_t events, double cpu_seconds) {
  state.counters["cpu_Mev/s"] = cpu_seconds > 0 ? static_cast<double>(events) / 1e6 / cpu_seconds : 0;
  state.counters["cpu_ns/event"] = events > 0 ? cpu_seconds * 1e9 / static_cast<double>(events) : 0;
}

inline void report_per_event(benchmark::State& state, int64_t events) {
  state.SetItemsProcessed(events);
  state.counters["time/event"] =
      benchmark::Counter(static_cast<double>(events), benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}

}  // namespace retina::bench
