// DNS parsing: queries (~30-60 bytes) and responses with 1-4 answers.
#include <benchmark/benchmark.h>

#include "alloc_counter.hpp"
#include "bench_records.hpp"
#include "retina/dns.hpp"

using namespace retina;

namespace {

void run(benchmark::State& state, const std::vector<std::vector<uint8_t>>& msgs) {
  // At least 64 messages per iteration so the loop's own cost is noise.
  std::vector<std::span<const std::byte>> spans;
  while (spans.size() < 64)
    for (const auto& m : msgs) spans.push_back(std::as_bytes(std::span<const uint8_t>(m)));
  DnsInfo info;
  for (const auto& s : spans) (void)parse_dns(s, info);  // warm the buffers
  bench::AllocWindow allocs;
  int64_t n = 0;
  for (auto _ : state) {
    allocs.begin();
    for (const auto& s : spans) {
      auto r = parse_dns(s, info);
      benchmark::DoNotOptimize(r);
      benchmark::DoNotOptimize(info.ips.data());
    }
    n += static_cast<int64_t>(spans.size());
    allocs.end();
  }
  bench::report_per_event(state, n);
  allocs.report(state, n);
}

void BM_DnsParseQuery(benchmark::State& state) {
  run(state, {bench::dns_message("kubernetes.default.svc.cluster.local", 1, false, 0),
              bench::dns_message("api.example.com", 28, false, 0)});
}
BENCHMARK(BM_DnsParseQuery);

void BM_DnsParseResponse(benchmark::State& state) {
  const int answers = static_cast<int>(state.range(0));
  run(state, {bench::dns_message("redis.cache.svc.cluster.local", 1, true, answers),
              bench::dns_message("api.example.com", 1, true, answers, true)});
}
BENCHMARK(BM_DnsParseResponse)->Arg(1)->Arg(4);

void BM_DnsParseMix(benchmark::State& state) { run(state, bench::dns_mix()); }
BENCHMARK(BM_DnsParseMix);

}  // namespace
