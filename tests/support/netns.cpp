#include "support/netns.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/if_link.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <future>
#include <stdexcept>

#include <fmt/format.h>

#include "loader/fd.hpp"
#include "loader/prog_info.hpp"

namespace retina::test {

using loader::UniqueFd;

// ------------------------------------------------------------- commands

int sh_status(const std::string& cmd, std::string* output) {
  std::string full = cmd + " 2>&1";
  FILE* f = ::popen(full.c_str(), "r");
  if (!f) throw std::runtime_error(fmt::format("popen({}): {}", cmd, std::strerror(errno)));
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) out.append(buf, n);
  int status = ::pclose(f);
  if (output) *output = std::move(out);
  if (status < 0) return -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

std::string sh(const std::string& cmd) {
  std::string out;
  int rc = sh_status(cmd, &out);
  if (rc != 0) throw std::runtime_error(fmt::format("`{}` exited {}: {}", cmd, rc, out));
  return out;
}

std::string sh_in(const std::string& ns, const std::string& cmd) { return sh("ip netns exec " + ns + " " + cmd); }

std::string unique_tag() {
  static std::atomic<unsigned> counter{0};
  unsigned n = counter++;
  return fmt::format("{}{}", ::getpid(), static_cast<char>('a' + n % 26));
}

void Cleanup::run() noexcept {
  while (!fns_.empty()) {
    auto fn = std::move(fns_.back());
    fns_.pop_back();
    try {
      fn();
    } catch (...) {
      // Best effort: keep undoing the rest.
    }
  }
}

// ----------------------------------------------------------- namespaces

NetNs::NetNs(std::string name) : name_(std::move(name)) { sh("ip netns add " + name_); }

NetNs::~NetNs() { (void)sh_status("ip netns del " + name_); }

EnterNetns::EnterNetns(const std::string& ns) {
  saved_ = ::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
  if (saved_ < 0) throw std::runtime_error(fmt::format("open(/proc/thread-self/ns/net): {}", std::strerror(errno)));
  std::string path = "/run/netns/" + ns;
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int err = errno;
    ::close(saved_);
    throw std::runtime_error(fmt::format("open({}): {}", path, std::strerror(err)));
  }
  int rc = ::setns(fd, CLONE_NEWNET);
  int err = errno;
  ::close(fd);
  if (rc < 0) {
    ::close(saved_);
    throw std::runtime_error(fmt::format("setns({}): {}", ns, std::strerror(err)));
  }
}

EnterNetns::~EnterNetns() {
  if (saved_ >= 0) {
    (void)::setns(saved_, CLONE_NEWNET);
    ::close(saved_);
  }
}

// ----------------------------------------------------------------- node

Node::Node(NodeOptions options) : opts_(options) {
  tag_ = unique_tag();
  bridge_ = "rb" + tag_;
  host_prefix_ = "rv" + tag_ + "p";
  if (opts_.isolated) {
    node_ns_ = "rtk-" + tag_ + "-node";
    node_ns_owner_ = std::make_unique<NetNs>(node_ns_);
    entered_ = std::make_unique<EnterNetns>(node_ns_);
    sh("ip link set lo up");
  }
  sh("ip link add " + bridge_ + " type bridge");
  cleanup_.add([b = bridge_] { (void)sh_status("ip link del " + b); });
  sh(fmt::format("sysctl -qw net.ipv6.conf.{}.disable_ipv6=1", bridge_));
  sh("ip link set " + bridge_ + " up");
  for (int i = 0; i < opts_.pods; ++i) create_pod(next_index_++);
  if (opts_.quiet) set_neighbors();
}

Node::~Node() { cleanup_.run(); }

void Node::create_pod(size_t index) {
  Pod p;
  p.ns = fmt::format("rtk-{}-pod{}", tag_, index);
  p.host_if = fmt::format("{}{}", host_prefix_, index);
  p.mac = fmt::format("02:52:54:00:{:02x}:{:02x}", (index + 2) >> 8, (index + 2) & 0xff);
  p.ipv4 = fmt::format("10.200.{}.{}", (index + 2) >> 8, (index + 2) & 0xff);
  p.ipv6 = fmt::format("fd00:200::{:x}", index + 2);

  sh("ip netns add " + p.ns);
  cleanup_.add([ns = p.ns] { (void)sh_status("ip netns del " + ns); });
  sh(fmt::format("ip link add {} type veth peer name {} address {} netns {}", p.host_if, p.pod_if, p.mac, p.ns));
  cleanup_.add([h = p.host_if] { (void)sh_status("ip link del " + h + " 2>/dev/null"); });
  sh(fmt::format("sysctl -qw net.ipv6.conf.{}.disable_ipv6=1", p.host_if));
  sh(fmt::format("ip link set {} master {} up", p.host_if, bridge_));
  sh(fmt::format("ip -n {} link set lo up", p.ns));
  if (opts_.quiet) sh(fmt::format("ip -n {} link set {} addrgenmode none", p.ns, p.pod_if));
  sh(fmt::format("ip -n {} addr add {}/16 dev {}", p.ns, p.ipv4, p.pod_if));
  sh(fmt::format("ip -n {} -6 addr add {}/64 dev {} nodad", p.ns, p.ipv6, p.pod_if));
  sh(fmt::format("ip -n {} link set {} up", p.ns, p.pod_if));
  p.host_ifindex = ifindex_of(p.host_if);
  pods_.push_back(std::move(p));
}

void Node::set_neighbors() {
  for (const auto& a : pods_) {
    for (const auto& b : pods_) {
      if (&a == &b) continue;
      sh(fmt::format("ip -n {} neigh replace {} lladdr {} dev {} nud permanent", a.ns, b.ipv4, b.mac, a.pod_if));
      sh(fmt::format("ip -n {} -6 neigh replace {} lladdr {} dev {} nud permanent", a.ns, b.ipv6, b.mac, a.pod_if));
    }
  }
}

const Pod& Node::add_pod() {
  create_pod(next_index_++);
  if (opts_.quiet) set_neighbors();
  return pods_.back();
}

void Node::remove_pod(size_t i) {
  const Pod p = pods_.at(i);
  pods_.erase(pods_.begin() + static_cast<long>(i));
  sh("ip netns del " + p.ns);
  // The veth pair goes with the namespace, asynchronously.
  for (int tries = 0; tries < 200 && ::if_nametoindex(p.host_if.c_str()) != 0; ++tries)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
}

void Node::wait_quiet(std::chrono::milliseconds quiet, std::chrono::milliseconds timeout) const {
  auto total = [this] {
    uint64_t sum = 0;
    for (const auto& p : pods_) {
      auto c = read_counters(p.host_ifindex);
      sum += c.rx_packets + c.tx_packets;
    }
    return sum;
  };
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  uint64_t last = total();
  auto since = std::chrono::steady_clock::now();
  while (std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    uint64_t now = total();
    if (now != last) {
      last = now;
      since = std::chrono::steady_clock::now();
    } else if (std::chrono::steady_clock::now() - since >= quiet) {
      return;
    }
  }
  throw std::runtime_error("node never became quiet");
}

// ------------------------------------------------------------- counters

int ifindex_of(const std::string& name) {
  unsigned idx = ::if_nametoindex(name.c_str());
  if (!idx) throw std::runtime_error(fmt::format("if_nametoindex({}): {}", name, std::strerror(errno)));
  return static_cast<int>(idx);
}

LinkCounters read_counters(int ifindex) {
  auto sock = loader::NetlinkSocket::open();
  if (!sock) throw std::runtime_error(sock.error().message);
  struct {
    nlmsghdr h;
    ifinfomsg i;
  } req{};
  req.h.nlmsg_len = NLMSG_LENGTH(sizeof(ifinfomsg));
  req.h.nlmsg_type = RTM_GETLINK;
  req.i.ifi_family = AF_UNSPEC;
  req.i.ifi_index = ifindex;
  std::optional<LinkCounters> out;
  auto st = sock->request(&req.h, fmt::format("RTM_GETLINK(ifindex {})", ifindex), [&](const nlmsghdr& h) -> Status {
    if (h.nlmsg_type != RTM_NEWLINK) return ok();
    const auto* ifi = static_cast<const ifinfomsg*>(NLMSG_DATA(&h));
    const rtattr* tb[IFLA_MAX + 1];
    loader::parse_rtattrs(IFLA_RTA(ifi), h.nlmsg_len - NLMSG_LENGTH(sizeof(ifinfomsg)), tb);
    if (!tb[IFLA_STATS64] || RTA_PAYLOAD(tb[IFLA_STATS64]) < sizeof(rtnl_link_stats64)) return ok();
    rtnl_link_stats64 s;
    std::memcpy(&s, RTA_DATA(tb[IFLA_STATS64]), sizeof s);
    out = LinkCounters{s.rx_packets, s.tx_packets, s.rx_bytes, s.tx_bytes};
    return ok();
  });
  if (!st) throw std::runtime_error(st.error().message);
  if (!out) throw std::runtime_error(fmt::format("no IFLA_STATS64 for ifindex {}", ifindex));
  return *out;
}

// -------------------------------------------------------------- traffic

namespace {

sockaddr_storage make_addr(const std::string& ip, bool v6, uint16_t port, socklen_t* len) {
  sockaddr_storage ss{};
  if (v6) {
    auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
    a->sin6_family = AF_INET6;
    a->sin6_port = htons(port);
    if (!ip.empty() && ::inet_pton(AF_INET6, ip.c_str(), &a->sin6_addr) != 1)
      throw std::runtime_error("bad IPv6 address " + ip);
    *len = sizeof(sockaddr_in6);
  } else {
    auto* a = reinterpret_cast<sockaddr_in*>(&ss);
    a->sin_family = AF_INET;
    a->sin_port = htons(port);
    if (!ip.empty() && ::inet_pton(AF_INET, ip.c_str(), &a->sin_addr) != 1)
      throw std::runtime_error("bad IPv4 address " + ip);
    *len = sizeof(sockaddr_in);
  }
  return ss;
}

[[noreturn]] void fail(const std::string& what) {
  throw std::runtime_error(fmt::format("{}: {}", what, std::strerror(errno)));
}

bool wait_readable(int fd, int timeout_ms) {
  pollfd p{fd, POLLIN, 0};
  int r;
  do {
    r = ::poll(&p, 1, timeout_ms);
  } while (r < 0 && errno == EINTR);
  return r > 0;
}

}  // namespace

TcpTransfer tcp_send(const Pod& from, const Pod& to, bool ipv6, uint16_t port, size_t bytes) {
  std::promise<void> ready;
  auto ready_f = ready.get_future();
  auto server = std::async(std::launch::async, [&]() -> uint64_t {
    EnterNetns enter(to.ns);
    UniqueFd s(::socket(ipv6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!s) fail("socket(server)");
    int one = 1;
    ::setsockopt(s.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    socklen_t len;
    auto addr = make_addr("", ipv6, port, &len);
    if (::bind(s.get(), reinterpret_cast<sockaddr*>(&addr), len) < 0) fail("bind(server)");
    if (::listen(s.get(), 1) < 0) fail("listen");
    ready.set_value();
    if (!wait_readable(s.get(), 10000)) throw std::runtime_error("tcp server: no connection");
    UniqueFd c(::accept4(s.get(), nullptr, nullptr, SOCK_CLOEXEC));
    if (!c) fail("accept");
    uint64_t got = 0;
    char buf[65536];
    for (;;) {
      if (!wait_readable(c.get(), 10000)) throw std::runtime_error("tcp server: read timeout");
      ssize_t n = ::read(c.get(), buf, sizeof buf);
      if (n < 0) {
        if (errno == EINTR) continue;
        fail("read");
      }
      if (n == 0) break;
      got += static_cast<uint64_t>(n);
    }
    return got;
  });
  ready_f.get();

  TcpTransfer t;
  t.sent = in_netns(from.ns, [&]() -> uint64_t {
    UniqueFd c(::socket(ipv6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!c) fail("socket(client)");
    socklen_t len;
    auto addr = make_addr(ipv6 ? to.ipv6 : to.ipv4, ipv6, port, &len);
    if (::connect(c.get(), reinterpret_cast<sockaddr*>(&addr), len) < 0) fail("connect");
    std::vector<char> buf(65536, 'r');
    uint64_t sent = 0;
    while (sent < bytes) {
      size_t chunk = std::min(buf.size(), bytes - sent);
      ssize_t n = ::write(c.get(), buf.data(), chunk);
      if (n < 0) {
        if (errno == EINTR) continue;
        fail("write");
      }
      sent += static_cast<uint64_t>(n);
    }
    return sent;  // close() sends the FIN
  });
  t.received = server.get();
  return t;
}

size_t udp_send(const Pod& from, const Pod& to, bool ipv6, uint16_t port, size_t count, size_t size) {
  std::promise<void> ready;
  auto ready_f = ready.get_future();
  auto receiver = std::async(std::launch::async, [&]() -> size_t {
    EnterNetns enter(to.ns);
    UniqueFd s(::socket(ipv6 ? AF_INET6 : AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    if (!s) fail("socket(udp receiver)");
    int rcvbuf = 8 << 20;
    ::setsockopt(s.get(), SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof rcvbuf);
    socklen_t len;
    auto addr = make_addr("", ipv6, port, &len);
    if (::bind(s.get(), reinterpret_cast<sockaddr*>(&addr), len) < 0) fail("bind(udp receiver)");
    ready.set_value();
    size_t got = 0;
    std::vector<char> buf(65536);
    while (got < count && wait_readable(s.get(), 2000)) {
      if (::recv(s.get(), buf.data(), buf.size(), 0) >= 0) ++got;
    }
    return got;
  });
  ready_f.get();
  in_netns(from.ns, [&] {
    UniqueFd c(::socket(ipv6 ? AF_INET6 : AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    if (!c) fail("socket(udp sender)");
    socklen_t len;
    auto addr = make_addr(ipv6 ? to.ipv6 : to.ipv4, ipv6, port, &len);
    std::vector<char> buf(size, 'u');
    for (size_t i = 0; i < count; ++i) {
      if (::sendto(c.get(), buf.data(), buf.size(), 0, reinterpret_cast<sockaddr*>(&addr), len) < 0) fail("sendto");
    }
  });
  return receiver.get();
}

namespace {

uint16_t inet_checksum(const uint8_t* p, size_t n) {
  uint32_t sum = 0;
  for (size_t i = 0; i + 1 < n; i += 2) sum += static_cast<uint32_t>(p[i] << 8 | p[i + 1]);
  if (n & 1) sum += static_cast<uint32_t>(p[n - 1] << 8);
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(~sum);
}

}  // namespace

size_t ping(const Pod& from, const Pod& to, bool ipv6, size_t count) {
  return in_netns(from.ns, [&]() -> size_t {
    UniqueFd s(::socket(ipv6 ? AF_INET6 : AF_INET, SOCK_RAW | SOCK_CLOEXEC, ipv6 ? int{IPPROTO_ICMPV6} : int{IPPROTO_ICMP}));
    if (!s) fail("socket(raw icmp)");
    socklen_t len;
    auto addr = make_addr(ipv6 ? to.ipv6 : to.ipv4, ipv6, 0, &len);
    size_t replies = 0;
    for (size_t seq = 0; seq < count; ++seq) {
      uint8_t req[64] = {};
      req[0] = ipv6 ? 128 : 8;  // echo request
      req[4] = 0x12;
      req[5] = 0x34;
      req[6] = static_cast<uint8_t>(seq >> 8);
      req[7] = static_cast<uint8_t>(seq);
      if (!ipv6) {  // the kernel fills the ICMPv6 checksum itself
        uint16_t ck = inet_checksum(req, sizeof req);
        req[2] = static_cast<uint8_t>(ck >> 8);
        req[3] = static_cast<uint8_t>(ck);
      }
      if (::sendto(s.get(), req, sizeof req, 0, reinterpret_cast<sockaddr*>(&addr), len) < 0) fail("sendto(icmp)");
      // Wait for this request's reply (raw sockets also see other ICMP).
      uint8_t buf[2048];
      auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
      while (std::chrono::steady_clock::now() < deadline && wait_readable(s.get(), 200)) {
        ssize_t n = ::recv(s.get(), buf, sizeof buf, 0);
        if (n <= 0) continue;
        const uint8_t* icmp = buf;
        if (!ipv6) {  // IPv4 raw sockets deliver the IP header too
          size_t hl = static_cast<size_t>(buf[0] & 0x0f) * 4;
          if (static_cast<size_t>(n) < hl + 8) continue;
          icmp = buf + hl;
        }
        if (icmp[0] == (ipv6 ? 129 : 0) && icmp[6] == req[6] && icmp[7] == req[7]) {
          ++replies;
          break;
        }
      }
    }
    return replies;
  });
}

// ------------------------------------------------------------ tc / TCX

std::vector<loader::TcFilterInfo> tc_filters(int ifindex, loader::TcDirection dir) {
  auto r = loader::list_tc_filters(ifindex, dir);
  if (!r) throw std::runtime_error(r.error().message);
  return std::move(*r);
}

std::string tc_filter_show(const std::string& dev, const char* direction) {
  return sh(fmt::format("tc filter show dev {} {}", dev, direction));
}

std::vector<loader::TcxProgram> tcx_programs(int ifindex, loader::TcDirection dir) {
  auto r = loader::list_tcx_programs(ifindex, dir);
  if (!r) throw std::runtime_error(r.error().message);
  return std::move(*r);
}

size_t count_retina_tc_filters(int ifindex, loader::TcDirection dir) {
  size_t n = 0;
  for (const auto& f : tc_filters(ifindex, dir))
    if (f.handle != 0 && f.bpf_name.rfind("retina", 0) == 0) ++n;
  return n;
}

}  // namespace retina::test
