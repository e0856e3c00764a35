// A network-namespace test harness: a "node" (a Linux bridge plus N pod
// network namespaces, each joined to the bridge by a veth pair with IPv4
// and IPv6 addresses), code and commands run inside namespaces, real-socket
// traffic generators, interface counters, and tc/TCX listings.
//
// Everything is torn down by RAII, even when a test fails halfway, and
// every name carries the process id so parallel runs do not collide.
#pragma once

#include <chrono>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "loader/netlink.hpp"
#include "loader/tcx_link.hpp"

namespace retina::test {

// ------------------------------------------------------------- commands

// Runs `sh -c cmd` (in the calling thread's network namespace); returns
// stdout and stderr. Throws std::runtime_error when it exits non-zero.
std::string sh(const std::string& cmd);
// Same, but returns the exit status instead of throwing.
int sh_status(const std::string& cmd, std::string* output = nullptr);

// Runs a command inside a named namespace (ip netns exec).
std::string sh_in(const std::string& ns, const std::string& cmd);

// "<pid><letter>", unique per call within the process.
std::string unique_tag();

// Undo actions run in reverse order on destruction.
class Cleanup {
 public:
  Cleanup() = default;
  Cleanup(const Cleanup&) = delete;
  Cleanup& operator=(const Cleanup&) = delete;
  ~Cleanup() { run(); }
  void add(std::function<void()> fn) { fns_.push_back(std::move(fn)); }
  void run() noexcept;

 private:
  std::vector<std::function<void()>> fns_;
};

// ----------------------------------------------------------- namespaces

// A named network namespace (ip netns add / del).
class NetNs {
 public:
  explicit NetNs(std::string name);
  ~NetNs();
  NetNs(const NetNs&) = delete;
  NetNs& operator=(const NetNs&) = delete;
  const std::string& name() const { return name_; }

 private:
  std::string name_;
};

// Moves the calling thread into a named namespace until destroyed.
class EnterNetns {
 public:
  explicit EnterNetns(const std::string& ns);
  ~EnterNetns();
  EnterNetns(const EnterNetns&) = delete;
  EnterNetns& operator=(const EnterNetns&) = delete;

 private:
  int saved_ = -1;
};

// Runs fn on a new thread inside namespace `ns`; rethrows its exception.
template <class F>
auto in_netns(const std::string& ns, F&& fn) -> decltype(fn()) {
  using R = decltype(fn());
  std::exception_ptr error;
  std::optional<std::conditional_t<std::is_void_v<R>, int, R>> result;
  std::thread t([&] {
    try {
      EnterNetns enter(ns);
      if constexpr (std::is_void_v<R>) {
        fn();
        result.emplace(0);
      } else {
        result.emplace(fn());
      }
    } catch (...) {
      error = std::current_exception();
    }
  });
  t.join();
  if (error) std::rethrow_exception(error);
  if constexpr (!std::is_void_v<R>) return std::move(*result);
}

// ----------------------------------------------------------------- node

struct Pod {
  std::string ns;          // its network namespace
  std::string host_if;     // host side of the veth, on the bridge
  int host_ifindex = 0;
  std::string pod_if = "eth0";
  std::string mac;         // of pod_if
  std::string ipv4;        // e.g. 10.200.0.2 (/24)
  std::string ipv6;        // e.g. fd00:200::2 (/64)
};

struct NodeOptions {
  int pods = 3;
  // Build the node in a fresh network namespace that the constructing
  // thread enters (and leaves on destruction) instead of in the root
  // namespace, so that nothing outside the test sees or touches it.
  bool isolated = false;
  // Permanent ARP/NDP entries for every pod pair and no IPv6 link-local
  // addresses, so the only packets on the wire are the test's own.
  bool quiet = true;
};

class Node {
 public:
  explicit Node(NodeOptions options = {});
  ~Node();
  Node(const Node&) = delete;
  Node& operator=(const Node&) = delete;

  const std::vector<Pod>& pods() const { return pods_; }
  const Pod& pod(size_t i) const { return pods_.at(i); }
  const std::string& bridge() const { return bridge_; }
  // Every host-side veth name starts with this.
  const std::string& host_prefix() const { return host_prefix_; }
  // The node's namespace when isolated, empty otherwise.
  const std::string& node_ns() const { return node_ns_; }

  // Adds a pod (namespace, veth, addresses) while the node is in use.
  const Pod& add_pod();
  // Deletes pod i's namespace, which removes its veth pair.
  void remove_pod(size_t i);

  // Waits until no host-side veth counter has moved for `quiet`.
  void wait_quiet(std::chrono::milliseconds quiet = std::chrono::milliseconds(1500),
                  std::chrono::milliseconds timeout = std::chrono::seconds(20)) const;

 private:
  void create_pod(size_t index);
  void set_neighbors();

  NodeOptions opts_;
  std::string tag_;
  std::string bridge_;
  std::string host_prefix_;
  std::string node_ns_;
  std::vector<Pod> pods_;
  size_t next_index_ = 0;
  // Declared last so it is destroyed first: removes pods before the bridge
  // and leaves the node namespace last.
  std::unique_ptr<NetNs> node_ns_owner_;
  std::unique_ptr<EnterNetns> entered_;
  Cleanup cleanup_;
};

// ------------------------------------------------------------- counters

struct LinkCounters {
  uint64_t rx_packets = 0, tx_packets = 0, rx_bytes = 0, tx_bytes = 0;
};
// `ip -s link` counters (IFLA_STATS64) of an interface in the calling
// thread's namespace.
LinkCounters read_counters(int ifindex);
int ifindex_of(const std::string& name);

// -------------------------------------------------------------- traffic

struct TcpTransfer {
  uint64_t sent = 0;
  uint64_t received = 0;
};
// Connects from `from` to `to`, sends exactly `bytes` bytes, closes; the
// receiver reads to EOF and closes too.
TcpTransfer tcp_send(const Pod& from, const Pod& to, bool ipv6, uint16_t port, size_t bytes);

// Sends `count` datagrams of `size` bytes; returns how many arrived.
size_t udp_send(const Pod& from, const Pod& to, bool ipv6, uint16_t port, size_t count, size_t size);

// Sends `count` ICMP (or ICMPv6) echo requests over a raw socket and
// returns how many replies came back.
size_t ping(const Pod& from, const Pod& to, bool ipv6, size_t count);

// ------------------------------------------------------------ tc / TCX

std::vector<loader::TcFilterInfo> tc_filters(int ifindex, loader::TcDirection dir);
// `tc filter show dev <dev> <ingress|egress>` output.
std::string tc_filter_show(const std::string& dev, const char* direction);
std::vector<loader::TcxProgram> tcx_programs(int ifindex, loader::TcDirection dir);
// Filters on the hook whose BPF program name starts with "retina".
size_t count_retina_tc_filters(int ifindex, loader::TcDirection dir);

}  // namespace retina::test
