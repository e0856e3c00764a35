// Decoding alone: ring-buffer record -> Flow.
#include <benchmark/benchmark.h>

#include "alloc_counter.hpp"
#include "bench_records.hpp"
#include "retina/decoder.hpp"

using namespace retina;

namespace {

void BM_DecodePacket(benchmark::State& state) {
  auto set = bench::packet_records(4096, 10000);
  DecodeContext ctx;
  ctx.boot_to_realtime_ns = boot_to_realtime_offset_ns();
  Flow f;
  bench::AllocWindow allocs;
  int64_t n = 0;
  for (auto _ : state) {
    allocs.begin();
    for (const auto& r : set.records) {
      auto ok = decode(r, ctx, f);
      benchmark::DoNotOptimize(ok);
      benchmark::DoNotOptimize(f);
    }
    n += static_cast<int64_t>(set.records.size());
    allocs.end();
  }
  bench::report_per_event(state, n);
  allocs.report(state, n);
}
BENCHMARK(BM_DecodePacket);

void BM_DecodeDns(benchmark::State& state) {
  auto set = bench::dns_records(bench::dns_mix());
  DnsInfo scratch;
  DecodeContext ctx;
  ctx.dns_scratch = &scratch;
  Flow f;
  for (const auto& r : set.records) (void)decode(r, ctx, f);  // warm the scratch buffers
  bench::AllocWindow allocs;
  int64_t n = 0;
  for (auto _ : state) {
    allocs.begin();
    for (const auto& r : set.records) {
      auto ok = decode(r, ctx, f);
      benchmark::DoNotOptimize(ok);
      benchmark::DoNotOptimize(f);
    }
    n += static_cast<int64_t>(set.records.size());
    allocs.end();
  }
  bench::report_per_event(state, n);
  allocs.report(state, n);
}
BENCHMARK(BM_DecodeDns);

}  // namespace
