// Hubble mode costs: converting an enriched flow to Hubble's protobuf and
// serializing it (what every GetFlows response costs per flow), and the
// pipeline's rate with 10 followers of the flow store (in process, and
// over gRPC) taking every flow.
#include <benchmark/benchmark.h>

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <thread>
#include <vector>

#include "alloc_counter.hpp"
#include "bench_records.hpp"
#include "hubble/flow_proto.hpp"
#include "hubble/flow_store.hpp"
#include "observer/observer.grpc.pb.h"
#include "retina/hubble.hpp"
#include "retina/ip_cache.hpp"
#include "retina/metrics/aggregator.hpp"
#include "retina/metrics/registry.hpp"
#include "retina/pipeline.hpp"

using namespace retina;

namespace {

std::shared_ptr<IpCache> hubble_cache() {
  static std::shared_ptr<IpCache> cache = bench::pod_cache(10000);
  return cache;
}

// Enriched flows, kept (as the flow store keeps them).
std::vector<OwnedFlow> owned_flows() {
  auto set = bench::packet_records(1024, 10000);
  Pipeline p(hubble_cache(), nullptr);
  auto sub = p.subscribe("bench", 4096);
  for (const auto& r : set.records) p.process(r);
  p.end_batch();
  std::vector<OwnedFlow> out;
  sub->pop_batch(out, 4096, std::chrono::milliseconds(0));
  return out;
}

}  // namespace

// flow -> flow.Flow wire bytes (the conversion and serialization in one
// pass), into one reused buffer as a GetFlows stream does.
void BM_HubbleToProtoSerialize(benchmark::State& state) {
  const auto flows = owned_flows();
  std::string wire;
  for (const auto& f : flows) {  // warm-up
    wire.clear();
    hubble::append_flow_wire(f.flow(), "node-1", wire);
  }
  bench::AllocWindow allocs;
  int64_t n = 0;
  size_t bytes = 0;
  for (auto _ : state) {
    allocs.begin();
    for (const auto& f : flows) {
      wire.clear();
      hubble::append_flow_wire(f.flow(), "node-1", wire);
      bytes += wire.size();
      benchmark::DoNotOptimize(wire.data());
    }
    n += static_cast<int64_t>(flows.size());
    allocs.end();
  }
  bench::report_per_event(state, n);
  allocs.report(state, n);
  state.counters["bytes/flow"] = n ? static_cast<double>(bytes) / static_cast<double>(n) : 0;
}
BENCHMARK(BM_HubbleToProtoSerialize);

// What one GetFlows Write serializes per flow: the GetFlowsResponse around
// the flow (node name, time), serialized as gRPC does (size, then bytes).
void BM_HubbleResponseSerialize(benchmark::State& state) {
  const auto flows = owned_flows();
  hubble::FlowResponse resp("node-1");
  std::string wire;
  for (const auto& f : flows) resp.set(f.flow()).SerializeToString(&wire);  // warm-up
  bench::AllocWindow allocs;
  int64_t n = 0;
  for (auto _ : state) {
    allocs.begin();
    for (const auto& f : flows) {
      const auto& m = resp.set(f.flow());
      wire.resize(m.ByteSizeLong());
      m.SerializeWithCachedSizesToArray(reinterpret_cast<uint8_t*>(wire.data()));
      benchmark::DoNotOptimize(wire.data());
    }
    n += static_cast<int64_t>(flows.size());
    allocs.end();
  }
  bench::report_per_event(state, n);
  allocs.report(state, n);
}
BENCHMARK(BM_HubbleResponseSerialize);

// The pipeline (decode + enrich + the node-level metrics, the whole
// user-space path) with the flow store as a sink and n followers reading
// it by cursor on threads of their own, each filtering nothing out and
// encoding every flow to Hubble's wire bytes as a GetFlows stream does
// (the socket left out). Timed on the pipeline thread: items_per_second is
// real time, which on a small machine includes the time the followers'
// threads take the pipeline's core; time/event is the pipeline thread's
// own CPU per event. A follower that falls a ring behind counts its lost
// flows; the pipeline never waits for one and drops nothing itself.
void BM_PipelineFlowStoreFollowers(benchmark::State& state) {
  const int followers = static_cast<int>(state.range(0));
  auto set = bench::packet_records(16384, 10000);
  metrics::Registry reg;
  Pipeline p(hubble_cache(), &reg);
  p.add_sink(std::make_shared<metrics::BasicAggregator>(reg));
  auto store = std::make_shared<hubble::FlowStore>(4096);
  hubble::FlowStore::attach(store, p);
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> received{0}, lost{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < followers; ++i) {
    threads.emplace_back([&] {
      uint64_t cursor = store->head(), got = 0, missed = 0;
      std::string wire;
      while (!stop.load(std::memory_order_relaxed)) {
        missed += store->read(&cursor, ~uint64_t{0}, 256, [&](uint64_t, const Flow& f) {
          wire.clear();
          hubble::append_flow_wire(f, "node-1", wire);
          ++got;
          return true;
        });
        if (cursor >= store->head()) store->wait(cursor, std::chrono::milliseconds(50));
      }
      received += got;
      lost += missed;
    });
  }
  auto pass = [&] {
    for (size_t i = 0; i < set.records.size(); i += 256) {
      for (size_t j = i; j < i + 256 && j < set.records.size(); ++j) p.process(set.records[j]);
      p.end_batch();
    }
  };
  pass();  // warm-up: the ring's slots reach their size
  bench::AllocWindow allocs;
  int64_t n = 0;
  const double cpu0 = bench::thread_cpu_seconds();
  for (auto _ : state) {
    allocs.begin();
    pass();
    n += static_cast<int64_t>(set.records.size());
    allocs.end();
  }
  const double cpu = bench::thread_cpu_seconds() - cpu0;
  const uint64_t published = store->head();
  stop = true;
  store->close();
  for (auto& t : threads) t.join();
  bench::report_per_event(state, n);
  allocs.report(state, n);
  bench::report_thread_cpu(state, n, cpu);
  state.counters["store_seen"] = static_cast<double>(published);
  state.counters["follower_flows"] = static_cast<double>(received.load());
  state.counters["follower_lost"] = static_cast<double>(lost.load());
  store->detach();
}
BENCHMARK(BM_PipelineFlowStoreFollowers)->Arg(0)->Arg(10)->UseRealTime();

// The same with the Hubble server attached and n followers streaming every
// flow over loopback gRPC (the hubble_* metrics follower included).
void BM_PipelineHubbleFollowers(benchmark::State& state) {
  const int followers = static_cast<int>(state.range(0));
  auto set = bench::packet_records(16384, 10000);
  metrics::Registry reg;
  Pipeline p(hubble_cache(), &reg);
  p.add_sink(std::make_shared<metrics::BasicAggregator>(reg));
  HubbleOptions o;
  o.listen_address = "127.0.0.1:0";
  o.metrics_address = "";
  o.node_name = "bench";
  auto server = HubbleServer::start(p, o);
  if (!server) {
    state.SkipWithError(server.error().message.c_str());
    return;
  }
  auto channel = grpc::CreateChannel("127.0.0.1:" + std::to_string((*server)->port()), grpc::InsecureChannelCredentials());
  auto stub = observer::Observer::NewStub(channel);
  std::atomic<uint64_t> received{0}, lost{0};
  std::vector<std::unique_ptr<grpc::ClientContext>> ctxs;
  std::vector<std::thread> threads;
  for (int i = 0; i < followers; ++i) {
    ctxs.push_back(std::make_unique<grpc::ClientContext>());
    threads.emplace_back([&, ctx = ctxs.back().get()] {
      observer::GetFlowsRequest req;
      req.set_follow(true);
      auto reader = stub->GetFlows(ctx, req);
      observer::GetFlowsResponse r;
      while (reader->Read(&r)) {
        if (r.has_lost_events()) lost += r.lost_events().num_events_lost();
        else ++received;
      }
      reader->Finish();
    });
  }
  while ((*server)->status().followers < static_cast<size_t>(followers)) std::this_thread::sleep_for(std::chrono::milliseconds(5));

  int64_t n = 0;
  const double cpu0 = bench::thread_cpu_seconds();
  for (auto _ : state) {
    for (size_t i = 0; i < set.records.size(); i += 256) {
      for (size_t j = i; j < i + 256 && j < set.records.size(); ++j) p.process(set.records[j]);
      p.end_batch();
    }
    n += static_cast<int64_t>(set.records.size());
  }
  const double cpu = bench::thread_cpu_seconds() - cpu0;
  bench::report_per_event(state, n);
  bench::report_thread_cpu(state, n, cpu);
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  const auto st = (*server)->status();
  state.counters["store_seen"] = static_cast<double>(st.seen_flows);
  state.counters["follower_flows"] = static_cast<double>(received.load());
  state.counters["follower_lost"] = static_cast<double>(lost.load());
  for (auto& c : ctxs) c->TryCancel();
  for (auto& t : threads) t.join();
  (*server)->stop();
}
BENCHMARK(BM_PipelineHubbleFollowers)->Arg(0)->Arg(10)->UseRealTime();
