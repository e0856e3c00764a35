// dropreason in user space and under a drop storm.
//
//   BM_DropEventPipeline   decode + dispatch of drop records (no privileges)
//   BM_DropReasonTable     building the reason table from the kernel's BTF
//   BM_DropStorm/<s>/<t>/<p>  (root, RETINA_BENCH_STORM=1) <t> threads flood
//                          UDP over loopback into an nftables DROP rule in a
//                          namespace of their own for <s> seconds. With p=1
//                          the plugin runs in process (counting that
//                          namespace) with a thread draining its ring buffer
//                          as the engine's reader does; reports the drop
//                          rate, the drain thread's CPU, and whether the
//                          in-kernel count equals what was sent ("exact").
//                          With p=0 it only floods: run an agent alongside
//                          and sample its /proc/<pid>/stat
//                          (docs/plugins/dropreason.md).
#include <benchmark/benchmark.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "bench_records.hpp"
#include "plugins/dropreason/btf_reasons.hpp"
#include "plugins/dropreason/dropreason.hpp"
#include "plugins/services.hpp"
#include "retina/metrics/registry.hpp"
#include "retina/pipeline.hpp"

using namespace retina;

namespace {

std::vector<std::byte> drop_records(size_t count) {
  std::vector<std::byte> out(count * sizeof(retina_drop_event));
  for (size_t i = 0; i < count; ++i) {
    retina_drop_event ev{};
    ev.hdr.type = RETINA_EV_DROP;
    ev.hdr.version = RETINA_DROP_EVENT_VERSION;
    ev.hdr.len = sizeof ev;
    ev.hdr.ts_ns = 1'000'000'000ull + i;
    const IpAddr s = bench::endpoint_ip(static_cast<uint32_t>(i % 1000));
    const IpAddr d = bench::endpoint_ip(static_cast<uint32_t>(1000 + i % 7));
    std::memcpy(ev.tuple.saddr, s.bytes.data(), 16);
    std::memcpy(ev.tuple.daddr, d.bytes.data(), 16);
    ev.tuple.sport = static_cast<uint16_t>(30000 + i % 20000);
    ev.tuple.dport = 443;
    ev.tuple.proto = 17;
    ev.tuple.family = 4;
    ev.ifindex = 3;
    ev.bytes = 128;
    ev.reason = i % 3 == 0 ? 3 : 8;
    ev.direction = RETINA_DROP_DIR_INGRESS;
    std::memcpy(out.data() + i * sizeof ev, &ev, sizeof ev);
  }
  return out;
}

class CountSink final : public FlowSink {
 public:
  void on_flow(const Flow& f) noexcept override { n += f.drop_reason_desc.size(); }
  uint64_t n = 0;
};

}  // namespace

// What one drop event costs the agent: decode, enrichment lookup, sinks.
static void BM_DropEventPipeline(benchmark::State& state) {
  constexpr size_t kBatch = 4096;
  auto recs = drop_records(kBatch);
  Pipeline p(nullptr, nullptr);
  auto names = std::make_shared<std::vector<std::string>>(16);
  (*names)[3] = "NO_SOCKET";
  (*names)[8] = "NETFILTER_DROP";
  p.set_drop_reason_names(names);
  auto sink = std::make_shared<CountSink>();
  p.add_sink(sink);
  for (auto _ : state) {
    for (size_t i = 0; i < kBatch; ++i)
      p.process(std::span(recs).subspan(i * sizeof(retina_drop_event), sizeof(retina_drop_event)), "dropreason");
    p.end_batch();
  }
  benchmark::DoNotOptimize(sink->n);
  state.SetItemsProcessed(state.iterations() * static_cast<int64_t>(kBatch));
}
BENCHMARK(BM_DropEventPipeline);

static void BM_DropReasonTable(benchmark::State& state) {
  for (auto _ : state) {
    auto t = dropreason::DropReasonTable::load_kernel();
    if (!t) {
      state.SkipWithError(t.error().message.c_str());
      return;
    }
    benchmark::DoNotOptimize(t->named());
  }
}
BENCHMARK(BM_DropReasonTable)->Unit(benchmark::kMillisecond);

namespace {

// utime + stime of a thread, in clock ticks.
uint64_t thread_ticks(pid_t tid) {
  std::ifstream f(fmt::format("/proc/self/task/{}/stat", tid));
  std::string s((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  const auto close = s.rfind(')');
  if (close == std::string::npos) return 0;
  std::istringstream in(s.substr(close + 2));
  std::string field;
  uint64_t utime = 0, stime = 0;
  for (int i = 3; i <= 15 && in >> field; ++i) {
    if (i == 14) utime = std::stoull(field);
    if (i == 15) stime = std::stoull(field);
  }
  return utime + stime;
}

struct StormNs {
  std::string name = fmt::format("retina-storm-{}", ::getpid());
  bool ok = false;
  StormNs() {
    const std::string cmd = fmt::format(
        "ip netns add {0} && ip -n {0} link set lo up && ip netns exec {0} nft add table inet storm && "
        "ip netns exec {0} nft 'add chain inet storm pre {{ type filter hook prerouting priority -300; }}' && "
        "ip netns exec {0} nft add rule inet storm pre udp dport 9999 drop",
        name);
    ok = std::system(cmd.c_str()) == 0;
  }
  ~StormNs() { (void)std::system(fmt::format("ip netns del {} 2>/dev/null", name).c_str()); }
};

// Sends 16-byte datagrams to 127.0.0.1:9999 in batches of 64 until `stop`.
uint64_t blast(const std::string& ns, const std::atomic<bool>& stop) {
  const int nsfd = ::open(("/run/netns/" + ns).c_str(), O_RDONLY | O_CLOEXEC);
  if (nsfd < 0 || ::setns(nsfd, CLONE_NEWNET) != 0) return 0;
  ::close(nsfd);
  const int s = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(9999);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (s < 0 || ::connect(s, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) return 0;
  constexpr int kBatch = 64;
  char payload[16] = {};
  iovec iov{payload, sizeof payload};
  mmsghdr msgs[kBatch] = {};
  for (auto& m : msgs) {
    m.msg_hdr.msg_iov = &iov;
    m.msg_hdr.msg_iovlen = 1;
  }
  uint64_t sent = 0;
  while (!stop.load(std::memory_order_relaxed)) {
    const int n = ::sendmmsg(s, msgs, kBatch, 0);
    if (n > 0) sent += static_cast<uint64_t>(n);
  }
  ::close(s);
  return sent;
}

}  // namespace

static void BM_DropStorm(benchmark::State& state) {
  if (!std::getenv("RETINA_BENCH_STORM")) {
    state.SkipWithError("set RETINA_BENCH_STORM=1 to flood (needs root)");
    return;
  }
  if (::geteuid() != 0) {
    state.SkipWithError("needs root");
    return;
  }
  const auto seconds = std::chrono::seconds(state.range(0));
  const int threads = static_cast<int>(state.range(1));
  const bool in_process = state.range(2) != 0;
  StormNs ns;
  if (!ns.ok) {
    state.SkipWithError("cannot set up the storm namespace (ip, nft)");
    return;
  }
  struct stat st {};
  ::stat(("/run/netns/" + ns.name).c_str(), &st);

  Config cfg;  // default drop_events_per_second
  metrics::Registry registry;
  Pipeline pipeline(nullptr, &registry);
  PluginServices services;
  DropReasonPlugin plugin(DropReasonPlugin::Options{static_cast<uint32_t>(st.st_ino)});
  PluginContext ctx;
  ctx.config = &cfg;
  ctx.registry = &registry;
  ctx.pipeline = &pipeline;
  if (in_process) {
    if (auto r = services.provide(DropReasonPlugin::kNeeds, ctx); !r || !(r = plugin.init(ctx))) {
      state.SkipWithError(r.error().message.c_str());
      return;
    }
    if (auto r = plugin.start(); !r) {
      state.SkipWithError(r.error().message.c_str());
      return;
    }
  }

  for (auto _ : state) {
    std::atomic<bool> stop{false};
    std::atomic<pid_t> drain_tid{0};
    std::atomic<uint64_t> events{0};
    // The engine's reader: drain, decode, dispatch.
    std::thread drainer([&] {
      drain_tid = static_cast<pid_t>(::syscall(SYS_gettid));
      auto fn = [](void* user, std::span<const std::byte> rec) {
        static_cast<Pipeline*>(user)->process(rec, "dropreason");
      };
      while (in_process && !stop.load()) {
        size_t n = 0;
        for (auto* src : plugin.event_sources()) n += src->drain(fn, &pipeline, 4096);
        if (n) pipeline.end_batch();
        events += n;
        if (!n) std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
    });
    while (!drain_tid.load()) std::this_thread::yield();
    const uint64_t ticks0 = thread_ticks(drain_tid);
    std::vector<std::thread> senders;
    std::vector<uint64_t> sent(static_cast<size_t>(threads), 0);
    const auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < threads; ++i)
      senders.emplace_back([&, i] { sent[static_cast<size_t>(i)] = blast(ns.name, stop); });
    std::this_thread::sleep_for(seconds);
    stop = true;
    for (auto& t : senders) t.join();
    const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const uint64_t ticks1 = thread_ticks(drain_tid);
    drainer.join();

    uint64_t total = 0;
    for (auto n : sent) total += n;
    state.counters["sent"] = static_cast<double>(total);
    state.counters["drops_per_s"] = static_cast<double>(total) / elapsed;
    if (!in_process) continue;
    // Drops happen in softirq right behind the sends; let them land.
    uint64_t counted = 0;
    for (int i = 0; i < 100; ++i) {
      counted = 0;
      if (auto c = plugin.counts())
        for (const auto& x : *c) counted += x.packets;
      if (counted >= total) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    const auto stats = plugin.stats();
    state.counters["counted"] = static_cast<double>(counted);
    state.counters["exact"] = counted == total ? 1 : 0;
    state.counters["events"] = static_cast<double>(events.load());
    state.counters["rate_limited"] = stats ? static_cast<double>((*stats)[RETINA_STAT_RATE_LIMITED]) : -1;
    state.counters["drain_cpu_pct"] =
        100.0 * static_cast<double>(ticks1 - ticks0) / static_cast<double>(::sysconf(_SC_CLK_TCK)) / elapsed;
  }
  plugin.stop();
}
BENCHMARK(BM_DropStorm)->Args({10, 2, 1})->Args({10, 2, 0})->Iterations(1)->UseRealTime()->Unit(benchmark::kSecond);
