#include "hubble/observer_service.hpp"

#include <algorithm>
#include <cstdlib>

#include <fmt/format.h>
#include <limits>

#include "core/best_effort.hpp"
#include "hubble/filter.hpp"
#include "hubble/flow_proto.hpp"
#include "retina/metrics/registry.hpp"

namespace retina::hubble {

namespace {

constexpr size_t kChunk = 256;
constexpr auto kPoll = std::chrono::milliseconds(200);

struct EncodedFlow {
  uint64_t time_ns = 0;
  std::string bytes;  // flow.Flow wire bytes
};

uint64_t now_ns() {
  return static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch())
          .count());
}

}  // namespace

grpc::Status ObserverService::GetFlows(grpc::ServerContext* ctx, const ::observer::GetFlowsRequest* req,
                                       grpc::ServerWriter<::observer::GetFlowsResponse>* writer) {
  auto filters = FlowFilters::compile(req->whitelist(), req->blacklist());
  if (!filters) return {grpc::StatusCode::INVALID_ARGUMENT, filters.error().message};
  if (req->first() && req->follow())
    return {grpc::StatusCode::INVALID_ARGUMENT, "first and follow cannot be combined"};
  const uint64_t since = req->has_since() ? unix_ns(req->since()) : 0;
  const uint64_t until = req->has_until() ? unix_ns(req->until()) : std::numeric_limits<uint64_t>::max();
  if (since > until) return {grpc::StatusCode::INVALID_ARGUMENT, "since is later than until"};

  const std::string& node = node_.name();
  auto keep = [&](const Flow& f) { return f.time_ns >= since && filters->matches(f, node); };

  // Flows are filtered and encoded while the store has their block
  // pinned, then written once it is let go: a slow client never holds a pin.
  FlowResponse resp(node);
  std::vector<EncodedFlow> chunk(kChunk);
  size_t filled = 0;
  auto encode = [&](const Flow& f) {
    if (filled == chunk.size()) chunk.emplace_back();
    EncodedFlow& e = chunk[filled++];
    e.time_ns = f.time_ns;
    e.bytes.clear();
    append_flow_wire(f, node, e.bytes);
  };
  auto send_chunk = [&] {
    for (size_t i = 0; i < filled; ++i)
      if (!writer->Write(resp.set_encoded(chunk[i].time_ns, chunk[i].bytes))) return false;
    filled = 0;
    return true;
  };
  auto send_lost = [&](uint64_t n) {
    lost_.fetch_add(n, std::memory_order_relaxed);
    if (lost_counter_) lost_counter_->add(n);
    ::observer::GetFlowsResponse l;
    l.mutable_lost_events()->set_source(::flow::HUBBLE_RING_BUFFER);
    l.mutable_lost_events()->set_num_events_lost(n);
    l.set_node_name(node);
    set_timestamp(now_ns(), *l.mutable_time());
    return writer->Write(l);
  };

  const uint64_t head = store_.head();

  if (req->number() > 0 && !req->first()) {
    // The last `number` matching flows: scan back from the newest, a
    // chunk at a time, keeping the newest matches of each chunk.
    std::vector<EncodedFlow> picked;  // newest first
    uint64_t hi = head;
    while (hi > store_.oldest() && picked.size() < req->number()) {
      const uint64_t lo = hi - std::min<uint64_t>(kChunk, hi - store_.oldest());
      uint64_t cursor = lo;
      filled = 0;
      store_.read(&cursor, hi, kChunk, [&](uint64_t, const Flow& f) {
        if (f.time_ns <= until && keep(f)) encode(f);
        return true;
      });
      for (size_t i = filled; i-- > 0 && picked.size() < req->number();) picked.push_back(std::move(chunk[i]));
      hi = lo;
    }
    for (auto it = picked.rbegin(); it != picked.rend(); ++it)
      if (!writer->Write(resp.set_encoded(it->time_ns, it->bytes))) return grpc::Status::OK;
    filled = 0;
  } else if (req->first() || req->has_since() || !req->follow()) {
    // From the oldest stored flow on, up to `number` (0: no limit).
    uint64_t remaining = req->number() ? req->number() : std::numeric_limits<uint64_t>::max();
    uint64_t cursor = store_.oldest();
    bool past_until = false;
    while (cursor < head && remaining && !past_until) {
      filled = 0;
      const uint64_t lost = store_.read(&cursor, head, kChunk, [&](uint64_t, const Flow& f) {
        if (f.time_ns > until) return !(past_until = true);
        if (keep(f)) {
          encode(f);
          --remaining;
        }
        return remaining != 0;
      });
      if (lost && !send_lost(lost)) return grpc::Status::OK;
      if (!send_chunk() || past_until || ctx->IsCancelled()) return grpc::Status::OK;
    }
  }
  if (!req->follow()) return grpc::Status::OK;

  make_this_thread_best_effort();
  followers_.fetch_add(1, std::memory_order_relaxed);
  struct Leave {
    std::atomic<size_t>& n;
    ~Leave() { n.fetch_sub(1, std::memory_order_relaxed); }
  } leave{followers_};
  uint64_t cursor = head;
  while (!ctx->IsCancelled() && !store_.closed()) {
    if (req->has_until() && now_ns() > until) return grpc::Status::OK;
    filled = 0;
    bool past_until = false;
    const uint64_t lost = store_.read(&cursor, std::numeric_limits<uint64_t>::max(), kChunk,
                                      [&](uint64_t, const Flow& f) {
                                        if (f.time_ns > until) return !(past_until = true);
                                        if (keep(f)) encode(f);
                                        return true;
                                      });
    if (lost && !send_lost(lost)) return grpc::Status::OK;
    if (!send_chunk() || past_until) return grpc::Status::OK;
    if (cursor >= store_.head()) store_.wait(cursor, kPoll);
  }
  return grpc::Status::OK;
}

void ObserverService::idle_until_done(grpc::ServerContext* ctx) const {
  // The store's close() wakes this wait at shutdown; no flow can reach
  // sequence number UINT64_MAX, so only closing or the timeout ends it.
  while (!ctx->IsCancelled() && !store_.closed()) store_.wait(std::numeric_limits<uint64_t>::max(), kPoll);
}

// retina has no agent or debug events: the streams are empty, and with
// follow they stay open like Hubble's until the caller leaves.
grpc::Status ObserverService::GetAgentEvents(grpc::ServerContext* ctx, const ::observer::GetAgentEventsRequest* req,
                                             grpc::ServerWriter<::observer::GetAgentEventsResponse>*) {
  if (req->follow()) idle_until_done(ctx);
  return grpc::Status::OK;
}

grpc::Status ObserverService::GetDebugEvents(grpc::ServerContext* ctx, const ::observer::GetDebugEventsRequest* req,
                                             grpc::ServerWriter<::observer::GetDebugEventsResponse>*) {
  if (req->follow()) idle_until_done(ctx);
  return grpc::Status::OK;
}

grpc::Status ObserverService::GetNodes(grpc::ServerContext*, const ::observer::GetNodesRequest*,
                                       ::observer::GetNodesResponse* resp) {
  const NodeInfo node = node_.get();
  auto* n = resp->add_nodes();
  n->set_name(node.name);
  n->set_version(node.version);
  n->set_address(node.address);
  n->set_state(::relay::NODE_CONNECTED);
  n->mutable_tls()->set_enabled(!node.tls_server_name.empty());
  n->mutable_tls()->set_server_name(node.tls_server_name);
  n->set_uptime_ns(static_cast<uint64_t>(uptime().count()));
  n->set_num_flows(store_.size());
  n->set_max_flows(store_.capacity());
  n->set_seen_flows(store_.seen());
  return grpc::Status::OK;
}

grpc::Status ObserverService::ServerStatus(grpc::ServerContext*, const ::observer::ServerStatusRequest*,
                                           ::observer::ServerStatusResponse* resp) {
  resp->set_num_flows(store_.size());
  resp->set_max_flows(store_.capacity());
  resp->set_seen_flows(store_.seen());
  resp->set_uptime_ns(static_cast<uint64_t>(uptime().count()));
  resp->mutable_num_connected_nodes()->set_value(1);
  resp->mutable_num_unavailable_nodes()->set_value(0);
  resp->set_version(node_.get().version);
  return grpc::Status::OK;
}

std::string tls_server_name(std::string_view node_name) {
  if (node_name.empty()) return {};
  std::string name(node_name);
  std::replace(name.begin(), name.end(), '.', '-');
  return name + ".default.hubble-grpc.cilium.io";
}

std::map<std::string, PeerService::Peer> PeerService::peers() const {
  std::map<std::string, Peer> out;
  const NodeInfo self = node_.get();
  uint16_t port = 0;
  if (const size_t colon = self.address.rfind(':'); colon != std::string::npos)
    port = static_cast<uint16_t>(std::strtoul(self.address.c_str() + colon + 1, nullptr, 10));
  if (cache_ && port) {
    cache_->for_each([&](const EndpointPtr& ep) {
      if (ep->kind != EndpointKind::kNode || ep->name.empty() || ep->ips.empty()) return;
      const IpAddr* ip = &ep->ips.front();
      for (const auto& a : ep->ips)
        if (a.is_v4()) {
          ip = &a;
          break;
        }
      const std::string host = ip->to_string();
      out[ep->name] = {ip->is_v4() ? fmt::format("{}:{}", host, port) : fmt::format("[{}]:{}", host, port),
                       tls_ ? tls_server_name(ep->name) : std::string()};
    });
  }
  // This node as it announces itself ($HUBBLE_PEER_ADDRESS, $NODE_IP, ...).
  out[self.name] = {self.address, self.tls_server_name};
  return out;
}

grpc::Status PeerService::Notify(grpc::ServerContext* ctx, const ::peer::NotifyRequest*,
                                 grpc::ServerWriter<::peer::ChangeNotification>* writer) {
  auto send = [&](const std::string& name, const Peer& p, ::peer::ChangeNotificationType type) {
    ::peer::ChangeNotification n;
    n.set_name(name);
    n.set_address(p.address);
    n.set_type(type);
    if (!p.tls_server_name.empty()) n.mutable_tls()->set_server_name(p.tls_server_name);
    return writer->Write(n);
  };
  std::map<std::string, Peer> known;
  auto last = std::chrono::steady_clock::time_point{};
  // Holds the stream open as Relay expects, sending what changed.
  while (!ctx->IsCancelled() && !store_.closed()) {
    if (std::chrono::steady_clock::now() - last >= poll_) {
      last = std::chrono::steady_clock::now();
      auto now = peers();
      for (const auto& [name, p] : known)
        if (!now.count(name) && !send(name, p, ::peer::PEER_DELETED)) return grpc::Status::OK;
      for (const auto& [name, p] : now) {
        const auto it = known.find(name);
        if (it == known.end()) {
          if (!send(name, p, ::peer::PEER_ADDED)) return grpc::Status::OK;
        } else if (!(it->second == p) && !send(name, p, ::peer::PEER_UPDATED)) {
          return grpc::Status::OK;
        }
      }
      known = std::move(now);
    }
    store_.wait(std::numeric_limits<uint64_t>::max(), std::min(poll_, std::chrono::milliseconds(200)));
  }
  return grpc::Status::OK;
}

}  // namespace retina::hubble
