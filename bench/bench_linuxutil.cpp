// linuxutil poll cost (informational): parsing the real /proc/net files of
// this machine, parsing synthetic socket tables of N sockets, reading N
// loopback connections through /proc/net/tcp versus sock_diag, and one full
// plugin poll of the host.
#include <benchmark/benchmark.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "plugins/linuxutil/file_io.hpp"
#include "plugins/linuxutil/linuxutil.hpp"
#include "plugins/linuxutil/proc_parsers.hpp"
#include "plugins/linuxutil/sock_diag.hpp"
#include "plugins/linuxutil/socket_summary.hpp"
#include "retina/metrics/registry.hpp"

using namespace retina;
using namespace retina::linuxutil;

namespace {

std::string slurp(const std::string& path) {
  std::string s;
  (void)read_text_file(path, s);
  return s;
}

template <class Parse>
void parse_file(benchmark::State& state, const char* path, Parse parse) {
  const std::string text = slurp(path);
  if (text.empty()) {
    state.SkipWithError((std::string(path) + " unreadable").c_str());
    return;
  }
  for (auto _ : state) {
    auto r = parse(text);
    benchmark::DoNotOptimize(r);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * text.size()));
}

// A /proc/net/tcp text with n established IPv4 sockets over 200 remotes.
std::string synthetic_tcp(int64_t n) {
  std::string s =
      "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n";
  for (int64_t i = 0; i < n; ++i)
    s += fmt::format("{:4}: 0400000A:{:04X} {:08X}:01BB 01 00000000:00000000 00:00000000 00000000     0        0 "
                     "{} 1 000000003e4a6b1c 20 4 30 10 -1\n",
                     i, 32768 + i % 28000, 0x0A000000u + static_cast<uint32_t>(i % 200), 100000 + i);
  return s;
}

// Holds n loopback TCP connections in a private network namespace entered
// by the calling thread; restores the original namespace on destruction.
class LoopbackConnections {
 public:
  explicit LoopbackConnections(int64_t n) {
    orig_ = UniqueFd(::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC));
    if (!orig_ || ::unshare(CLONE_NEWNET) != 0) {
      error_ = "unshare(CLONE_NEWNET) needs CAP_SYS_ADMIN";
      return;
    }
    entered_ = true;
    UniqueFd ctl(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    ifreq ifr{};
    std::strcpy(ifr.ifr_name, "lo");
    ::ioctl(ctl.get(), SIOCGIFFLAGS, &ifr);
    ifr.ifr_flags |= IFF_UP;
    ::ioctl(ctl.get(), SIOCSIFFLAGS, &ifr);
    UniqueFd listener(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    if (::bind(listener.get(), reinterpret_cast<sockaddr*>(&addr), len) != 0 || ::listen(listener.get(), 4096) != 0 ||
        ::getsockname(listener.get(), reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      error_ = "listen on 127.0.0.1 failed";
      return;
    }
    for (int64_t i = 0; i < n; ++i) {
      UniqueFd c(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
      if (!c || ::connect(c.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
        error_ = fmt::format("connection {} failed: {}", i, std::strerror(errno));
        return;
      }
      UniqueFd s(::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
      fds_.push_back(std::move(c));
      fds_.push_back(std::move(s));
    }
    fds_.push_back(std::move(listener));
  }
  ~LoopbackConnections() {
    fds_.clear();
    if (entered_) (void)::setns(orig_.get(), CLONE_NEWNET);
  }
  const std::string& error() const { return error_; }

 private:
  UniqueFd orig_;
  bool entered_ = false;
  std::vector<UniqueFd> fds_;
  std::string error_;
};

}  // namespace

static void BM_LinuxUtil_ParseSnmp(benchmark::State& state) {
  parse_file(state, "/proc/net/snmp", [](std::string_view t) { return parse_proc_tables(t); });
}
BENCHMARK(BM_LinuxUtil_ParseSnmp);

static void BM_LinuxUtil_ParseNetstat(benchmark::State& state) {
  parse_file(state, "/proc/net/netstat", [](std::string_view t) { return parse_proc_tables(t); });
}
BENCHMARK(BM_LinuxUtil_ParseNetstat);

static void BM_LinuxUtil_ParseSnmp6(benchmark::State& state) {
  parse_file(state, "/proc/net/snmp6", [](std::string_view t) { return parse_proc_snmp6(t); });
}
BENCHMARK(BM_LinuxUtil_ParseSnmp6);

// Parse and tally only; the kernel's cost of producing the text is below.
static void BM_LinuxUtil_ParseTcpTable(benchmark::State& state) {
  const std::string text = synthetic_tcp(state.range(0));
  for (auto _ : state) {
    auto socks = parse_proc_sockets(text);
    TcpTally tally;
    tally.add(*socks);
    auto sum = std::move(tally).finish(100);
    benchmark::DoNotOptimize(sum);
  }
  state.SetItemsProcessed(state.iterations() * state.range(0));
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * text.size()));
}
BENCHMARK(BM_LinuxUtil_ParseTcpTable)->Arg(1000)->Arg(10000)->Arg(100000)->Unit(benchmark::kMicrosecond);

// End to end with the kernel: n connections (2n sockets) read through
// /proc/thread-self/net/tcp{,6} ...
static void BM_LinuxUtil_SocketsProcFiles(benchmark::State& state) {
  LoopbackConnections conns(state.range(0));
  if (!conns.error().empty()) {
    state.SkipWithError(conns.error().c_str());
    return;
  }
  std::string buf;
  for (auto _ : state) {
    TcpTally tally;
    for (const char* f : {"/proc/thread-self/net/tcp", "/proc/thread-self/net/tcp6"}) {
      (void)read_text_file(f, buf);
      tally.add(*parse_proc_sockets(buf));
    }
    auto sum = std::move(tally).finish(100);
    benchmark::DoNotOptimize(sum);
  }
  state.SetItemsProcessed(state.iterations() * state.range(0) * 2);
}
BENCHMARK(BM_LinuxUtil_SocketsProcFiles)->Arg(1000)->Arg(5000)->Unit(benchmark::kMicrosecond);

// ... and through NETLINK_SOCK_DIAG.
static void BM_LinuxUtil_SocketsSockDiag(benchmark::State& state) {
  LoopbackConnections conns(state.range(0));
  if (!conns.error().empty()) {
    state.SkipWithError(conns.error().c_str());
    return;
  }
  for (auto _ : state) {
    auto socks = sock_diag_dump(IPPROTO_TCP);
    if (!socks) {
      state.SkipWithError(socks.error().message.c_str());
      return;
    }
    TcpTally tally;
    tally.add(*socks);
    auto sum = std::move(tally).finish(100);
    benchmark::DoNotOptimize(sum);
  }
  state.SetItemsProcessed(state.iterations() * state.range(0) * 2);
}
BENCHMARK(BM_LinuxUtil_SocketsSockDiag)->Arg(1000)->Arg(5000)->Unit(benchmark::kMicrosecond);

// One reconcile() of the plugin on this host: every /proc/net file, the
// socket tables, sysfs statistics and ethtool of every interface.
static void BM_LinuxUtil_HostPoll(benchmark::State& state) {
  metrics::Registry registry;
  PluginContext ctx;
  ctx.registry = &registry;
  auto plugin = make_linuxutil_plugin();
  if (!plugin->init(ctx) || !plugin->start()) {
    state.SkipWithError("linuxutil init failed");
    return;
  }
  for (auto _ : state) benchmark::DoNotOptimize(plugin->reconcile());
  plugin->stop();
}
BENCHMARK(BM_LinuxUtil_HostPoll)->Unit(benchmark::kMicrosecond);
