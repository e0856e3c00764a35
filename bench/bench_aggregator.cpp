// Basic aggregation cost per flow (inline sink on the pipeline thread).
#include <benchmark/benchmark.h>

#include <vector>

#include "retina/metrics/aggregator.hpp"
#include "retina/metrics/registry.hpp"

using namespace retina;

static void BM_BasicAggregator(benchmark::State& state) {
  metrics::Registry r;
  metrics::BasicAggregator agg(r);
  std::vector<Flow> flows(1024);
  for (size_t i = 0; i < flows.size(); ++i) {
    flows[i].origin = FlowSource::kPacketParser;
    flows[i].verdict = Verdict::FORWARDED;
    flows[i].direction = i % 2 ? TrafficDirection::INGRESS : TrafficDirection::EGRESS;
    flows[i].bytes = 100 + static_cast<uint32_t>(i);
    flows[i].prev_packets = i % 7;
    flows[i].prev_bytes = (i % 7) * 1500;
  }
  for (auto _ : state) {
    for (const Flow& f : flows) agg.on_flow(f);
    agg.on_batch_end();
  }
  state.SetItemsProcessed(state.iterations() * static_cast<int64_t>(flows.size()));
}
BENCHMARK(BM_BasicAggregator);
