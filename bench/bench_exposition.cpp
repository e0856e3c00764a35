// Scrape cost: rendering N series of one counter family as Prometheus text.
// Targets: 10k series <= 5 ms, 100k series <= 100 ms.
#include <benchmark/benchmark.h>

#include <string>

#include "retina/metrics/registry.hpp"

using namespace retina::metrics;

static void BM_Exposition(benchmark::State& state) {
  const int64_t n = state.range(0);
  Registry r;
  // Label shapes like the advanced metrics: several context labels per series.
  auto& fam = r.counter("networkobservability_adv_forward_count", "Total forwarded packets",
                        {"direction", "namespace", "podname", "workload_kind", "workload_name"});
  for (int64_t i = 0; i < n; ++i) {
    const std::string ns = "ns-" + std::to_string(i % 50);
    const std::string pod = "pod-" + std::to_string(i);
    const std::string wl = "deploy-" + std::to_string(i / 8);
    fam.with({i % 2 ? "ingress" : "egress", ns, pod, "Deployment", wl}).add(static_cast<uint64_t>(i) * 1000);
  }
  std::string out;
  for (auto _ : state) {
    out.clear();
    r.expose(out);
    benchmark::DoNotOptimize(out.data());
  }
  state.counters["series"] = static_cast<double>(n);
  state.counters["bytes"] = static_cast<double>(out.size());
  state.SetItemsProcessed(state.iterations() * n);
}
BENCHMARK(BM_Exposition)->Arg(1000)->Arg(10000)->Arg(100000)->Unit(benchmark::kMillisecond);
