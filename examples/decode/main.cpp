// Decoding recorded kernel events and enriching them, with retina::core
// alone: no BPF, no Kubernetes client, no HTTP server.
//
//   decode_example FILE [IP=NAMESPACE/POD ...]
//       reads ring-buffer records saved back to back (each padded to 8
//       bytes, as the ring buffer stores them), resolves the given pod
//       addresses and prints one Hubble JSON line per flow
//   decode_example --self-test
//       records a packet report, a drop and a truncated record to a
//       temporary file, decodes it and checks flows, enrichment and rejects
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <vector>

#include <retina/abi/events.h>
#include <retina/decoder.hpp>
#include <retina/flow_json.hpp>
#include <retina/flow_sources.hpp>
#include <retina/ip_cache.hpp>
#include <retina/metrics/aggregator.hpp>
#include <retina/metrics/registry.hpp>
#include <retina/pipeline.hpp>

namespace {

constexpr size_t kAlign = 8;  // BPF ring-buffer records start 8-byte aligned

// Feeds every record of `bytes` to the pipeline; returns how many.
size_t replay(retina::Pipeline& pipeline, const std::vector<std::byte>& bytes) {
  size_t n = 0, off = 0;
  while (off + sizeof(retina_event_hdr) <= bytes.size()) {
    retina_event_hdr hdr;
    std::memcpy(&hdr, bytes.data() + off, sizeof hdr);
    // A length the header cannot have still reaches the decoder, which
    // counts it as a reject; the rest of the file is not trusted after it.
    const size_t len = hdr.len >= sizeof hdr && off + hdr.len <= bytes.size() ? hdr.len : bytes.size() - off;
    pipeline.process(std::span(bytes).subspan(off, len));  // rejects labelled by the header's source
    ++n;
    off += (len + kAlign - 1) / kAlign * kAlign;
  }
  pipeline.end_batch();
  return n;
}

bool add_pod(retina::IpCache& cache, const std::string& spec) {
  const size_t eq = spec.find('='), slash = spec.find('/');
  if (eq == std::string::npos || slash == std::string::npos || slash < eq) return false;
  auto ip = retina::IpAddr::parse(spec.substr(0, eq));
  if (!ip) return false;
  auto pod = std::make_shared<retina::Endpoint>();
  pod->kind = retina::EndpointKind::kPod;
  pod->namespace_ = spec.substr(eq + 1, slash - eq - 1);
  pod->name = spec.substr(slash + 1);
  pod->ips = {*ip};
  cache.upsert(pod);
  return true;
}

template <class Event>
void append(std::vector<std::byte>& out, const Event& ev, size_t len = sizeof(Event)) {
  const auto* p = reinterpret_cast<const std::byte*>(&ev);
  out.insert(out.end(), p, p + len);
  out.resize((out.size() + kAlign - 1) / kAlign * kAlign);
}

void fill_tuple(retina_tuple& t, const char* src, const char* dst, uint16_t sport, uint16_t dport) {
  std::memcpy(t.saddr, retina::IpAddr::parse(src)->bytes.data(), 16);
  std::memcpy(t.daddr, retina::IpAddr::parse(dst)->bytes.data(), 16);
  t.sport = sport;
  t.dport = dport;
  t.proto = 6;
  t.family = 4;
}

int self_test() {
  std::vector<std::byte> rec;
  retina_packet_event pkt{};
  pkt.hdr.type = RETINA_EV_PACKET;
  pkt.hdr.version = RETINA_PACKET_EVENT_VERSION;
  pkt.hdr.len = sizeof pkt;
  fill_tuple(pkt.tuple, "10.1.0.5", "10.1.0.9", 40000, 80);
  pkt.obs_point = RETINA_OBS_FROM_ENDPOINT;
  pkt.flags = RETINA_PKT_F_CT_REPORT;
  pkt.report_reason = RETINA_REPORT_INTERVAL;
  pkt.tcp_flags = RETINA_TCP_ACK;
  pkt.bytes = 100;
  pkt.prev_packets = 1;
  pkt.prev_bytes = 100;
  append(rec, pkt);
  retina_drop_event drop{};
  drop.hdr.type = RETINA_EV_DROP;
  drop.hdr.version = RETINA_DROP_EVENT_VERSION;
  drop.hdr.len = sizeof drop;
  fill_tuple(drop.tuple, "10.1.0.9", "10.1.0.5", 80, 40000);
  drop.bytes = 60;
  drop.direction = RETINA_DROP_DIR_INGRESS;
  append(rec, drop);
  retina_drop_event cut = drop;  // claims more bytes than a drop event has
  cut.hdr.len = 24;
  append(rec, cut, 24);

  const char* path = "decode_example.records";
  std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(rec.data()), static_cast<std::streamsize>(rec.size()));
  std::ifstream in(path, std::ios::binary);
  std::vector<char> text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::remove(path);
  std::vector<std::byte> bytes(text.size());
  std::memcpy(bytes.data(), text.data(), text.size());

  auto cache = std::make_shared<retina::IpCache>();
  retina::metrics::Registry registry;
  retina::Pipeline pipeline(cache, &registry);
  add_pod(*cache, "10.1.0.5=shop/web-1");
  auto flows = pipeline.subscribe("decode-example", 16);
  const size_t n = replay(pipeline, bytes);

  std::vector<retina::OwnedFlow> got;
  flows->pop_batch(got, 16, std::chrono::milliseconds(0));
  const auto stats = pipeline.stats();
  const std::string text_metrics = registry.expose();
  for (const auto& f : got) std::printf("%s\n", retina::flow_to_json(f.flow()).c_str());
  const auto is_web = [](const retina::Endpoint* e) { return e && e->name == "web-1"; };
  const bool ok = n == 3 && got.size() == 2 && got[0].flow().origin == retina::FlowSource::kPacketParser &&
                  is_web(got[0].flow().source) && got[0].flow().packets() == 2 &&
                  got[1].flow().verdict == retina::Verdict::DROPPED &&
                  (is_web(got[1].flow().source) || is_web(got[1].flow().destination)) &&
                  stats.rejected[static_cast<size_t>(retina::DecodeError::kTooShort)] == 1 &&
                  text_metrics.find("reason=\"dropreason\"") != std::string::npos;
  if (!ok) {
    std::fprintf(stderr, "self-test: %zu records, %zu flows; metrics:\n%s", n, got.size(), text_metrics.c_str());
    return 1;
  }
  std::printf("self-test passed\n");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s FILE [IP=NAMESPACE/POD ...] | --self-test\n", argv[0]);
    return 2;
  }
  if (std::strcmp(argv[1], "--self-test") == 0) return self_test();
  std::ifstream in(argv[1], std::ios::binary);
  if (!in) {
    std::fprintf(stderr, "%s: cannot open\n", argv[1]);
    return 1;
  }
  std::vector<char> text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<std::byte> bytes(text.size());
  std::memcpy(bytes.data(), text.data(), text.size());

  auto cache = std::make_shared<retina::IpCache>();
  for (int i = 2; i < argc; ++i) {
    if (!add_pod(*cache, argv[i])) {
      std::fprintf(stderr, "%s: expected IP=NAMESPACE/POD\n", argv[i]);
      return 2;
    }
  }
  retina::metrics::Registry registry;
  retina::Pipeline pipeline(cache, &registry);
  auto flows = pipeline.subscribe("decode-example", 1 << 16);
  const size_t n = replay(pipeline, bytes);
  std::vector<retina::OwnedFlow> got;
  flows->pop_batch(got, 1 << 16, std::chrono::milliseconds(0));
  for (const auto& f : got) std::printf("%s\n", retina::flow_to_json(f.flow()).c_str());
  const auto stats = pipeline.stats();
  uint64_t rejected = 0;
  for (auto r : stats.rejected) rejected += r;
  std::fprintf(stderr, "%zu records, %zu flows, %llu rejected\n", n, got.size(),
               static_cast<unsigned long long>(rejected));
  return 0;
}
