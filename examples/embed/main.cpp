// Embedding retina in your own C++ program.
//
//   embed_example              run the engine (root): print a line per flow
//                              for 10 s, then the forward metrics
//   embed_example --self-test  no kernel needed: compose cache, pipeline and
//                              aggregator by hand and push one synthetic
//                              kernel record through them
#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <thread>

#include <retina/abi/events.h>
#include <retina/retina.hpp>

namespace {

// A consumer: runs inline on the pipeline thread, so it only counts.
class TalkerSink final : public retina::FlowSink {
 public:
  void on_flow(const retina::Flow& f) noexcept override {
    packets_ += f.packets();
    bytes_ += f.total_bytes();
  }
  uint64_t packets() const { return packets_; }
  uint64_t bytes() const { return bytes_; }

 private:
  uint64_t packets_ = 0, bytes_ = 0;
};

int self_test() {
  auto cache = std::make_shared<retina::IpCache>();
  retina::metrics::Registry registry;
  retina::Pipeline pipeline(cache, &registry);
  auto aggregator = std::make_shared<retina::metrics::BasicAggregator>(registry);
  auto talkers = std::make_shared<TalkerSink>();
  pipeline.add_sink(aggregator);
  pipeline.add_sink(talkers);

  auto web = std::make_shared<retina::Endpoint>();
  web->kind = retina::EndpointKind::kPod;
  web->namespace_ = "shop";
  web->name = "web-7d9f";
  web->ips = {*retina::IpAddr::parse("10.0.0.5")};
  cache->upsert(web);
  auto sub = pipeline.subscribe("example", 16);

  // One conntrack report as the kernel writes it: 3 earlier packets + this one.
  retina_packet_event ev{};
  ev.hdr.type = RETINA_EV_PACKET;
  ev.hdr.version = RETINA_PACKET_EVENT_VERSION;
  ev.hdr.len = sizeof ev;
  const auto src = retina::IpAddr::parse("10.0.0.5")->bytes;
  const auto dst = retina::IpAddr::parse("10.0.0.9")->bytes;
  std::memcpy(ev.tuple.saddr, src.data(), 16);
  std::memcpy(ev.tuple.daddr, dst.data(), 16);
  ev.tuple.sport = 40000;
  ev.tuple.dport = 80;
  ev.tuple.proto = 6;
  ev.tuple.family = 4;
  ev.obs_point = RETINA_OBS_FROM_ENDPOINT;
  ev.flags = RETINA_PKT_F_CT_REPORT;
  ev.report_reason = RETINA_REPORT_INTERVAL;
  ev.tcp_flags = RETINA_TCP_ACK;
  ev.bytes = 100;
  ev.prev_packets = 3;
  ev.prev_bytes = 300;
  pipeline.process(std::as_bytes(std::span(&ev, 1)), "packetparser");
  pipeline.end_batch();

  retina::OwnedFlow got;
  if (!sub->try_pop(got)) {
    std::fprintf(stderr, "self-test: subscriber got no flow\n");
    return 1;
  }
  const retina::Flow& f = got.flow();
  std::printf("flow %s:%u -> %s:%u from %s/%s, %llu packets, %llu bytes\n", f.src.to_string().c_str(),
              f.src_port, f.dst.to_string().c_str(), f.dst_port, f.source ? f.source->namespace_.c_str() : "?",
              f.source ? f.source->name.c_str() : "?", static_cast<unsigned long long>(f.packets()),
              static_cast<unsigned long long>(f.total_bytes()));
  const auto totals = aggregator->totals();
  const int egress = static_cast<int>(retina::TrafficDirection::EGRESS);
  if (!f.source || f.source->name != "web-7d9f" || totals.forward_packets[egress] != 4 ||
      totals.forward_bytes[egress] != 400 || talkers->packets() != 4) {
    std::fprintf(stderr, "self-test: unexpected enrichment or counts\n");
    return 1;
  }
  const std::string text = registry.expose();
  if (text.find("networkobservability_forward_count{direction=\"egress\"} 4\n") == std::string::npos) {
    std::fprintf(stderr, "self-test: metric missing:\n%s", text.c_str());
    return 1;
  }
  std::printf("self-test passed\n");
  return 0;
}

int run_engine() {
  retina::Config config;  // defaults work on a plain host
  config.enabled_plugins = {"packetparser", "linuxutil"};
  config.data_aggregation_level = retina::AggregationLevel::kLow;
  if (auto st = config.validate(); !st) {
    std::fprintf(stderr, "%s\n", st.error().message.c_str());
    return 2;
  }
  auto engine = retina::Engine::create(config);
  if (!engine) {
    std::fprintf(stderr, "engine: %s\n", engine.error().message.c_str());
    return 1;
  }
  if (auto st = (*engine)->start(); !st) {
    std::fprintf(stderr, "start: %s\n", st.error().message.c_str());
    return 1;
  }
  for (const auto& p : (*engine)->plugin_status())
    std::printf("plugin %-13s %s %s\n", p.name.c_str(), retina::to_string(p.state), p.reason.c_str());

  auto flows = (*engine)->pipeline().subscribe("embed-example", 1024);
  std::vector<retina::OwnedFlow> batch;
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (std::chrono::steady_clock::now() < until) {
    batch.clear();
    flows->pop_batch(batch, 64, std::chrono::milliseconds(200));
    for (const auto& of : batch) {
      const auto& f = of.flow();
      std::printf("%s %s:%u -> %s:%u %s\n", retina::to_string(f.verdict), f.src.to_string().c_str(), f.src_port,
                  f.dst.to_string().c_str(), f.dst_port, retina::to_string(f.direction));
    }
  }
  (*engine)->stop();
  std::printf("dropped by this subscriber: %llu\n", static_cast<unsigned long long>(flows->dropped()));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc > 1 && std::strcmp(argv[1], "--self-test") == 0) return self_test();
  return run_engine();
}
