// linuxutil against the live kernel:
//  - every exported /proc/net counter lies between two readings of the same
//    file taken just before and just after the poll (counters only grow);
//  - tcp_state, tcp_connection_remote and the Tcp open counters in a fresh
//    network namespace holding a known set of sockets, through both the
//    /proc/net files and sock_diag;
//  - the ethtool ioctl on a veth pair in temporary namespaces, compared
//    with `ethtool -S`, and interface_stats for it end to end.
// Every namespace and veth is created with a unique name and removed by RAII.
#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <filesystem>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "plugins/linuxutil/ethtool.hpp"
#include "plugins/linuxutil/file_io.hpp"
#include "plugins/linuxutil/linuxutil.hpp"
#include "retina/metrics/names.hpp"
#include "retina/metrics/registry.hpp"
#include "support/privileged.hpp"
#include "support/prom_text.hpp"

using namespace retina;
using linuxutil::UniqueFd;
namespace names = retina::metrics::names;

namespace {

// ---- small process and thread helpers ---------------------------------------

std::string capture(const std::string& cmd) {
  std::string out;
  FILE* p = ::popen(cmd.c_str(), "r");
  if (!p) return out;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  ::pclose(p);
  return out;
}

void run(const std::string& cmd) {
  INFO(cmd);
  REQUIRE(std::system((cmd + " 2>&1").c_str()) == 0);
}

// Runs fn on a new thread (which may change its namespaces without touching
// the test's) and hands back its Result.
template <class Fn>
auto on_thread(Fn&& fn) -> decltype(fn()) {
  std::optional<decltype(fn())> out;
  std::thread t([&] {
    try {
      out.emplace(fn());
    } catch (const std::exception& e) {
      out.emplace(unexpected(Error::internal(std::string("exception: ") + e.what())));
    }
  });
  t.join();
  return std::move(*out);
}

// A network namespace from `ip netns add`, deleted with everything in it.
class NamedNetns {
 public:
  explicit NamedNetns(std::string name) : name_(std::move(name)) {
    std::system(fmt::format("ip netns del {} 2>/dev/null", name_).c_str());  // a leftover of a crashed run
    run("ip netns add " + name_);
    created_ = true;
  }
  ~NamedNetns() {
    if (created_) std::system(fmt::format("ip netns del {} 2>/dev/null", name_).c_str());
  }
  NamedNetns(const NamedNetns&) = delete;
  NamedNetns& operator=(const NamedNetns&) = delete;
  const std::string& name() const { return name_; }

 private:
  std::string name_;
  bool created_ = false;
};

Status enter_netns(const std::string& name) {
  UniqueFd fd(::open(("/run/netns/" + name).c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return unexpected(Error::system("open(/run/netns/" + name + ")", errno));
  if (::setns(fd.get(), CLONE_NEWNET) != 0) return unexpected(Error::system("setns(" + name + ")", errno));
  return ok();
}

// A private mount namespace for this thread with a sysfs of its current
// network namespace on /sys, so /sys/class/net lists that namespace.
Status remount_sys_for_this_netns() {
  if (::unshare(CLONE_NEWNS) != 0) return unexpected(Error::system("unshare(CLONE_NEWNS)", errno));
  if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0)
    return unexpected(Error::system("mount(/, MS_REC|MS_PRIVATE)", errno));
  if (::mount("sysfs", "/sys", "sysfs", 0, nullptr) != 0) return unexpected(Error::system("mount(sysfs, /sys)", errno));
  return ok();
}

// Initializes the plugin, polls once (start) and returns the exposition.
Result<std::string> poll_and_scrape(const std::string& proc, const std::string& sys, LinuxUtilOptions opts) {
  metrics::Registry registry;
  PluginContext ctx;
  ctx.registry = &registry;
  ctx.proc_root = proc;
  ctx.sys_root = sys;
  auto plugin = make_linuxutil_plugin(opts);
  if (auto st = plugin->init(ctx); !st) return unexpected(st.error());
  if (auto st = plugin->start(); !st) return unexpected(st.error());
  std::string text = registry.expose();
  plugin->stop();
  return text;
}

// ---- reading the kernel's files independently of the plugin's parsers -------

// Signed 128-bit so that u64 counters and Tcp MaxConn (-1) compare exactly.
using Num = __int128;

Num to_num(std::string_view s) {
  bool neg = !s.empty() && s[0] == '-';
  if (neg) s.remove_prefix(1);
  Num v = 0;
  for (char c : s) v = v * 10 + (c - '0');
  return neg ? -v : v;
}

std::string to_string(Num v) {
  if (v < 0) return "-" + to_string(-v);
  std::string s;
  do {
    s.insert(s.begin(), static_cast<char>('0' + static_cast<int>(v % 10)));
    v /= 10;
  } while (v);
  return s;
}

std::string read_file(const std::string& path) {
  std::string out;
  REQUIRE(linuxutil::read_text_file(path, out));
  return out;
}

// table -> name -> value, from "Prefix: names" / "Prefix: values" pairs.
std::map<std::string, std::map<std::string, Num>> read_pairs(const std::string& path) {
  std::map<std::string, std::map<std::string, Num>> out;
  std::istringstream in(read_file(path));
  std::string header, values;
  while (std::getline(in, header) && std::getline(in, values)) {
    std::istringstream h(header), v(values);
    std::string table, vt, name, value;
    h >> table;
    v >> vt;
    REQUIRE(table == vt);
    table.pop_back();  // ':'
    while (h >> name && v >> value) out[table][name] = to_num(value);
  }
  return out;
}

std::map<std::string, Num> read_snmp6() {
  std::map<std::string, Num> out;
  std::istringstream in(read_file("/proc/net/snmp6"));
  std::string name, value;
  while (in >> name >> value) out[name] = to_num(value);
  return out;
}

// `ethtool -S` output: "NIC statistics:" then "     name: value" lines.
std::vector<std::pair<std::string, Num>> ethtool_cli(const std::string& prefix, const std::string& ifname) {
  std::vector<std::pair<std::string, Num>> out;
  std::istringstream in(capture(prefix + "ethtool -S " + ifname + " 2>/dev/null"));
  std::string line;
  while (std::getline(in, line)) {
    const size_t colon = line.rfind(": ");
    if (colon == std::string::npos) continue;
    const size_t start = line.find_first_not_of(' ');
    out.emplace_back(line.substr(start, colon - start), to_num(line.substr(colon + 2)));
  }
  return out;
}

// ---- reading the exposition --------------------------------------------------

struct Sample {
  std::map<std::string, std::string> labels;
  std::string value;
};

// Samples of one family; values kept as text so 64-bit counters stay exact.
std::vector<Sample> samples(const std::string& text, std::string_view family) {
  std::vector<Sample> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (!line.starts_with(std::string(family) + "{")) continue;
    Sample s;
    size_t pos = family.size() + 1;
    while (line[pos] != '}') {
      const size_t eq = line.find("=\"", pos);
      const size_t end = line.find('"', eq + 2);
      s.labels[line.substr(pos, eq - pos)] = line.substr(eq + 2, end - eq - 2);
      pos = end + 1;
      if (line[pos] == ',') ++pos;
    }
    s.value = line.substr(pos + 2);
    out.push_back(std::move(s));
  }
  return out;
}

// Statistics that are gauges in the kernel tables: they may go down, so the
// before/after bracket does not hold for them.
bool is_gauge_stat(const std::string& name) {
  return name == "RtoAlgorithm" || name == "RtoMin" || name == "RtoMax" || name == "MaxConn" ||
         name == "Forwarding" || name == "DefaultTTL" || name.find("CurrEstab") != std::string::npos ||
         name == "ACTIVE";
}

// Checks every exported statistic of `family` against the union of
// `tables` before and after, and that nothing in those tables is missing.
void check_bracketed(const std::string& text, std::string_view family,
                     const std::map<std::string, Num>& before, const std::map<std::string, Num>& after) {
  std::set<std::string> exported;
  for (const Sample& s : samples(text, family)) {
    const std::string& name = s.labels.at("statistic_name");
    exported.insert(name);
    if (name == "ACTIVE") continue;
    INFO(family << " " << name << " = " << s.value);
    REQUIRE(before.count(name));
    REQUIRE(after.count(name));
    const Num v = to_num(s.value);
    if (is_gauge_stat(name)) continue;
    INFO("before " << to_string(before.at(name)) << ", after " << to_string(after.at(name)));
    CHECK(before.at(name) <= v);
    CHECK(v <= after.at(name));
  }
  for (const auto& [name, v] : before) {
    INFO(family << " misses " << name);
    CHECK(exported.count(name));
  }
}

std::map<std::string, Num> merge(std::initializer_list<const std::map<std::string, Num>*> maps) {
  std::map<std::string, Num> out;
  for (const auto* m : maps) out.insert(m->begin(), m->end());
  return out;
}

std::map<std::string, Num> with_prefix(const std::map<std::string, Num>& m, std::string_view prefix) {
  std::map<std::string, Num> out;
  for (const auto& [k, v] : m)
    if (k.starts_with(prefix)) out[k] = v;
  return out;
}

// Host interfaces but lo, and their sysfs counters that linuxutil keeps.
std::map<std::string, std::map<std::string, Num>> read_sysfs_stats() {
  std::map<std::string, std::map<std::string, Num>> out;
  auto ifaces = linuxutil::list_dir("/sys/class/net", linuxutil::EntryKind::kDirectory);
  REQUIRE(ifaces);
  for (const std::string& i : *ifaces) {
    if (i == "lo") continue;
    auto files = linuxutil::list_dir("/sys/class/net/" + i + "/statistics");
    if (!files) continue;
    for (const std::string& f : *files) {
      if (!linuxutil::is_error_or_drop_key(f) && f != "rx_nohandler") continue;
      std::string text;
      if (linuxutil::read_text_file("/sys/class/net/" + i + "/statistics/" + f, text))
        out[i][f] = to_num(text.substr(0, text.find('\n')));
    }
  }
  return out;
}

// ---- sockets in a fresh namespace ------------------------------------------

Status set_up(int fd, const char* ifname) {
  ifreq ifr{};
  std::strncpy(ifr.ifr_name, ifname, IFNAMSIZ - 1);
  if (::ioctl(fd, SIOCGIFFLAGS, &ifr) != 0) return unexpected(Error::system("SIOCGIFFLAGS", errno));
  ifr.ifr_flags |= IFF_UP;
  if (::ioctl(fd, SIOCSIFFLAGS, &ifr) != 0) return unexpected(Error::system("SIOCSIFFLAGS", errno));
  return ok();
}

Status add_v4_alias(int fd, const char* label, const char* addr) {
  ifreq ifr{};
  std::strncpy(ifr.ifr_name, label, IFNAMSIZ - 1);
  auto* sin = reinterpret_cast<sockaddr_in*>(&ifr.ifr_addr);
  sin->sin_family = AF_INET;
  ::inet_pton(AF_INET, addr, &sin->sin_addr);
  if (::ioctl(fd, SIOCSIFADDR, &ifr) != 0) return unexpected(Error::system(std::string("SIOCSIFADDR ") + label, errno));
  return ok();
}

// addr:port as a sockaddr of `family`; returns its length.
socklen_t make_sockaddr(int family, const char* addr, uint16_t port, sockaddr_storage& ss) {
  ss = {};
  if (family == AF_INET) {
    auto* a = reinterpret_cast<sockaddr_in*>(&ss);
    a->sin_family = AF_INET;
    a->sin_port = htons(port);
    ::inet_pton(AF_INET, addr, &a->sin_addr);
    return sizeof(sockaddr_in);
  }
  auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
  a->sin6_family = AF_INET6;
  a->sin6_port = htons(port);
  ::inet_pton(AF_INET6, addr, &a->sin6_addr);
  return sizeof(sockaddr_in6);
}

Result<UniqueFd> tcp_listener(int family, const char* addr, uint16_t& port) {
  UniqueFd fd(::socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return unexpected(Error::system("socket", errno));
  if (family == AF_INET6) {
    int one = 1;
    ::setsockopt(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
  }
  sockaddr_storage ss;
  socklen_t len = make_sockaddr(family, addr, 0, ss);
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&ss), len) != 0)
    return unexpected(Error::system(fmt::format("bind({})", addr), errno));
  if (::listen(fd.get(), 64) != 0) return unexpected(Error::system("listen", errno));
  if (::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&ss), &len) != 0)
    return unexpected(Error::system("getsockname", errno));
  port = ntohs(family == AF_INET ? reinterpret_cast<sockaddr_in*>(&ss)->sin_port
                                 : reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port);
  return fd;
}

// Connects to addr:port and accepts the connection: two ESTABLISHED sockets.
Status connect_pair(int listener, int family, const char* addr, uint16_t port, std::vector<UniqueFd>& keep) {
  UniqueFd c(::socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!c) return unexpected(Error::system("socket", errno));
  sockaddr_storage ss;
  const socklen_t len = make_sockaddr(family, addr, port, ss);
  if (::connect(c.get(), reinterpret_cast<sockaddr*>(&ss), len) != 0)
    return unexpected(Error::system(fmt::format("connect({})", addr), errno));
  UniqueFd s(::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC));
  if (!s) return unexpected(Error::system("accept", errno));
  keep.push_back(std::move(c));
  keep.push_back(std::move(s));
  return ok();
}

struct NetnsScrapes {
  std::string files, sock_diag;
  std::string all_ips;  // files, with Retina's address="AllIPs"
};

// In a new network namespace (this thread only): lo up with 192.0.2.1 as
// an extra address, listeners on 0.0.0.0 and [::1], 3 connections to
// 192.0.2.1, 2 to 127.0.0.1, 2 to [::1], and 2 UDP sockets. Then poll
// through the /proc files and through sock_diag.
Result<NetnsScrapes> scrape_fresh_netns(const std::string& empty_sys) {
  if (::unshare(CLONE_NEWNET) != 0) return unexpected(Error::system("unshare(CLONE_NEWNET)", errno));
  UniqueFd ctl(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!ctl) return unexpected(Error::system("socket", errno));
  if (auto st = set_up(ctl.get(), "lo"); !st) return unexpected(st.error());
  if (auto st = add_v4_alias(ctl.get(), "lo:1", "192.0.2.1"); !st) return unexpected(st.error());

  uint16_t p4 = 0, p6 = 0;
  auto l4 = tcp_listener(AF_INET, "0.0.0.0", p4);
  if (!l4) return unexpected(l4.error());
  auto l6 = tcp_listener(AF_INET6, "::1", p6);
  if (!l6) return unexpected(l6.error());
  std::vector<UniqueFd> conns;
  for (int i = 0; i < 3; ++i)
    if (auto st = connect_pair(l4->get(), AF_INET, "192.0.2.1", p4, conns); !st) return unexpected(st.error());
  for (int i = 0; i < 2; ++i)
    if (auto st = connect_pair(l4->get(), AF_INET, "127.0.0.1", p4, conns); !st) return unexpected(st.error());
  for (int i = 0; i < 2; ++i)
    if (auto st = connect_pair(l6->get(), AF_INET6, "::1", p6, conns); !st) return unexpected(st.error());
  UniqueFd u4(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0)), u6(::socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  sockaddr_storage any4, any6;
  const socklen_t len4 = make_sockaddr(AF_INET, "0.0.0.0", 0, any4);
  const socklen_t len6 = make_sockaddr(AF_INET6, "::", 0, any6);
  if (::bind(u4.get(), reinterpret_cast<sockaddr*>(&any4), len4) != 0 ||
      ::bind(u6.get(), reinterpret_cast<sockaddr*>(&any6), len6) != 0)
    return unexpected(Error::system("bind(udp)", errno));

  NetnsScrapes out;
  LinuxUtilOptions opts;
  opts.per_address = true;  // tcpConnectionRemotePerAddress; AllIPs is checked below
  opts.ethtool = false;
  opts.sockets = LinuxUtilOptions::Sockets::kProcFiles;
  // /proc/thread-self/net is this thread's namespace; /proc/net would be the process's.
  auto files = poll_and_scrape("/proc/thread-self", empty_sys, opts);
  if (!files) return unexpected(files.error());
  out.files = std::move(*files);
  opts.sockets = LinuxUtilOptions::Sockets::kSockDiag;
  auto diag = poll_and_scrape("/proc/thread-self", empty_sys, opts);
  if (!diag) return unexpected(diag.error());
  out.sock_diag = std::move(*diag);
  opts.per_address = false;  // Retina's address="AllIPs"
  auto all = poll_and_scrape("/proc/thread-self", empty_sys, opts);
  if (!all) return unexpected(all.error());
  out.all_ips = std::move(*all);
  return out;
}

std::string stat_line(std::string_view family, std::string_view name, std::string_view v) {
  return fmt::format("{}{{statistic_name=\"{}\"}} {}", family, name, v);
}

}  // namespace

TEST_CASE("linuxutil counters lie between readings of the kernel files taken around the poll", "[priv][linuxutil]") {
  RETINA_REQUIRE_PRIVILEGED();
  const auto snmp0 = read_pairs("/proc/net/snmp");
  const auto netstat0 = read_pairs("/proc/net/netstat");
  const auto snmp6_0 = read_snmp6();
  const auto sysfs0 = read_sysfs_stats();
  const auto eth0_name = std::string("eth0");
  const bool have_eth0 = sysfs0.count(eth0_name) > 0;
  const auto ethtool0 = have_eth0 ? ethtool_cli("", eth0_name) : decltype(ethtool_cli("", "")){};

  // The real roots: sock_diag for sockets and the ethtool ioctl; per
  // interface (interfaceStatsPerInterface), so each is bracketed on its own.
  LinuxUtilOptions per_interface;
  per_interface.per_interface = true;
  auto text = poll_and_scrape("/proc", "/sys", per_interface);
  REQUIRE(text);

  const auto snmp1 = read_pairs("/proc/net/snmp");
  const auto netstat1 = read_pairs("/proc/net/netstat");
  const auto snmp6_1 = read_snmp6();
  const auto sysfs1 = read_sysfs_stats();
  const auto ethtool1 = have_eth0 ? ethtool_cli("", eth0_name) : decltype(ethtool_cli("", "")){};
  INFO(*text);

  check_bracketed(*text, names::kTcpConnectionStats,
                  merge({&snmp0.at("Tcp"), &netstat0.at("TcpExt"), &netstat0.at("MPTcpExt")}),
                  merge({&snmp1.at("Tcp"), &netstat1.at("TcpExt"), &netstat1.at("MPTcpExt")}));
  const auto ip6_0 = with_prefix(snmp6_0, "Ip6"), ip6_1 = with_prefix(snmp6_1, "Ip6");
  check_bracketed(*text, names::kIpConnectionStats, merge({&snmp0.at("Ip"), &netstat0.at("IpExt"), &ip6_0}),
                  merge({&snmp1.at("Ip"), &netstat1.at("IpExt"), &ip6_1}));
  const auto udp6_0 = with_prefix(snmp6_0, "Udp6"), udp6_1 = with_prefix(snmp6_1, "Udp6");
  check_bracketed(*text, names::kUdpConnectionStats, merge({&snmp0.at("Udp"), &udp6_0}),
                  merge({&snmp1.at("Udp"), &udp6_1}));
  // Tcp MaxConn is the kernel's -1, exported signed.
  const auto tcp_lines = test::sample_lines(*text, names::kTcpConnectionStats);
  CHECK(std::count(tcp_lines.begin(), tcp_lines.end(), stat_line(names::kTcpConnectionStats, "MaxConn", "-1")) == 1);

  // Interface counters: the sysfs files and `ethtool -S` bracket them too.
  size_t checked = 0;
  const auto iface_samples = samples(*text, names::kInterfaceStats);
  for (const Sample& s : iface_samples) {
    const std::string& iface = s.labels.at("interface_name");
    const std::string& stat = s.labels.at("statistic_name");
    INFO(iface << " " << stat << " = " << s.value);
    CHECK(iface != "lo");
    const Num v = to_num(s.value);
    if (sysfs0.count(iface) && sysfs0.at(iface).count(stat) && sysfs1.count(iface) && sysfs1.at(iface).count(stat)) {
      // Unless ethtool reported the same name (then the value is ethtool's).
      const bool from_ethtool = iface == eth0_name && std::any_of(ethtool0.begin(), ethtool0.end(),
                                                                  [&](const auto& e) { return e.first == stat; });
      if (!from_ethtool) {
        CHECK(sysfs0.at(iface).at(stat) <= v);
        CHECK(v <= sysfs1.at(iface).at(stat));
        ++checked;
        continue;
      }
    }
    if (iface == eth0_name) {
      auto b = std::find_if(ethtool0.begin(), ethtool0.end(), [&](const auto& e) { return e.first == stat; });
      auto a = std::find_if(ethtool1.begin(), ethtool1.end(), [&](const auto& e) { return e.first == stat; });
      REQUIRE(b != ethtool0.end());
      REQUIRE(a != ethtool1.end());
      CHECK(b->second <= v);
      CHECK(v <= a->second);
      ++checked;
    }
  }
  // Every interface present throughout shows up with all its kept sysfs counters.
  for (const auto& [iface, stats] : sysfs0) {
    if (!sysfs1.count(iface)) continue;  // another test's interface, gone meanwhile
    for (const auto& [stat, v] : stats) {
      INFO(iface << " " << stat);
      // Named copies: clang 14 cannot capture structured bindings.
      const std::string& name = iface;
      const std::string& statistic = stat;
      CHECK(std::any_of(iface_samples.begin(), iface_samples.end(), [&](const Sample& s) {
        return s.labels.at("interface_name") == name && s.labels.at("statistic_name") == statistic;
      }));
    }
  }
  CHECK(checked > 0);
  // The socket tables came through sock_diag without errors.
  CHECK(text->find(fmt::format("{}{{plugin=\"linuxutil\",source=\"tcp_sockets\"}} 0", names::kPluginSourceErrors)) !=
        std::string::npos);
  CHECK(text->find(fmt::format("{}{{plugin=\"linuxutil\",source=\"ethtool\"}} 0", names::kPluginSourceErrors)) !=
        std::string::npos);
  CHECK(samples(*text, names::kTcpState).size() == 11);
}

TEST_CASE("tcp_state and tcp_connection_remote count the sockets of a fresh namespace exactly", "[priv][linuxutil]") {
  RETINA_REQUIRE_PRIVILEGED();
  // No interfaces to look at in this test: an empty class/net.
  const std::filesystem::path sys =
      std::filesystem::temp_directory_path() / fmt::format("retina-lu-sys-{}", ::getpid());
  std::filesystem::create_directories(sys / "class/net");
  struct Cleanup {
    std::filesystem::path p;
    ~Cleanup() {
      std::error_code ec;
      std::filesystem::remove_all(p, ec);
    }
  } cleanup{sys};

  auto scrapes = on_thread([&] { return scrape_fresh_netns(sys.string()); });
  INFO((scrapes ? std::string() : scrapes.error().message));
  REQUIRE(scrapes);

  for (const std::string* text : {&scrapes->files, &scrapes->sock_diag}) {
    INFO((text == &scrapes->files ? "through /proc/thread-self/net files" : "through sock_diag"));
    INFO(*text);
    // 7 connections, both ends in this namespace: 14 ESTABLISHED; 2 listeners.
    std::vector<std::string> expected;
    for (const char* st : {"ESTABLISHED", "SYN_SENT", "SYN_RECV", "FIN_WAIT1", "FIN_WAIT2", "TIME_WAIT", "CLOSE",
                           "CLOSE_WAIT", "LAST_ACK", "LISTEN", "CLOSING"}) {
      const std::string_view s(st);
      expected.push_back(fmt::format("networkobservability_tcp_state{{state=\"{}\"}} {}", s,
                                     s == "ESTABLISHED" ? 14 : s == "LISTEN" ? 2 : 0));
    }
    CHECK(test::sample_lines(*text, names::kTcpState) == expected);
    // Only 192.0.2.1 is not loopback; both ends of each of its 3 connections see it.
    CHECK(test::sample_lines(*text, names::kTcpConnectionRemote) ==
          std::vector<std::string>{"networkobservability_tcp_connection_remote{address=\"192.0.2.1\"} 6"});
    if (text == &scrapes->files)
      CHECK(test::sample_lines(scrapes->all_ips, names::kTcpConnectionRemote) ==
            std::vector<std::string>{"networkobservability_tcp_connection_remote{address=\"AllIPs\"} 6"});
    const auto tcp = test::sample_lines(*text, names::kTcpConnectionStats);
    CHECK(std::count(tcp.begin(), tcp.end(), stat_line(names::kTcpConnectionStats, "ActiveOpens", "7")) == 1);
    CHECK(std::count(tcp.begin(), tcp.end(), stat_line(names::kTcpConnectionStats, "PassiveOpens", "7")) == 1);
    CHECK(std::count(tcp.begin(), tcp.end(), stat_line(names::kTcpConnectionStats, "CurrEstab", "14")) == 1);
    const auto udp = test::sample_lines(*text, names::kUdpConnectionStats);
    CHECK(std::count(udp.begin(), udp.end(), stat_line(names::kUdpConnectionStats, "ACTIVE", "2")) == 1);
  }
}

TEST_CASE("ethtool statistics of a veth match `ethtool -S`, and interface_stats exports them", "[priv][linuxutil]") {
  RETINA_REQUIRE_PRIVILEGED();
  const int pid = ::getpid();
  NamedNetns a(fmt::format("retina-lu-{}-a", pid)), b(fmt::format("retina-lu-{}-b", pid));
  const std::string va = fmt::format("rlua{}", pid), vb = fmt::format("rlub{}", pid);
  // No IPv6: router and neighbour solicitations would move counters mid-test.
  for (const NamedNetns* ns : {&a, &b})
    run(fmt::format("ip netns exec {} sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1",
                    ns->name()));
  run(fmt::format("ip link add {} netns {} type veth peer name {} netns {}", va, a.name(), vb, b.name()));
  run(fmt::format("ip -n {} addr add 198.18.0.1/30 dev {} && ip -n {} link set {} up", a.name(), va, a.name(), va));
  run(fmt::format("ip -n {} addr add 198.18.0.2/30 dev {} && ip -n {} link set {} up", b.name(), vb, b.name(), vb));
  // A second pair, so that all_interfaces has something to sum.
  const std::string va2 = fmt::format("rluc{}", pid), vb2 = fmt::format("rlud{}", pid);
  run(fmt::format("ip link add {} netns {} type veth peer name {} netns {}", va2, a.name(), vb2, b.name()));
  run(fmt::format("ip -n {} link set {} up && ip -n {} link set {} up", a.name(), va2, b.name(), vb2));

  // Ten datagrams from a to b over the veth.
  auto receiver = on_thread([&]() -> Result<UniqueFd> {
    if (auto st = enter_netns(b.name()); !st) return unexpected(st.error());
    UniqueFd fd(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    sockaddr_storage addr;
    const socklen_t len = make_sockaddr(AF_INET, "198.18.0.2", 9999, addr);
    if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), len) != 0)
      return unexpected(Error::system("bind", errno));
    timeval tv{5, 0};
    ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return fd;
  });
  REQUIRE(receiver);
  auto sent = on_thread([&]() -> Result<int> {
    if (auto st = enter_netns(a.name()); !st) return unexpected(st.error());
    UniqueFd fd(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    sockaddr_storage to;
    const socklen_t len = make_sockaddr(AF_INET, "198.18.0.2", 9999, to);
    int n = 0;
    for (int i = 0; i < 10; ++i)
      if (::sendto(fd.get(), "x", 1, 0, reinterpret_cast<sockaddr*>(&to), len) == 1) ++n;
    return n;
  });
  REQUIRE(sent);
  REQUIRE(*sent == 10);
  char buf[16];
  for (int i = 0; i < 10; ++i) REQUIRE(::recv(receiver->get(), buf, sizeof buf, 0) == 1);

  // Five Ethernet frames of an ethertype no protocol handles, from b's end:
  // the kernel drops them on arrival at va, so its drop counters read 5.
  const auto inject = [&](const std::string& from, int count) { return on_thread([&]() -> Result<int> {
    if (auto st = enter_netns(b.name()); !st) return unexpected(st.error());
    UniqueFd fd(::socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0));
    if (!fd) return unexpected(Error::system("socket(AF_PACKET)", errno));
    sockaddr_ll ll{};
    ll.sll_family = AF_PACKET;
    ll.sll_ifindex = static_cast<int>(::if_nametoindex(from.c_str()));
    ll.sll_halen = 6;
    std::memset(ll.sll_addr, 0xff, 6);
    uint8_t frame[60] = {};
    std::memset(frame, 0xff, 6);                                       // broadcast
    const uint8_t src[6] = {0x02, 0, 0, 0, 0, 0x01};
    std::memcpy(frame + 6, src, 6);
    frame[12] = 0x88;  // 0x88B5: IEEE 802 local experimental ethertype
    frame[13] = 0xB5;
    int n = 0;
    for (int i = 0; i < count; ++i)
      if (::sendto(fd.get(), frame, sizeof frame, 0, reinterpret_cast<sockaddr*>(&ll), sizeof ll) == sizeof frame) ++n;
    return n;
  }); };
  auto injected = inject(vb, 5);
  REQUIRE(injected);
  REQUIRE(*injected == 5);
  auto injected2 = inject(vb2, 3);
  REQUIRE(injected2);
  REQUIRE(*injected2 == 3);

  const auto read_mine = [&] {
    return on_thread([&]() -> Result<std::vector<linuxutil::EthtoolStat>> {
      if (auto st = enter_netns(a.name()); !st) return unexpected(st.error());
      auto reader = linuxutil::EthtoolReader::open();
      if (!reader) return unexpected(reader.error());
      return reader->stats(va);
    });
  };
  const auto mine0 = read_mine();
  const auto cli = ethtool_cli(fmt::format("ip netns exec {} ", a.name()), va);
  const auto mine1 = read_mine();
  REQUIRE(mine0);
  REQUIRE(mine1);
  REQUIRE(!cli.empty());
  REQUIRE(mine0->size() == cli.size());
  REQUIRE(mine1->size() == cli.size());
  for (size_t i = 0; i < cli.size(); ++i) {
    INFO(cli[i].first);
    CHECK((*mine0)[i].name == cli[i].first);
    if ((*mine0)[i].value == (*mine1)[i].value) {
      CHECK(Num((*mine0)[i].value) == cli[i].second);  // did not move: exact
    } else {
      CHECK(Num((*mine0)[i].value) <= cli[i].second);
      CHECK(cli[i].second <= Num((*mine1)[i].value));
    }
  }
  // An interface that does not exist is reported as gone, not as a failure to count.
  auto gone = on_thread([&]() -> Result<std::vector<linuxutil::EthtoolStat>> {
    if (auto st = enter_netns(a.name()); !st) return unexpected(st.error());
    auto reader = linuxutil::EthtoolReader::open();
    if (!reader) return unexpected(reader.error());
    return reader->stats("rlu-missing");
  });
  REQUIRE_FALSE(gone);
  CHECK(gone.error().code == ENODEV);

  // The plugin in namespace a, with a sysfs of that namespace on /sys: per
  // interface (interfaceStatsPerInterface) and Retina's all_interfaces.
  std::string all_text;
  auto text = on_thread([&]() -> Result<std::string> {
    if (auto st = enter_netns(a.name()); !st) return unexpected(st.error());
    if (auto st = remount_sys_for_this_netns(); !st) return unexpected(st.error());
    LinuxUtilOptions per_interface;
    per_interface.per_interface = true;
    auto t = poll_and_scrape("/proc/thread-self", "/sys", per_interface);
    if (!t) return t;
    auto all = poll_and_scrape("/proc/thread-self", "/sys", LinuxUtilOptions{});
    if (!all) return all;
    all_text = std::move(*all);
    return t;
  });
  INFO((text ? *text : text.error().message));
  REQUIRE(text);

  // Expected: the ethtool keys kept, in driver order, then the kept sysfs
  // counters ethtool did not name, sorted; values as ethtool and sysfs say.
  std::vector<std::string> expected;
  std::set<std::string> from_ethtool;
  for (const auto& [k, v] : cli) {
    if (!linuxutil::is_error_or_drop_key(k)) continue;
    from_ethtool.insert(k);
    expected.push_back(fmt::format(
        "networkobservability_interface_stats{{interface_name=\"{}\",statistic_name=\"{}\"}} {}", va, k, to_string(v)));
  }
  REQUIRE(!from_ethtool.empty());
  std::istringstream files(capture(fmt::format("ip netns exec {} ls /sys/class/net/{}/statistics", a.name(), va)));
  std::vector<std::string> stat_files;
  for (std::string f; files >> f;) stat_files.push_back(f);
  std::sort(stat_files.begin(), stat_files.end());
  REQUIRE(!stat_files.empty());
  for (const std::string& f : stat_files) {
    if ((!linuxutil::is_error_or_drop_key(f) && f != "rx_nohandler") || from_ethtool.count(f)) continue;
    const std::string v = capture(fmt::format("ip netns exec {} cat /sys/class/net/{}/statistics/{}", a.name(), va, f));
    expected.push_back(
        fmt::format("networkobservability_interface_stats{{interface_name=\"{}\",statistic_name=\"{}\"}} {}", va, f,
                    v.substr(0, v.find('\n'))));
  }
  std::vector<std::string> va_lines;  // lo skipped; the second veth is checked below
  for (const std::string& line : test::sample_lines(*text, names::kInterfaceStats))
    if (line.find(fmt::format("interface_name=\"{}\"", va)) != std::string::npos) va_lines.push_back(line);
  CHECK(va_lines == expected);
  Num drops = 0;
  std::map<std::string, Num> sums;  // per statistic, over va and va2
  std::set<std::string> interfaces;
  for (const Sample& s : samples(*text, names::kInterfaceStats)) {
    interfaces.insert(s.labels.at("interface_name"));
    sums[s.labels.at("statistic_name")] += to_num(s.value);
    if (s.labels.at("interface_name") == va &&
        (s.labels.at("statistic_name") == "rx_dropped" || s.labels.at("statistic_name") == "rx_nohandler"))
      drops += to_num(s.value);
  }
  CHECK(drops == 5);
  CHECK(interfaces == std::set<std::string>{va, va2});
  // Retina's all_interfaces: every statistic summed over both veths.
  INFO(all_text);
  const auto all = samples(all_text, names::kInterfaceStats);
  CHECK(all.size() == sums.size());
  Num all_drops = 0;
  for (const Sample& s : all) {
    INFO(s.labels.at("statistic_name"));
    CHECK(s.labels.at("interface_name") == "all_interfaces");
    CHECK(to_num(s.value) == sums[s.labels.at("statistic_name")]);
    if (s.labels.at("statistic_name") == "rx_dropped" || s.labels.at("statistic_name") == "rx_nohandler")
      all_drops += to_num(s.value);
  }
  CHECK(all_drops == 5 + 3);
  CHECK(text->find(fmt::format("{}{{plugin=\"linuxutil\",source=\"ethtool\"}} 0", names::kPluginSourceErrors)) !=
        std::string::npos);
  CHECK(text->find(fmt::format("{}{{plugin=\"linuxutil\",source=\"interfaces\"}} 0", names::kPluginSourceErrors)) !=
        std::string::npos);
}
