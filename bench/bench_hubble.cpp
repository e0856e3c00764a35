// Hubble mode costs: converting an enriched flow to Hubble's protobuf and
// serializing it (what every GetFlows response costs per flow), and the
// pipeline's rate with 10 gRPC followers streaming every flow.
#include <benchmark/benchmark.h>

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <thread>
#include <vector>

#include "alloc_counter.hpp"
#include "bench_records.hpp"
#include "hubble/flow_proto.hpp"
#include "observer/observer.grpc.pb.h"
#include "retina/hubble.hpp"
#include "retina/ip_cache.hpp"
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

// The pipeline (decode + enrich) with the Hubble server attached and 10
// followers streaming every flow over loopback gRPC. The store's intake
// and the followers drop and count what they cannot keep up with; the
// pipeline never waits for them.
void BM_PipelineHubbleFollowers(benchmark::State& state) {
  const int followers = static_cast<int>(state.range(0));
  auto set = bench::packet_records(16384, 10000);
  Pipeline p(hubble_cache(), nullptr);
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
  for (auto _ : state) {
    for (size_t i = 0; i < set.records.size(); i += 256) {
      for (size_t j = i; j < i + 256 && j < set.records.size(); ++j) p.process(set.records[j]);
      p.end_batch();
    }
    n += static_cast<int64_t>(set.records.size());
  }
  bench::report_per_event(state, n);
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
