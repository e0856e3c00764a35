// The dns plugin's cgroup_skb programs, cost per packet measured by the
// kernel with BPF_PROG_TEST_RUN (needs root; skipped otherwise). On the
// cgroup v2 root they run for every packet of every socket, so the case
// that matters most is the packet that is not DNS.
#include <benchmark/benchmark.h>

#include <arpa/inet.h>
#include <unistd.h>

#include <bpf/bpf.h>

#include <cstring>
#include <vector>

#include "plugins/dns/dns.hpp"
#include "plugins/services.hpp"

using namespace retina;

namespace {

void consume(void* user, std::span<const std::byte> rec) { *static_cast<size_t*>(user) += rec.size(); }

// Ethernet + IPv4 + UDP or TCP (ports sport -> dport) + payload.
std::vector<uint8_t> packet(bool udp, uint16_t sport, uint16_t dport, const std::vector<uint8_t>& payload) {
  const size_t l4 = udp ? 8 : 20;
  std::vector<uint8_t> p(14 + 20 + l4, 0);
  p[12] = 0x08;
  p[14] = 0x45;
  const size_t ip_len = 20 + l4 + payload.size();
  p[16] = static_cast<uint8_t>(ip_len >> 8);
  p[17] = static_cast<uint8_t>(ip_len);
  p[14 + 9] = udp ? 17 : 6;
  inet_pton(AF_INET, "10.0.0.1", &p[14 + 12]);
  inet_pton(AF_INET, "10.0.0.2", &p[14 + 16]);
  uint8_t* h = &p[34];
  h[0] = static_cast<uint8_t>(sport >> 8);
  h[1] = static_cast<uint8_t>(sport);
  h[2] = static_cast<uint8_t>(dport >> 8);
  h[3] = static_cast<uint8_t>(dport);
  if (udp) {
    h[4] = static_cast<uint8_t>((8 + payload.size()) >> 8);
    h[5] = static_cast<uint8_t>(8 + payload.size());
  } else {
    h[12] = 5 << 4;
    h[13] = 0x18;
  }
  p.insert(p.end(), payload.begin(), payload.end());
  return p;
}

// A query for example.com/A.
std::vector<uint8_t> dns_query() {
  return {0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 7, 'e', 'x', 'a', 'm', 'p', 'l', 'e',
          3,    'c',  'o',  'm',  0, 0, 1, 0, 1};
}

}  // namespace

// Arg 0: a 1000-byte TCP segment of another protocol (the common case).
// Arg 1: a DNS query over UDP at egress (reported every time).
static void BM_DnsProgram(benchmark::State& state) {
  if (::geteuid() != 0) {
    state.SkipWithError("needs root to load BPF");
    return;
  }
  PluginServices services;
  DnsPlugin dns;
  PluginContext ctx;
  if (auto st = services.provide(DnsPlugin::kNeeds, ctx); !st || !(st = dns.init(ctx))) {
    state.SkipWithError(st.error().message.c_str());
    return;
  }
  const bool query = state.range(0) == 1;
  const auto pkt = query ? packet(true, 40000, 53, dns_query())
                         : packet(false, 40000, 443, std::vector<uint8_t>(1000, 0xab));
  const int repeat = query ? 200 : 1000;  // a query fills the ring; drain between runs
  size_t sink = 0;
  for (auto _ : state) {
    LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = pkt.data(), .data_size_in = static_cast<uint32_t>(pkt.size()),
                .repeat = repeat);
    if (bpf_prog_test_run_opts(dns.egress_prog_fd(), &o) != 0) {
      state.SkipWithError("bpf_prog_test_run_opts failed");
      return;
    }
    state.SetIterationTime(static_cast<double>(o.duration) * repeat / 1e9);
    for (auto* src : dns.event_sources())
      while (src->drain(consume, &sink, 4096)) {
      }
  }
  state.SetItemsProcessed(state.iterations() * repeat);
  if (auto s = dns.stats()) state.counters["ringbuf_full"] = static_cast<double>(s->common[RETINA_STAT_RINGBUF_FULL]);
}
BENCHMARK(BM_DnsProgram)->Arg(0)->Arg(1)->UseManualTime();
