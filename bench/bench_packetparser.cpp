// The packetparser path: reading records from a ring buffer (in memory,
// no privileges needed), and the BPF program's cost per packet measured by
// the kernel with BPF_PROG_TEST_RUN (needs root; skipped otherwise).
#include <benchmark/benchmark.h>

#include <arpa/inet.h>
#include <unistd.h>

#include <bpf/bpf.h>

#include <pthread.h>
#include <sched.h>

#include <cstdlib>
#include <cstring>
#include <memory>
#include <thread>
#include <vector>

#include "loader/ring_buffer.hpp"
#include "plugins/packetparser/packetparser.hpp"
#include "plugins/services.hpp"

using namespace retina;

namespace {

void consume(void* user, std::span<const std::byte> rec) {
  auto* sum = static_cast<uint64_t*>(user);
  uint64_t v;
  std::memcpy(&v, rec.data(), sizeof v);
  *sum += v;
}

}  // namespace

// Records of the size of retina_packet_event, produced in batches, drained
// in bounded batches as the engine's reader does.
static void BM_RingBufferDrain(benchmark::State& state) {
  const size_t batch = static_cast<size_t>(state.range(0));
  auto img = loader::RingImage::create(8 << 20);
  if (!img) {
    state.SkipWithError(img.error().message.c_str());
    return;
  }
  auto rb = loader::RingBuffer::over_memory("bench", (*img)->layout());
  std::vector<std::byte> rec(sizeof(retina_packet_event), std::byte{1});
  uint64_t sum = 0;
  for (auto _ : state) {
    state.PauseTiming();
    for (size_t i = 0; i < batch; ++i) (*img)->push(rec);
    state.ResumeTiming();
    size_t left = batch;
    while (left) left -= rb->drain(consume, &sum, 256);
  }
  benchmark::DoNotOptimize(sum);
  state.SetItemsProcessed(state.iterations() * static_cast<int64_t>(batch));
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(batch * (rec.size() + 8)));
}
BENCHMARK(BM_RingBufferDrain)->Arg(1024)->Arg(16384);

// ns per packet inside the kernel for a 1000-byte TCP segment of one
// connection: aggregation low (a record each, sent in batches) and high
// (conntrack; mostly pending counts).
//
// Modes, which together split the cost: 0 low; 1 high; 2 high with the
// default conntrack size (262144: a 2 MiB bucket array); 3 a non-IP frame
// (entry, Ethernet parse, one statistic: the floor); 4 low with every
// packet sampled out (the IPv4/TCP parse without a record); 5 high with
// both CPUs sending the same connection's packets at once (the shared
// entry's cache lines move between them: the cost of every store and
// atomic the per-packet path makes), timed per packet on each CPU; 6 low
// with a record reserved per packet (no batches, as without bpf_timer); 7
// high with one CPU on the ingress hook and the other on the egress hook of
// one connection and interface, as a veth sees a flow's data and its ACKs
// (each CPU writes only its own side of the shared entry).
static void BM_PacketParserProgram(benchmark::State& state) {
  const int mode = static_cast<int>(state.range(0));
  const bool high = mode == 1 || mode == 2 || mode == 3 || mode == 5 || mode == 7;
  if (::geteuid() != 0) {
    state.SkipWithError("needs root to load BPF");
    return;
  }
  Config cfg;
  cfg.data_aggregation_level = high ? AggregationLevel::kHigh : AggregationLevel::kLow;
  cfg.conntrack_max_entries = mode == 2 ? 262144 : 1024;
  if (mode == 4) cfg.data_sampling_rate = 1u << 30;
  cfg.host_interfaces.clear();
  PluginServices services;
  PacketParserPlugin pp;
  PluginContext ctx;
  ctx.config = &cfg;
  // Mode 6: the kernel's answers, except that it lacks bpf_timer (read when probed, in init).
  std::unique_ptr<FeatureDetector> without_timer;
  if (mode == 6) {
    ::setenv("RETINA_KERNEL_FEATURES_OFF", "bpf_timer", 1);
    without_timer = make_kernel_feature_detector();
    ctx.features = without_timer.get();
  }
  auto st = services.provide(PacketParserPlugin::kNeeds, ctx);
  if (st) st = pp.init(ctx);
  if (mode == 6) ::unsetenv("RETINA_KERNEL_FEATURES_OFF");
  if (!st) {
    state.SkipWithError(st.error().message.c_str());
    return;
  }
  // Ethernet + IPv4 + TCP(ACK, NOP NOP TS) + payload.
  std::vector<uint8_t> pkt(14 + 20 + 32 + 1000, 0);
  pkt[12] = 0x08;
  if (mode == 3) pkt[13] = 0x06;  // ARP
  pkt[14] = 0x45;
  pkt[14 + 9] = 6;
  inet_pton(AF_INET, "10.0.0.1", &pkt[14 + 12]);
  inet_pton(AF_INET, "10.0.0.2", &pkt[14 + 16]);
  uint8_t* tcp = &pkt[34];
  tcp[0] = 0x9c;
  tcp[1] = 0x40;
  tcp[3] = 80;
  tcp[12] = 8 << 4;
  tcp[13] = 0x10;
  const uint8_t ts[] = {1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0};
  std::memcpy(tcp + 20, ts, sizeof ts);

  const int repeat = 1000;
  uint64_t sink = 0;
  if (mode == 5 || mode == 7) {
    const int fds[2] = {pp.ingress_prog_fd(), mode == 7 ? pp.egress_prog_fd() : pp.ingress_prog_fd()};
    const int each = 100 * repeat;  // per CPU: long enough for the two runs to overlap
    for (auto _ : state) {
      uint32_t dur[2] = {0, 0};
      int rc[2] = {0, 0};
      std::thread t[2];
      for (int i = 0; i < 2; ++i)
        t[i] = std::thread([&, i] {
          cpu_set_t set;
          CPU_ZERO(&set);
          CPU_SET(i, &set);
          ::pthread_setaffinity_np(::pthread_self(), sizeof set, &set);
          LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = pkt.data(),
                      .data_size_in = static_cast<uint32_t>(pkt.size()), .repeat = each);
          rc[i] = bpf_prog_test_run_opts(fds[i], &o);
          dur[i] = o.duration;
        });
      for (auto& th : t) th.join();
      if (rc[0] != 0 || rc[1] != 0) {
        state.SkipWithError("bpf_prog_test_run_opts failed");
        return;
      }
      // The runs start together but need not end together: the mean of the two CPUs' per-packet times.
      state.SetIterationTime((static_cast<double>(dur[0]) + dur[1]) / 2 * each / 1e9);
      for (auto* src : pp.event_sources())
        while (src->drain(consume, &sink, 4096)) {
        }
    }
    state.SetItemsProcessed(state.iterations() * each);
    return;
  }
  for (auto _ : state) {
    LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = pkt.data(), .data_size_in = static_cast<uint32_t>(pkt.size()),
                .repeat = repeat);
    if (bpf_prog_test_run_opts(pp.ingress_prog_fd(), &o) != 0) {
      state.SkipWithError("bpf_prog_test_run_opts failed");
      return;
    }
    state.SetIterationTime(static_cast<double>(o.duration) * repeat / 1e9);
    for (auto* src : pp.event_sources())
      while (src->drain(consume, &sink, 4096)) {
      }
  }
  state.SetItemsProcessed(state.iterations() * repeat);
  auto stats = pp.stats();
  if (stats) state.counters["ringbuf_full"] = static_cast<double>((*stats)[RETINA_STAT_RINGBUF_FULL]);
}
BENCHMARK(BM_PacketParserProgram)->DenseRange(0, 7)->ArgName("mode")->UseManualTime();
