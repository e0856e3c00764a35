// The engine's reader path end to end: an event source handing records to
// the reader thread, decode, enrich, basic aggregation. Measures records per
// second through a running Engine (threads, epoll wakeups and all).
#include <benchmark/benchmark.h>

#include <sys/eventfd.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include "bench_records.hpp"
#include "retina/engine.hpp"

namespace {

// Replays a prepared set of records; readable through an eventfd while
// records remain.
class ReplaySource final : public retina::EventSource {
 public:
  ReplaySource() : efd_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {}
  ~ReplaySource() override { ::close(efd_); }
  std::string_view name() const override { return "bench"; }
  int fd() const override { return efd_; }
  size_t drain(RecordFn fn, void* user, size_t max) override {
    size_t n = 0;
    while (n < max && remaining_.load() > 0) {
      fn(user, set_->records[next_++ % set_->records.size()]);
      remaining_.fetch_sub(1);
      ++n;
    }
    if (remaining_.load() == 0) {
      uint64_t v;
      (void)::read(efd_, &v, sizeof v);
    }
    return n;
  }
  // Replays `set` (which must outlive the run) until `count` records were
  // handed out.
  void arm(const retina::bench::RecordSet& set, uint64_t count) {
    set_ = &set;
    next_ = 0;
    remaining_.store(count);
    const uint64_t one = 1;
    (void)::write(efd_, &one, sizeof one);
  }
  bool done() const { return remaining_.load() == 0; }

 private:
  int efd_;
  const retina::bench::RecordSet* set_ = nullptr;
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
  const auto records = retina::bench::packet_records(1024, 256);
  for (auto _ : state) {
    plugin->source.arm(records, per_iteration);
    while (!plugin->source.done()) std::this_thread::yield();
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * per_iteration));
  (*engine)->stop();
}
BENCHMARK(BM_EngineReaderThroughput)->Arg(1 << 20)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace
