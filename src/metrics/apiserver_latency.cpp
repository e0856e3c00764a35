#include "metrics/apiserver_latency.hpp"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstring>

#include <fmt/format.h>

#include "retina/metrics/names.hpp"
#include "retina/metrics/registry.hpp"

namespace retina::metrics {

namespace {

constexpr int64_t kSweepNs = 100'000'000;
constexpr std::string_view kLe[ApiServerLatency::kBuckets + 1] = {"0",   "0.5", "1",   "1.5", "2",   "2.5",
                                                                  "3",   "3.5", "4",   "4.5", "+Inf"};

struct Key {
  IpAddr node, server;
  uint16_t node_port = 0, server_port = 0;
  friend bool operator==(const Key&, const Key&) = default;
};
struct KeyHash {
  size_t operator()(const Key& k) const noexcept {
    const size_t h = IpAddrHash{}(k.node) * 31 + IpAddrHash{}(k.server);
    return h * 131 + (size_t{k.node_port} << 16 | k.server_port);
  }
};
struct Pending {
  int64_t t_ns = 0;
  bool syn = false;  // a SYN without ACK: its answer times the handshake
};

void observe(ApiServerLatency::Histogram& h, double ms) {
  size_t i = 0;
  while (i < ApiServerLatency::kBuckets && ms > 0.5 * static_cast<double>(i)) ++i;
  ++h.counts[i];
  h.sum += ms;
  ++h.count;
}

void write_histogram(TextWriter& w, std::string_view name, std::string_view help,
                     const ApiServerLatency::Histogram& h) {
  w.family(name, help, MetricType::kHistogram);
  const std::string bucket = std::string(name) + "_bucket";
  uint64_t cumulative = 0;
  for (size_t i = 0; i <= ApiServerLatency::kBuckets; ++i) {
    cumulative += h.counts[i];
    w.sample(bucket, {{"le", kLe[i]}}, cumulative);
  }
  w.sample(std::string(name) + "_sum", {}, h.sum);
  w.sample(std::string(name) + "_count", {}, h.count);
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

}  // namespace

struct ApiServerLatency::Impl : Collector {
  mutable std::mutex mu;  // everything below
  std::vector<IpAddr> servers;
  bool latency = false, handshake = false, no_response = false;
  std::atomic<bool> any{false};  // a metric is enabled and servers are known: flows are looked at
  absl::flat_hash_map<Key, Pending, KeyHash> pending;
  Snapshot totals;
  int64_t last_sweep = 0;

  void update_any() { any.store((latency || handshake || no_response) && !servers.empty(), std::memory_order_relaxed); }
  bool is_server(const IpAddr& a) const { return std::find(servers.begin(), servers.end(), a) != servers.end(); }

  void sweep(int64_t now) {
    if (now - last_sweep < kSweepNs) return;
    last_sweep = now;
    for (auto it = pending.begin(); it != pending.end();) {
      if (now - it->second.t_ns > kTtlNs) {
        if (no_response) ++totals.no_response;
        pending.erase(it++);
      } else {
        ++it;
      }
    }
  }

  void collect(TextWriter& w) override {
    std::lock_guard l(mu);
    if (latency)
      write_histogram(w, names::kAdvApiServerLatency, "Latency of node apiserver in ms", totals.latency);
    if (handshake)
      write_histogram(w, names::kAdvApiServerHandshakeLatency, "Latency of node apiserver tcp handshake in ms",
                      totals.handshake);
    if (no_response) {
      w.family(names::kAdvApiServerNoResponse,
               "Number of packets that did not get a response from node apiserver", MetricType::kCounter);
      w.sample(names::kAdvApiServerNoResponse, {{"no_response", "no_response"}}, totals.no_response);
    }
  }
};

ApiServerLatency::ApiServerLatency(Registry& registry) : impl_(std::make_shared<Impl>()), registry_(registry) {
  collector_id_ = registry_.add_collector(impl_);
}

ApiServerLatency::~ApiServerLatency() { registry_.remove_collector(collector_id_); }

void ApiServerLatency::configure(const std::vector<MetricsContextOption>& options) {
  bool latency = false, handshake = false, no_response = false;
  for (const auto& o : options) {
    const std::string name = lower(o.metric_name);
    latency = latency || name == kApiServerLatencyName;
    handshake = handshake || name == kApiServerHandshakeName;
    no_response = no_response || name == kApiServerNoResponseName;
  }
  std::lock_guard l(impl_->mu);
  impl_->latency = latency;
  impl_->handshake = handshake;
  impl_->no_response = no_response;
  if (!latency && !handshake && !no_response) impl_->pending.clear();
  impl_->update_any();
}

void ApiServerLatency::set_servers(std::vector<IpAddr> servers) {
  std::lock_guard l(impl_->mu);
  impl_->servers = std::move(servers);
  impl_->pending.clear();
  impl_->update_any();
}

void ApiServerLatency::on_flow(const Flow& f) noexcept {
  Impl& m = *impl_;
  if (!m.any.load(std::memory_order_relaxed) || f.origin != FlowSource::kPacketParser ||
      f.proto != L4Protocol::kTCP || !f.has_packet)
    return;
  const bool out = f.observation_point == TraceObservationPoint::TO_NETWORK;
  const bool in = f.observation_point == TraceObservationPoint::FROM_NETWORK;
  if (!out && !in) return;
  std::lock_guard l(m.mu);
  const auto now = static_cast<int64_t>(f.time_ns);
  m.sweep(now);
  if (out && m.is_server(f.dst)) {
    // Only the first unanswered packet of a connection is timed, as Retina
    // keeps the first of identical packets.
    if (m.pending.size() < kMaxPending)
      m.pending.try_emplace(Key{f.src, f.dst, f.src_port, f.dst_port},
                            Pending{now, (f.tcp_flags & kSYN) && !(f.tcp_flags & kACK)});
  } else if (in && m.is_server(f.src)) {
    auto it = m.pending.find(Key{f.dst, f.src, f.dst_port, f.src_port});
    if (it == m.pending.end()) return;
    const double ms = std::round(static_cast<double>(std::max<int64_t>(0, now - it->second.t_ns)) / 1e6);
    if (m.latency) observe(m.totals.latency, ms);
    if (m.handshake && it->second.syn && (f.tcp_flags & kSYN) && (f.tcp_flags & kACK))
      observe(m.totals.handshake, ms);
    m.pending.erase(it);
  }
}

ApiServerLatency::Snapshot ApiServerLatency::snapshot() const {
  std::lock_guard l(impl_->mu);
  Snapshot s = impl_->totals;
  s.pending = impl_->pending.size();
  return s;
}

Result<std::vector<IpAddr>> api_server_addresses(std::string_view url) {
  std::string_view rest = url;
  if (const size_t scheme = rest.find("://"); scheme != std::string_view::npos) rest.remove_prefix(scheme + 3);
  rest = rest.substr(0, rest.find('/'));
  std::string host;
  if (rest.starts_with('[')) {
    const size_t close = rest.find(']');
    if (close == std::string_view::npos) return unexpected(Error::invalid(fmt::format("API server \"{}\": bad IPv6 host", url)));
    host = std::string(rest.substr(1, close - 1));
  } else {
    host = std::string(rest.substr(0, rest.find(':')));
  }
  if (host.empty()) return unexpected(Error::invalid(fmt::format("API server \"{}\": no host", url)));
  if (auto ip = IpAddr::parse(host)) return std::vector<IpAddr>{*ip};
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  if (const int rc = ::getaddrinfo(host.c_str(), nullptr, &hints, &res); rc != 0)
    return unexpected(Error::not_found(fmt::format("API server \"{}\": {}", host, ::gai_strerror(rc))));
  std::vector<IpAddr> out;
  char text[INET6_ADDRSTRLEN];
  for (const addrinfo* a = res; a; a = a->ai_next) {
    const void* src = a->ai_family == AF_INET ? static_cast<const void*>(&reinterpret_cast<sockaddr_in*>(a->ai_addr)->sin_addr)
                                              : static_cast<const void*>(&reinterpret_cast<sockaddr_in6*>(a->ai_addr)->sin6_addr);
    if ((a->ai_family == AF_INET || a->ai_family == AF_INET6) && ::inet_ntop(a->ai_family, src, text, sizeof text))
      if (auto ip = IpAddr::parse(text); ip && std::find(out.begin(), out.end(), *ip) == out.end()) out.push_back(*ip);
  }
  ::freeaddrinfo(res);
  return out;
}

}  // namespace retina::metrics
