// The engine's reader path end to end: an event source handing records to
// the reader thread, decode, enrich, basic aggregation. Measures records per
// second through a running Engine (threads, epoll wakeups and all).
#include <benchmark/benchmark.h>

#include <sys/eventfd.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <thread>
#include <vector>

#include "retina/abi/events.h"
#include "retina/engine.hpp"

namespace {

// Replays one prepared block of records `rounds` times; readable through an
// eventfd while records remain.
class ReplaySource final : public retina::EventSource {
 public:
  ReplaySource() : efd_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {}
  ~ReplaySource() override { ::close(efd_); }
  std::string_view name() const override { return "bench"; }
  int fd() const override { return efd_; }
  size_t drain(RecordFn fn, void* user, size_t max) override {
    size_t n = 0;
    while (n < max && remaining_.load() > 0) {
      fn(user, records_[next_++ % records_.size()]);
      remaining_.fetch_sub(1);
      ++n;
    }
    if (remaining_.load() == 0) {
      uint64_t v;
      (void)::read(efd_, &v, sizeof v);
    }
    return n;
  }
  void arm(std::vector<std::vector<std::byte>> records, uint64_t count) {
    records_ = std::move(records);
    next_ = 0;
    remaining_.store(count);
    const uint64_t one = 1;
    (void)::write(efd_, &one, sizeof one);
  }
  bool done() const { return remaining_.load() == 0; }

 private:
  int efd_;
  std::vector<std::vector<std::byte>> records_;
  size_t next_ = 0;
  std::atomic<uint64_t> remaining_{0};
};

class ReplayPlugin final : public retina::Plugin {
 public:
  std::string_view name() const override { return "bench"; }
  retina::Status init(retina::PluginContext&) override { return retina::ok(); }
  retina::Status start() override { return retina::ok(); }
  void stop() noexcept override {}
  std::vector<retina::EventSource*> event_sources() override { return {&source}; }
  ReplaySource source;
};

class NoFeatures final : public retina::FeatureDetector {
 public:
  retina::Status probe(retina::KernelFeature) override { return retina::ok(); }
};

std::vector<std::vector<std::byte>> packet_records(size_t flows) {
  std::vector<std::vector<std::byte>> out;
  for (size_t i = 0; i < flows; ++i) {
    retina_packet_event ev;
    std::memset(&ev, 0, sizeof ev);
    ev.hdr.type = RETINA_EV_PACKET;
    ev.hdr.version = RETINA_PACKET_EVENT_VERSION;
    ev.hdr.len = sizeof ev;
    ev.hdr.ts_ns = 1;
    const uint8_t src[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 0, static_cast<uint8_t>(i >> 8),
                             static_cast<uint8_t>(i)};
    const uint8_t dst[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 1, 0, 1};
    std::memcpy(ev.tuple.saddr, src, 16);
    std::memcpy(ev.tuple.daddr, dst, 16);
    ev.tuple.sport = static_cast<uint16_t>(30000 + i);
    ev.tuple.dport = 443;
    ev.tuple.proto = 6;
    ev.tuple.family = 4;
    ev.bytes = 1500;
    ev.obs_point = (i & 1) ? RETINA_OBS_TO_NETWORK : RETINA_OBS_FROM_NETWORK;
    ev.tcp_flags = RETINA_TCP_ACK;
    std::vector<std::byte> rec(sizeof ev);
    std::memcpy(rec.data(), &ev, sizeof ev);
    out.push_back(std::move(rec));
  }
  return out;
}

void BM_EngineReaderThroughput(benchmark::State& state) {
  retina::Config cfg;
  cfg.enabled_plugins.clear();
  cfg.node_name = "bench";
  retina::EngineOptions opts;
  opts.features = std::make_unique<NoFeatures>();
  auto* plugin = new ReplayPlugin();
  opts.extra_plugins.emplace_back(plugin);
  auto engine = retina::Engine::create(cfg, std::move(opts));
  if (!engine || !(*engine)->start()) {
    state.SkipWithError("engine did not start");
    return;
  }
  const uint64_t per_iteration = static_cast<uint64_t>(state.range(0));
  auto records = packet_records(1024);
  for (auto _ : state) {
    plugin->source.arm(records, per_iteration);
    while (!plugin->source.done()) std::this_thread::yield();
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * per_iteration));
  (*engine)->stop();
}
BENCHMARK(BM_EngineReaderThroughput)->Arg(1 << 20)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace
