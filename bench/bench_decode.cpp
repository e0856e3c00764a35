// Decoding alone: ring-buffer record -> Flow.
#include <benchmark/benchmark.h>

#include <cstring>
#include <random>
#include <vector>

#include "alloc_counter.hpp"
#include "bench_records.hpp"
#include "retina/decoder.hpp"

using namespace retina;

namespace {

// Decodes every record of `set` per iteration; reports ns and allocations
// per event.
void run_decode(benchmark::State& state, const bench::RecordSet& set, const DecodeContext& ctx) {
  Flow f;
  bench::AllocWindow allocs;
  int64_t n = 0;
  bool rejected = false;
  for (auto _ : state) {
    allocs.begin();
    for (const auto& r : set.records) {
      rejected = rejected || !decode(r, ctx, f);
      benchmark::DoNotOptimize(f);
    }
    n += static_cast<int64_t>(set.records.size());
    allocs.end();
    if (rejected) {
      state.SkipWithError("a benchmark record was rejected");
      break;
    }
  }
  bench::report_per_event(state, n);
  allocs.report(state, n);
}

void BM_DecodePacket(benchmark::State& state) {
  auto set = bench::packet_records(4096, 10000);
  DecodeContext ctx;
  ctx.boot_to_realtime_ns = boot_to_realtime_offset_ns();
  run_decode(state, set, ctx);
}
BENCHMARK(BM_DecodePacket);

void BM_DecodeDns(benchmark::State& state) {
  auto set = bench::dns_records(bench::dns_mix());
  DnsInfo scratch;
  DecodeContext ctx;
  ctx.dns_scratch = &scratch;
  Flow f;
  for (const auto& r : set.records) (void)decode(r, ctx, f);  // warm the scratch buffers
  run_decode(state, set, ctx);
}
BENCHMARK(BM_DecodeDns);

// Fixed-size records (drops, retransmissions) of `count` flows between the
// first 10k endpoint addresses.
template <typename Event, typename Fill>
bench::RecordSet fixed_records(size_t count, Fill fill) {
  std::mt19937 rng(7);
  bench::RecordSet set;
  set.storage.resize(count * sizeof(Event));
  for (size_t i = 0; i < count; ++i) {
    Event ev{};
    ev.hdr.len = sizeof ev;
    ev.hdr.ts_ns = 1'000'000'000ull + i * 1000;
    const IpAddr s = bench::endpoint_ip(rng() % 10000), d = bench::endpoint_ip(rng() % 10000);
    std::memcpy(ev.tuple.saddr, s.bytes.data(), 16);
    std::memcpy(ev.tuple.daddr, d.bytes.data(), 16);
    ev.tuple.sport = static_cast<uint16_t>(32768 + rng() % 28000);
    ev.tuple.dport = 8080;
    ev.tuple.proto = 6;
    ev.tuple.family = 4;
    fill(ev, rng);
    std::memcpy(set.storage.data() + i * sizeof ev, &ev, sizeof ev);
  }
  for (size_t i = 0; i < count; ++i)
    set.records.emplace_back(set.storage.data() + i * sizeof(Event), sizeof(Event));
  return set;
}

void BM_DecodeDrop(benchmark::State& state) {
  std::vector<std::string> names;
  for (int i = 0; i < 128; ++i) names.push_back("REASON_" + std::to_string(i));
  auto set = fixed_records<retina_drop_event>(4096, [](retina_drop_event& ev, std::mt19937& rng) {
    ev.hdr.type = RETINA_EV_DROP;
    ev.hdr.version = RETINA_DROP_EVENT_VERSION;
    ev.ifindex = 2 + rng() % 30;
    ev.bytes = 60 + rng() % 1400;
    ev.reason = 2 + rng() % 100;
    ev.direction = static_cast<uint8_t>(1 + rng() % 2);
  });
  DecodeContext ctx;
  ctx.drop_reason_names = &names;
  run_decode(state, set, ctx);
}
BENCHMARK(BM_DecodeDrop);

void BM_DecodeTcpRetrans(benchmark::State& state) {
  auto set = fixed_records<retina_tcpretrans_event>(4096, [](retina_tcpretrans_event& ev, std::mt19937& rng) {
    ev.hdr.type = RETINA_EV_TCPRETRANS;
    ev.hdr.version = RETINA_TCPRETRANS_EVENT_VERSION;
    ev.state = 1;
    ev.tcp_flags = RETINA_TCP_ACK | (rng() % 4 == 0 ? RETINA_TCP_PSH : 0);
    ev.segs = 1;
  });
  run_decode(state, set, DecodeContext{});
}
BENCHMARK(BM_DecodeTcpRetrans);

}  // namespace
