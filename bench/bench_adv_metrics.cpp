// Advanced (pod-level) metrics: the per-event cost on the pipeline thread
// with 1, 4 and 8 context labels (steady state: every series exists, so no
// allocation is expected), and the scrape of 1k, 10k and 100k series.
//
//   retina_bench --benchmark_filter=Adv
#include <benchmark/benchmark.h>

#include <memory>
#include <string>
#include <vector>

#include "alloc_counter.hpp"
#include "retina/metrics/advanced.hpp"
#include "retina/metrics/registry.hpp"

using namespace retina;

namespace {

constexpr int kPods = 200;

std::vector<EndpointPtr> make_pods(int n) {
  std::vector<EndpointPtr> pods;
  for (int i = 0; i < n; ++i) {
    auto ep = std::make_shared<Endpoint>();
    ep->kind = EndpointKind::kPod;
    ep->namespace_ = "team-" + std::to_string(i % 20);
    ep->name = "api-" + std::to_string(i) + "-5f7c9d8b6-x2k4q";
    ep->node_name = "node-1";
    ep->zone = "eastus-1";
    ep->workloads = {Workload{"Deployment", "api-" + std::to_string(i % 50)}};
    ep->ips = {IpAddr::from_v4(0x0a000000u + static_cast<uint32_t>(i))};
    pods.push_back(std::move(ep));
  }
  return pods;
}

MetricsContextOption forward(std::vector<std::string> src, std::vector<std::string> dst = {}) {
  MetricsContextOption o;
  o.metric_name = "forward";
  o.source_labels = std::move(src);
  o.destination_labels = std::move(dst);
  return o;
}

// Context labels per event: 1 (local podname), 4 (local ip, namespace,
// workload_kind, workload_name), 8 (remote source ip, namespace, podname,
// workload_kind, workload_name; destination ip, namespace, podname).
metrics::AdvancedOptions options_for(int labels) {
  metrics::AdvancedOptions o;
  o.node_name = "node-1";
  o.max_series_per_metric = 1'000'000;
  switch (labels) {
    case 1: o.context_options = {forward({"podname"})}; break;
    case 4: o.context_options = {forward({"ip", "namespace", "workload"})}; break;
    default:
      o.remote_context = true;
      o.context_options = {forward({"ip", "namespace", "podname", "workload"}, {"ip", "namespace", "podname"})};
      break;
  }
  return o;
}

void BM_AdvAggregate(benchmark::State& state) {
  const int labels = static_cast<int>(state.range(0));
  metrics::Registry r;
  auto agg = metrics::AdvancedAggregator::create(r, options_for(labels));
  if (!agg) {
    state.SkipWithError(agg.error().message.c_str());
    return;
  }
  const auto pods = make_pods(kPods);
  // A batch of reports between pod pairs, seen at the sender's veth.
  std::vector<Flow> flows(1024);
  for (size_t i = 0; i < flows.size(); ++i) {
    Flow& f = flows[i];
    const Endpoint& s = *pods[i % kPods];
    const Endpoint& d = *pods[(i * 7 + 3) % kPods];
    f.origin = FlowSource::kPacketParser;
    f.verdict = Verdict::FORWARDED;
    f.ip_version = IpVersion::IPv4;
    f.src = s.ips.front();
    f.dst = d.ips.front();
    f.proto = L4Protocol::kTCP;
    f.src_port = static_cast<uint16_t>(40000 + i % 100);
    f.dst_port = 8080;
    f.observation_point = TraceObservationPoint::TO_STACK;
    f.direction = TrafficDirection::EGRESS;
    f.is_reply_known = true;
    f.bytes = 1400;
    f.prev_packets = 3;
    f.prev_bytes = 4200;
    f.source = &s;
    f.destination = &d;
  }
  // Warm up: every series exists and is published.
  for (const Flow& f : flows) (*agg)->on_flow(f);
  (*agg)->on_batch_end();
  (*agg)->maintain();

  bench::AllocWindow w;
  for (auto _ : state) {
    w.begin();
    for (const Flow& f : flows) (*agg)->on_flow(f);
    (*agg)->on_batch_end();
    w.end();
  }
  const int64_t events = state.iterations() * static_cast<int64_t>(flows.size());
  w.report(state, events);
  bench::report_per_event(state, events);
  state.counters["series"] = static_cast<double>((*agg)->stats().series[0]);
}
BENCHMARK(BM_AdvAggregate)->Arg(1)->Arg(4)->Arg(8)->ArgName("context_labels");

// A scrape of the whole registry holding `n` adv series (forward_count with
// the default local labels ip, namespace, podname, workload_kind,
// workload_name, after direction).
void BM_AdvScrape(benchmark::State& state) {
  const auto n = static_cast<int>(state.range(0));
  metrics::Registry r;
  metrics::AdvancedOptions o;
  o.node_name = "node-1";
  o.max_series_per_metric = 1'000'000;
  MetricsContextOption opt;
  opt.metric_name = "forward_count";
  opt.source_labels = {"ip", "namespace", "podname", "workload"};
  o.context_options = {opt};
  auto agg = metrics::AdvancedAggregator::create(r, o);
  if (!agg) {
    state.SkipWithError(agg.error().message.c_str());
    return;
  }
  const auto pods = make_pods(n);
  Flow f;
  f.origin = FlowSource::kPacketParser;
  f.verdict = Verdict::FORWARDED;
  f.ip_version = IpVersion::IPv4;
  f.observation_point = TraceObservationPoint::TO_STACK;
  f.direction = TrafficDirection::EGRESS;
  f.bytes = 100;
  for (const auto& p : pods) {
    f.src = p->ips.front();
    f.source = p.get();
    (*agg)->on_flow(f);
  }
  (*agg)->on_batch_end();
  (*agg)->maintain();
  std::string out;
  for (auto _ : state) {
    out.clear();
    r.expose(out);
    benchmark::DoNotOptimize(out.data());
  }
  state.counters["series"] = static_cast<double>((*agg)->stats().series[0]);
  state.counters["bytes"] = static_cast<double>(out.size());
  state.SetItemsProcessed(state.iterations() * n);
}
BENCHMARK(BM_AdvScrape)->Arg(1000)->Arg(10000)->Arg(100000)->ArgName("series")->Unit(benchmark::kMillisecond);

}  // namespace
