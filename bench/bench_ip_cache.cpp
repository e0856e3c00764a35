// IpCache micro-benchmarks.
//
//   BM_IpCacheLookup/<endpoints>/<v6>/<hit %>/<batch>
//     lookups over a cache of N endpoints (one address each), IPv4 or IPv6,
//     with the given share of hits; batch 1 takes a read guard per lookup,
//     batch 256 one guard per 256 lookups. time_per_lookup is the figure.
//   BM_IpCacheApplyInitial/<endpoints>: replace_source with an initial list
//     (one swap); reports the endpoints' own heap and the cache's heap.
//   BM_IpCacheUpsertOneByOne/<endpoints>: the same list as single upserts.
//   BM_IpCacheLookupDuringChurn: batched lookups while another thread
//     upserts continuously; BM_IpCacheUpsertDuringReads: the reverse.
//
// ./build/bench/retina_bench --benchmark_filter=IpCache
#include <benchmark/benchmark.h>
#include <malloc.h>

#include <atomic>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "retina/ip_cache.hpp"

using namespace retina;

namespace {

IpAddr nth_addr(uint32_t i, bool v6) {
  if (!v6) return IpAddr::from_v4(0x0a000000u + i);  // 10.0.0.0/8 holds 16M
  uint8_t b[16] = {0xfd, 0x00, 0x10, 0x24, 0, 0, 0, 0, 0, 0, 0, 0};
  b[12] = static_cast<uint8_t>(i >> 24);
  b[13] = static_cast<uint8_t>(i >> 16);
  b[14] = static_cast<uint8_t>(i >> 8);
  b[15] = static_cast<uint8_t>(i);
  return IpAddr::from_v6_bytes(b);
}

// A pod shaped like a Deployment's: two labels, an owner, node and zone.
EndpointPtr make_pod(uint32_t i, bool v6, uint32_t generation = 0) {
  auto ep = std::make_shared<Endpoint>();
  ep->kind = EndpointKind::kPod;
  ep->namespace_ = "ns-" + std::to_string(i % 50);
  ep->name = "web-" + std::to_string(i) + "-7d9f8c6b5-x" + std::to_string(generation);
  ep->labels = {"app=web-" + std::to_string(i % 100), "pod-template-hash=7d9f8c6b5"};
  ep->workloads = {{"Deployment", "web-" + std::to_string(i % 100)}};
  ep->node_name = "node-" + std::to_string(i % 200);
  ep->zone = "eastus-" + std::to_string(i % 3);
  ep->ips = {nth_addr(i, v6)};
  return ep;
}

std::vector<EndpointPtr> make_pods(uint32_t n, bool v6) {
  std::vector<EndpointPtr> eps;
  eps.reserve(n);
  for (uint32_t i = 0; i < n; ++i) eps.push_back(make_pod(i, v6));
  return eps;
}

// In use: small blocks in the arenas plus mmap()ed large ones.
size_t heap_bytes() {
  const struct mallinfo2 mi = mallinfo2();
  return mi.uordblks + mi.hblkhd;
}

// One populated cache at a time (the 1M one is large); benchmarks are
// registered so that those sharing a cache run together.
struct Fixture {
  uint32_t n = 0;
  bool v6 = false;
  std::unique_ptr<IpCache> cache;
};

IpCache& cache_for(uint32_t n, bool v6) {
  static Fixture f;
  if (!f.cache || f.n != n || f.v6 != v6) {
    f.cache.reset();
    f.cache = std::make_unique<IpCache>();
    f.cache->replace_source(EndpointSource::kKubernetes, make_pods(n, v6));
    f.n = n;
    f.v6 = v6;
  }
  return *f.cache;
}

// Queries: hit_pct% addresses present, the rest absent, in random order.
std::vector<IpAddr> make_queries(uint32_t n, bool v6, int hit_pct) {
  constexpr size_t kQueries = 1 << 16;
  std::mt19937 rng(42);
  std::vector<IpAddr> q;
  q.reserve(kQueries);
  for (size_t i = 0; i < kQueries; ++i) {
    const bool hit = static_cast<int>(rng() % 100) < hit_pct;
    const uint32_t k = hit ? rng() % n : n + rng() % (1u << 23);
    q.push_back(nth_addr(k, v6));
  }
  return q;
}

void BM_IpCacheLookup(benchmark::State& state) {
  const auto n = static_cast<uint32_t>(state.range(0));
  const bool v6 = state.range(1) != 0;
  const int hit_pct = static_cast<int>(state.range(2));
  const auto batch = static_cast<size_t>(state.range(3));
  IpCache& cache = cache_for(n, v6);
  const std::vector<IpAddr> queries = make_queries(n, v6, hit_pct);
  const size_t mask = queries.size() - 1;
  size_t next = 0;
  uint64_t hits = 0;
  for (auto _ : state) {
    auto guard = cache.read();
    for (size_t k = 0; k < batch; ++k) {
      const Endpoint* ep = guard.lookup(queries[next++ & mask]);
      benchmark::DoNotOptimize(ep);
      hits += ep != nullptr;
    }
  }
  const double lookups = static_cast<double>(state.iterations()) * static_cast<double>(batch);
  state.SetItemsProcessed(static_cast<int64_t>(lookups));
  state.counters["time_per_lookup"] = benchmark::Counter(lookups, benchmark::Counter::kIsRate |
                                                                          benchmark::Counter::kInvert);
  state.counters["hit_ratio"] = lookups > 0 ? static_cast<double>(hits) / lookups : 0;
}

void lookup_args(benchmark::internal::Benchmark* b) {
  for (int64_t n : {1000, 10000, 100000, 1000000})
    for (int64_t v6 : {0, 1})
      for (int64_t hit : {100, 50, 0})
        for (int64_t batch : {1, 256}) b->Args({n, v6, hit, batch});
  b->ArgNames({"endpoints", "v6", "hit_pct", "batch"});
}
BENCHMARK(BM_IpCacheLookup)->Apply(lookup_args);

void BM_IpCacheApplyInitial(benchmark::State& state) {
  const auto n = static_cast<uint32_t>(state.range(0));
  double endpoints_mib = 0, cache_mib = 0;
  for (auto _ : state) {
    state.PauseTiming();
    malloc_trim(0);
    const size_t h0 = heap_bytes();
    std::vector<EndpointPtr> eps = make_pods(n, false);
    const size_t h1 = heap_bytes();
    auto cache = std::make_unique<IpCache>();
    state.ResumeTiming();

    cache->replace_source(EndpointSource::kKubernetes, std::move(eps));

    state.PauseTiming();
    const size_t h2 = heap_bytes();
    endpoints_mib = static_cast<double>(h1 - h0) / (1 << 20);
    // The vector of pointers is freed inside replace_source; add it back
    // so cache_mib is what the cache itself holds.
    cache_mib = (static_cast<double>(h2) - static_cast<double>(h1) + n * sizeof(EndpointPtr)) / (1 << 20);
    cache.reset();
    state.ResumeTiming();
  }
  state.counters["endpoints_MiB"] = endpoints_mib;
  state.counters["cache_MiB"] = cache_mib;
  state.counters["total_MiB"] = endpoints_mib + cache_mib;
}
BENCHMARK(BM_IpCacheApplyInitial)->Arg(100000)->Arg(1000000)->Unit(benchmark::kMillisecond);

void BM_IpCacheUpsertOneByOne(benchmark::State& state) {
  const auto n = static_cast<uint32_t>(state.range(0));
  for (auto _ : state) {
    state.PauseTiming();
    std::vector<EndpointPtr> eps = make_pods(n, false);
    auto cache = std::make_unique<IpCache>();
    state.ResumeTiming();
    for (auto& ep : eps) cache->upsert(std::move(ep), EndpointSource::kKubernetes);
    state.PauseTiming();
    cache.reset();
    state.ResumeTiming();
  }
  state.SetItemsProcessed(state.iterations() * n);
}
BENCHMARK(BM_IpCacheUpsertOneByOne)->Arg(100000)->Unit(benchmark::kMillisecond);

// Another thread upserts (moving pods to new addresses) while we read.
void BM_IpCacheLookupDuringChurn(benchmark::State& state) {
  constexpr uint32_t kN = 100000;
  IpCache& cache = cache_for(kN, false);
  const std::vector<IpAddr> queries = make_queries(kN, false, 100);
  const size_t mask = queries.size() - 1;
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> writes{0};
  std::thread writer([&] {
    std::mt19937 rng(1);
    uint32_t gen = 1;
    while (!stop.load(std::memory_order_relaxed)) {
      cache.upsert(make_pod(rng() % kN, false, gen++), EndpointSource::kKubernetes);
      writes.fetch_add(1, std::memory_order_relaxed);
    }
  });
  size_t next = 0;
  for (auto _ : state) {
    auto guard = cache.read();
    for (int k = 0; k < 256; ++k) benchmark::DoNotOptimize(guard.lookup(queries[next++ & mask]));
  }
  stop = true;
  writer.join();
  const double lookups = static_cast<double>(state.iterations()) * 256;
  state.counters["time_per_lookup"] =
      benchmark::Counter(lookups, benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
  state.counters["upserts_per_s"] = benchmark::Counter(static_cast<double>(writes.load()), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_IpCacheLookupDuringChurn)->UseRealTime();

// Upsert latency while another thread reads in batches of 256.
void BM_IpCacheUpsertDuringReads(benchmark::State& state) {
  constexpr uint32_t kN = 100000;
  IpCache& cache = cache_for(kN, false);
  const std::vector<IpAddr> queries = make_queries(kN, false, 100);
  std::atomic<bool> stop{false};
  std::thread reader([&] {
    size_t next = 0;
    while (!stop.load(std::memory_order_relaxed)) {
      auto guard = cache.read();
      for (int k = 0; k < 256; ++k) benchmark::DoNotOptimize(guard.lookup(queries[next++ & (queries.size() - 1)]));
    }
  });
  std::mt19937 rng(2);
  uint32_t gen = 1;
  for (auto _ : state) cache.upsert(make_pod(rng() % kN, false, gen++), EndpointSource::kKubernetes);
  stop = true;
  reader.join();
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_IpCacheUpsertDuringReads)->UseRealTime();

}  // namespace
