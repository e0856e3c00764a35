// The producer path: decode + enrich (IpCache with 10k/100k endpoints) +
// dispatch to an inline sink, in batches of 256 records as the engine's
// ring-buffer reader hands them over.
#include <benchmark/benchmark.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "alloc_counter.hpp"
#include "bench_records.hpp"
#include "retina/flow_json.hpp"
#include "retina/ip_cache.hpp"
#include "retina/metrics/aggregator.hpp"
#include "retina/metrics/registry.hpp"
#include "retina/pipeline.hpp"

using namespace retina;

namespace {

constexpr size_t kRecords = 16384;
constexpr size_t kBatch = 256;

struct CountingSink final : FlowSink {
  uint64_t flows = 0, bytes = 0;
  void on_flow(const Flow& f) noexcept override {
    ++flows;
    bytes += f.total_bytes() + (f.source != nullptr);
  }
};

const std::shared_ptr<IpCache>& cache_with(uint32_t endpoints) {
  static std::shared_ptr<IpCache> c10k, c100k;
  auto& c = endpoints <= 10000 ? c10k : c100k;
  if (!c) c = bench::pod_cache(endpoints);
  return c;
}

// ahead: process_ahead(), as the engine's reader feeds the pipeline
// (lookups prefetched a few records ahead); else process(), one at a time.
int64_t run_batches(benchmark::State& state, Pipeline& p, const bench::RecordSet& set,
                    const std::function<void()>& after_batch = {}, bool ahead = false) {
  auto pass = [&] {
    for (size_t i = 0; i < set.records.size(); i += kBatch) {
      if (ahead) {
        for (size_t j = i; j < i + kBatch && j < set.records.size(); ++j) p.process_ahead(set.records[j], "bench");
      } else {
        for (size_t j = i; j < i + kBatch && j < set.records.size(); ++j) p.process(set.records[j]);
      }
      p.end_batch();
      if (after_batch) after_batch();
    }
  };
  // One warm-up pass so that first-use work (scratch growth, counters
  // resolved on first use, queue blocks) stays out of the measurement.
  pass();
  bench::AllocWindow allocs;
  int64_t n = 0;
  for (auto _ : state) {
    allocs.begin();
    pass();
    n += static_cast<int64_t>(set.records.size());
    allocs.end();
  }
  bench::report_per_event(state, n);
  allocs.report(state, n);
  return n;
}

void BM_PipelineDecodeOnly(benchmark::State& state) {
  auto set = bench::packet_records(kRecords, 10000);
  Pipeline p(nullptr, nullptr);
  p.set_enrich(false);
  auto sink = std::make_shared<CountingSink>();
  p.add_sink(sink);
  run_batches(state, p, set);
  benchmark::DoNotOptimize(sink->bytes);
}
BENCHMARK(BM_PipelineDecodeOnly);

void BM_PipelineEnrich(benchmark::State& state) {
  const auto endpoints = static_cast<uint32_t>(state.range(0));
  auto set = bench::packet_records(kRecords, endpoints);
  metrics::Registry reg;
  Pipeline p(cache_with(endpoints), &reg);
  auto sink = std::make_shared<CountingSink>();
  p.add_sink(sink);
  run_batches(state, p, set, {}, state.range(1) != 0);
  benchmark::DoNotOptimize(sink->bytes);
}
// Second argument: 0 process(), 1 process_ahead() (the engine's path).
BENCHMARK(BM_PipelineEnrich)->ArgsProduct({{10000, 100000}, {0, 1}});

void BM_PipelineEnrichAggregate(benchmark::State& state) {
  const auto endpoints = static_cast<uint32_t>(state.range(0));
  auto set = bench::packet_records(kRecords, endpoints);
  metrics::Registry reg;
  Pipeline p(cache_with(endpoints), &reg);
  p.add_sink(std::make_shared<metrics::BasicAggregator>(reg));
  run_batches(state, p, set, {}, state.range(1) != 0);
}
BENCHMARK(BM_PipelineEnrichAggregate)->ArgsProduct({{10000, 100000}, {0, 1}});

// Same, plus one subscriber that takes every flow (drained after each
// batch on the same thread): the cost of OwnedFlow copies and the queue.
void BM_PipelineSubscriber(benchmark::State& state) {
  auto set = bench::packet_records(kRecords, 10000);
  metrics::Registry reg;
  Pipeline p(cache_with(10000), &reg);
  p.add_sink(std::make_shared<CountingSink>());
  auto sub = p.subscribe("bench", 4096);
  std::vector<OwnedFlow> out;
  out.reserve(4096);
  run_batches(state, p, set, [&] {
    out.clear();
    sub->pop_batch(out, 4096, std::chrono::milliseconds(0));
  });
  state.counters["sub_dropped"] = static_cast<double>(sub->dropped());
}
BENCHMARK(BM_PipelineSubscriber);

}  // namespace

// Rendering enriched flows as Hubble JSON lines (the flow log's cost).
void BM_FlowJson(benchmark::State& state) {
  auto set = bench::packet_records(1024, 10000);
  struct Render final : FlowSink {
    std::string out;
    void on_flow(const Flow& f) noexcept override {
      out.clear();
      append_flow_json(out, f, {.node_name = "node-1"});
      benchmark::DoNotOptimize(out.data());
    }
  };
  Pipeline p(cache_with(10000), nullptr);
  auto sink = std::make_shared<Render>();
  sink->out.reserve(4096);
  p.add_sink(sink);
  run_batches(state, p, set);
  state.counters["bytes/flow"] = static_cast<double>(sink->out.size());
}
BENCHMARK(BM_FlowJson);
