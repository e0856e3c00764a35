// tcpretrans on real retransmissions: a TCP transfer between two pod
// namespaces while the receiver drops 10% of what arrives for the server
// port (iptables statistic match), over IPv4 and IPv6, with the tp_btf
// program and with the raw-tracepoint fallback.
//
// The sender namespace's RetransSegs (/proc/net/snmp) counts every
// retransmitted segment; the records from that namespace must add up to it
// exactly (each carries its skb's segment count), and name the transfer's
// 5-tuple. Records go through a pipeline with the basic aggregator, whose
// tcpretrans_count{direction="egress"} must equal the records received
// (this machine's other retransmissions included), with nothing lost.
#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <future>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <bpf/bpf.h>
#include <fmt/format.h>

#include "loader/fd.hpp"
#include "plugins/services.hpp"
#include "plugins/tcpretrans/tcpretrans.hpp"
#include "retina/metrics/aggregator.hpp"
#include "retina/metrics/names.hpp"
#include "retina/metrics/registry.hpp"
#include "retina/pipeline.hpp"
#include "support/netns.hpp"
#include "support/privileged.hpp"
#include "support/prom_text.hpp"

using namespace retina;
using namespace std::chrono_literals;
namespace names = retina::metrics::names;

namespace {

// A counter of /proc/net/snmp or /proc/net/netstat ("Tcp:", "RetransSegs")
// as a namespace sees it.
uint64_t proc_net_counter(const std::string& ns, const char* file, const std::string& group, const std::string& name) {
  std::istringstream in(test::sh_in(ns, fmt::format("cat /proc/net/{}", file)));
  std::string header, values;
  while (std::getline(in, header)) {
    if (header.rfind(group + ":", 0) != 0 || !std::getline(in, values)) continue;
    std::istringstream h(header), v(values);
    std::string key, val;
    while (h >> key && v >> val)
      if (key == name) return std::stoull(val);
  }
  throw std::runtime_error(fmt::format("{} {} not in /proc/net/{}", group, name, file));
}

uint64_t retrans_segs(const std::string& ns) { return proc_net_counter(ns, "snmp", "Tcp", "RetransSegs"); }
uint64_t retrans_fail(const std::string& ns) { return proc_net_counter(ns, "netstat", "TcpExt", "TCPRetransFail"); }

uint32_t netns_inode(const std::string& ns) {
  struct stat st {};
  const std::string path = "/run/netns/" + ns;
  if (::stat(path.c_str(), &st) != 0) throw std::runtime_error("stat " + path);
  return static_cast<uint32_t>(st.st_ino);
}

sockaddr_storage sockaddr_of(const std::string& ip, bool v6, uint16_t port, socklen_t* len) {
  sockaddr_storage ss{};
  if (v6) {
    auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
    a->sin6_family = AF_INET6;
    a->sin6_port = htons(port);
    if (!ip.empty()) inet_pton(AF_INET6, ip.c_str(), &a->sin6_addr);
    *len = sizeof *a;
  } else {
    auto* a = reinterpret_cast<sockaddr_in*>(&ss);
    a->sin_family = AF_INET;
    a->sin_port = htons(port);
    if (!ip.empty()) inet_pton(AF_INET, ip.c_str(), &a->sin_addr);
    *len = sizeof *a;
  }
  return ss;
}

bool readable(int fd, int ms) {
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, ms) > 0;
}

// Sends `bytes` from `from` to `to`:port and returns the client's port
// once the receiver has read everything and seen the FIN.
uint16_t transfer(const test::Pod& from, const test::Pod& to, bool v6, uint16_t port, size_t bytes) {
  std::promise<void> listening;
  auto ready = listening.get_future();
  auto server = std::async(std::launch::async, [&]() -> uint64_t {
    test::EnterNetns enter(to.ns);
    loader::UniqueFd s(::socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    int one = 1;
    ::setsockopt(s.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    socklen_t len;
    auto addr = sockaddr_of("", v6, port, &len);
    if (::bind(s.get(), reinterpret_cast<sockaddr*>(&addr), len) < 0 || ::listen(s.get(), 1) < 0)
      throw std::runtime_error("server bind/listen: " + std::string(std::strerror(errno)));
    listening.set_value();
    if (!readable(s.get(), 30000)) throw std::runtime_error("server: no connection");
    loader::UniqueFd c(::accept4(s.get(), nullptr, nullptr, SOCK_CLOEXEC));
    uint64_t got = 0;
    std::vector<char> buf(1 << 16);
    for (;;) {
      if (!readable(c.get(), 30000)) throw std::runtime_error("server: read timeout");
      ssize_t n = ::read(c.get(), buf.data(), buf.size());
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      got += static_cast<uint64_t>(n);
    }
    return got;
  });
  ready.get();
  const uint16_t client_port = test::in_netns(from.ns, [&]() -> uint16_t {
    loader::UniqueFd c(::socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    socklen_t len;
    auto addr = sockaddr_of(v6 ? to.ipv6 : to.ipv4, v6, port, &len);
    if (::connect(c.get(), reinterpret_cast<sockaddr*>(&addr), len) < 0)
      throw std::runtime_error("connect: " + std::string(std::strerror(errno)));
    std::vector<char> buf(1 << 16, 'r');
    size_t sent = 0;
    while (sent < bytes) {
      ssize_t n = ::write(c.get(), buf.data(), std::min(buf.size(), bytes - sent));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) throw std::runtime_error("write: " + std::string(std::strerror(errno)));
      sent += static_cast<size_t>(n);
    }
    sockaddr_storage local{};
    socklen_t llen = sizeof local;
    ::getsockname(c.get(), reinterpret_cast<sockaddr*>(&local), &llen);
    return v6 ? ntohs(reinterpret_cast<sockaddr_in6*>(&local)->sin6_port)
              : ntohs(reinterpret_cast<sockaddr_in*>(&local)->sin_port);
  });
  REQUIRE(server.get() == bytes);
  return client_port;
}

struct Received {
  retina_tcpretrans_event ev;
};

// The plugin's ring, drained by hand: each record is kept raw (netns,
// segment count) and fed to the pipeline, as the engine's reader would.
struct Rig {
  metrics::Registry registry;
  Pipeline pipeline{nullptr, &registry};
  std::shared_ptr<metrics::BasicAggregator> aggregator = std::make_shared<metrics::BasicAggregator>(registry);
  std::shared_ptr<Subscription> sub;
  PluginServices services;  // outlives the plugin
  TcpRetransPlugin plugin;
  std::vector<retina_tcpretrans_event> records;

  explicit Rig(TcpRetransOptions o) : plugin(o) {
    pipeline.add_sink(aggregator);
    sub = pipeline.subscribe("tcpretrans-test", 1 << 20, FlowFilter{.origins = {FlowSource::kTcpRetrans}});
    PluginContext ctx;
    ctx.registry = &registry;
    REQUIRE(services.provide(TcpRetransPlugin::kNeeds, ctx));
    auto st = plugin.init(ctx);
    if (!st) FAIL("init: " << st.error().message);
  }

  void drain() {
    struct Ctx {
      Rig* rig;
    } c{this};
    auto fn = [](void* user, std::span<const std::byte> rec) {
      auto* r = static_cast<Ctx*>(user)->rig;
      REQUIRE(rec.size() >= sizeof(retina_tcpretrans_event));
      retina_tcpretrans_event ev;
      std::memcpy(&ev, rec.data(), sizeof ev);
      r->records.push_back(ev);
      r->pipeline.process(rec, "tcpretrans");
    };
    for (auto* src : plugin.event_sources())
      while (src->drain(fn, &c, 4096)) {
      }
    pipeline.end_batch();
  }

  double metric(std::string_view name, const std::map<std::string, std::string>& labels) {
    auto p = test::parse_prom_text(registry.expose());
    REQUIRE(p.error.empty());
    return p.value(name, labels).value_or(-1);
  }
};

IpAddr addr_of(const uint8_t a[16]) {
  IpAddr ip;
  std::memcpy(ip.bytes.data(), a, 16);
  return ip;
}

}  // namespace

TEST_CASE("tcpretrans reports every retransmitted segment of a lossy transfer", "[priv][tcpretrans][traffic]") {
  RETINA_REQUIRE_PRIVILEGED();
  const bool raw = GENERATE(false, true);
  INFO((raw ? "raw_tp" : "tp_btf"));

  test::Node node({.pods = 2, .isolated = true});
  const test::Pod& sender = node.pod(0);
  const test::Pod& receiver = node.pod(1);
  const uint16_t port = static_cast<uint16_t>(20000 + ::getpid() % 20000);
  for (const char* tool : {"iptables", "ip6tables"})
    test::sh_in(receiver.ns,
                fmt::format("{} -A INPUT -p tcp --dport {} -m statistic --mode random --probability 0.1 -j DROP", tool, port));

  TcpRetransOptions o;
  o.force_raw_tp = raw;
  Rig rig(o);
  CHECK(rig.plugin.attach_kind() == (raw ? "raw_tp" : "tp_btf"));
  REQUIRE(rig.plugin.start());
  REQUIRE(rig.plugin.attached());
  const auto stats0 = *rig.plugin.stats();
  const uint32_t sender_ns = netns_inode(sender.ns);
  const uint32_t receiver_ns = netns_inode(receiver.ns);

  for (const bool v6 : {false, true}) {
    INFO((v6 ? "IPv6" : "IPv4"));
    node.wait_quiet(500ms);
    rig.drain();
    const size_t first = rig.records.size();
    const uint64_t segs0 = retrans_segs(sender.ns);
    const uint64_t fail0 = retrans_fail(sender.ns);

    const uint16_t cport = transfer(sender, receiver, v6, port, 4 << 20);
    node.wait_quiet(1500ms);  // the receiver's FIN may still be retransmitted
    const uint64_t segs = retrans_segs(sender.ns) - segs0;
    const uint64_t fails = retrans_fail(sender.ns) - fail0;
    rig.drain();

    const IpAddr s = *IpAddr::parse(v6 ? sender.ipv6 : sender.ipv4);
    const IpAddr d = *IpAddr::parse(v6 ? receiver.ipv6 : receiver.ipv4);
    uint64_t sender_records = 0, sender_segs = 0, receiver_records = 0;
    for (size_t i = first; i < rig.records.size(); ++i) {
      const auto& ev = rig.records[i];
      CHECK(ev.hdr.type == RETINA_EV_TCPRETRANS);
      CHECK(ev.tuple.proto == IPPROTO_TCP);
      if (ev.netns_ino == sender_ns) {
        ++sender_records;
        sender_segs += ev.segs;
        CHECK(addr_of(ev.tuple.saddr) == s);
        CHECK(addr_of(ev.tuple.daddr) == d);
        CHECK(ev.tuple.sport == cport);
        CHECK(ev.tuple.dport == port);
        CHECK(ev.tuple.family == (v6 ? 6 : 4));
        CHECK(ev.segs >= 1);
        CHECK((ev.tcp_flags & (RETINA_TCP_ACK | RETINA_TCP_SYN)) != 0);
        CHECK(ev.state >= 1);
        CHECK(ev.state <= 11);
      } else if (ev.netns_ino == receiver_ns) {
        ++receiver_records;  // its FIN (or SYN-ACK data) when our ACK was dropped
        CHECK(addr_of(ev.tuple.saddr) == d);
        CHECK(addr_of(ev.tuple.daddr) == s);
        CHECK(ev.tuple.sport == port);
        CHECK(ev.tuple.dport == cport);
      }
    }
    INFO("RetransSegs +" << segs << ", TCPRetransFail +" << fails << ", sender records " << sender_records
                         << " (segments " << sender_segs << "), receiver records " << receiver_records);
    WARN((v6 ? "IPv6" : "IPv4") << " (" << rig.plugin.attach_kind() << "): RetransSegs +" << segs << ", records "
                                << sender_records << " carrying " << sender_segs << " segments, receiver records "
                                << receiver_records);
    CHECK(segs > 0);
    CHECK(sender_records > 0);
    CHECK(fails == 0);  // a failed attempt is in RetransSegs but sends nothing
    CHECK(sender_segs == segs);
  }

  // Every record became a RETRANSMISSION flow and an egress count.
  std::vector<OwnedFlow> flows;
  while (rig.sub->pop_batch(flows, 1 << 16, 0ms)) {
  }
  REQUIRE(flows.size() == rig.records.size());
  for (size_t i = 0; i < flows.size(); ++i) {
    const Flow& f = flows[i].flow();
    CHECK(f.verdict == Verdict::RETRANSMISSION);
    CHECK(f.origin == FlowSource::kTcpRetrans);
    CHECK(f.direction == TrafficDirection::EGRESS);
    CHECK(f.proto == L4Protocol::kTCP);
    CHECK(f.src == addr_of(rig.records[i].tuple.saddr));
    CHECK(f.dst == addr_of(rig.records[i].tuple.daddr));
    CHECK(f.src_port == rig.records[i].tuple.sport);
    CHECK(f.dst_port == rig.records[i].tuple.dport);
    CHECK(f.tcp_state == rig.records[i].state);
    CHECK(f.tcp_flags == rig.records[i].tcp_flags);
  }
  const auto stats = *rig.plugin.stats();
  CHECK(stats.common[RETINA_STAT_RINGBUF_FULL] == 0);
  CHECK(stats.common[RETINA_STAT_REPORTS] - stats0.common[RETINA_STAT_REPORTS] == rig.records.size());
  CHECK(rig.metric(names::kTcpRetransCount, {{"direction", "egress"}}) == static_cast<double>(rig.records.size()));
  CHECK(rig.metric(names::kLostEvents, {{"type", "kernel"}, {"reason", "tcpretrans"}}) == 0);

  // The link goes with stop(); nothing was pinned.
  bpf_prog_info info{};
  uint32_t len = sizeof info;
  REQUIRE(bpf_obj_get_info_by_fd(rig.plugin.prog_fd(), &info, &len) == 0);
  const std::string ours = fmt::format("prog {}", info.id);
  CHECK(test::sh("bpftool link show").find(ours) != std::string::npos);
  rig.plugin.stop();
  CHECK_FALSE(rig.plugin.attached());
  CHECK(test::sh("bpftool link show").find(ours) == std::string::npos);
}
