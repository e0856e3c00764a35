// The gRPC services: observer.Observer over the flow store, and peer.Peer
// announcing this node.
#pragma once

#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <string>

#include "hubble/flow_store.hpp"
#include "retina/ip_cache.hpp"
#include "observer/observer.grpc.pb.h"
#include "peer/peer.grpc.pb.h"

namespace retina::metrics {
class Counter;
}

namespace retina::hubble {

struct NodeInfo {
  std::string name;
  std::string version;
  std::string address;          // host:port Relay dials
  std::string tls_server_name;  // empty without TLS
  std::chrono::steady_clock::time_point started = std::chrono::steady_clock::now();
};

// The node record both services read. The address is only known once the
// server is bound (port 0), after the services exist, hence the lock.
class NodeRecord {
 public:
  explicit NodeRecord(NodeInfo info) : info_(std::move(info)) {}
  NodeInfo get() const {
    std::lock_guard lock(mu_);
    return info_;
  }
  void set_address(std::string address) {
    std::lock_guard lock(mu_);
    info_.address = std::move(address);
  }
  const std::string& name() const { return info_.name; }  // never changes
  std::chrono::steady_clock::time_point started() const { return info_.started; }

 private:
  mutable std::mutex mu_;
  NodeInfo info_;
};

class ObserverService final : public ::observer::Observer::Service {
 public:
  // `lost` (may be null) counts flows followers lost to the ring.
  ObserverService(const FlowStore& store, const NodeRecord& node, metrics::Counter* lost)
      : store_(store), node_(node), lost_counter_(lost) {}

  grpc::Status GetFlows(grpc::ServerContext* ctx, const ::observer::GetFlowsRequest* req,
                        grpc::ServerWriter<::observer::GetFlowsResponse>* writer) override;
  grpc::Status GetAgentEvents(grpc::ServerContext* ctx, const ::observer::GetAgentEventsRequest* req,
                              grpc::ServerWriter<::observer::GetAgentEventsResponse>* writer) override;
  grpc::Status GetDebugEvents(grpc::ServerContext* ctx, const ::observer::GetDebugEventsRequest* req,
                              grpc::ServerWriter<::observer::GetDebugEventsResponse>* writer) override;
  grpc::Status GetNodes(grpc::ServerContext* ctx, const ::observer::GetNodesRequest* req,
                        ::observer::GetNodesResponse* resp) override;
  grpc::Status ServerStatus(grpc::ServerContext* ctx, const ::observer::ServerStatusRequest* req,
                            ::observer::ServerStatusResponse* resp) override;

  uint64_t lost() const noexcept { return lost_.load(std::memory_order_relaxed); }
  size_t followers() const noexcept { return followers_.load(std::memory_order_relaxed); }
  std::chrono::nanoseconds uptime() const { return std::chrono::steady_clock::now() - node_.started(); }

 private:
  // Holds an events stream open until the caller leaves or the server stops.
  void idle_until_done(grpc::ServerContext* ctx) const;

  const FlowStore& store_;
  const NodeRecord& node_;
  metrics::Counter* const lost_counter_;
  std::atomic<uint64_t> lost_{0};
  std::atomic<size_t> followers_{0};
};

// Cilium's name for a node's Hubble server certificate, which Relay checks:
// "<node>.<cluster>.hubble-grpc.cilium.io" with the dots of the node name
// turned into dashes (one DNS label, so *.default.hubble-grpc.cilium.io
// covers every node). Empty for an empty node name.
std::string tls_server_name(std::string_view node_name);

// Relay asks one agent (the hubble-peer Service routes to the agent of
// its own node) for every peer: this node, and each node the IP cache
// knows (the Kubernetes watcher's nodes), at its first internal IPv4
// address (else IPv6) with this server's port, since every agent of the
// DaemonSet listens on the same one. Changes follow while the stream is open.
class PeerService final : public ::peer::Peer::Service {
 public:
  // `cache` may be null: this node only.
  PeerService(const FlowStore& store, const NodeRecord& node, const IpCache* cache, bool tls)
      : store_(store), node_(node), cache_(cache), tls_(tls) {}
  grpc::Status Notify(grpc::ServerContext* ctx, const ::peer::NotifyRequest* req,
                      grpc::ServerWriter<::peer::ChangeNotification>* writer) override;

  struct Peer {
    std::string address, tls_server_name;
    friend bool operator==(const Peer&, const Peer&) = default;
  };
  // The peers now, by node name.
  std::map<std::string, Peer> peers() const;

 private:
  const FlowStore& store_;  // its close() also ends Notify streams
  const NodeRecord& node_;
  const IpCache* const cache_;
  const bool tls_;
  // How often an open stream looks for node changes.
  static constexpr std::chrono::milliseconds poll_{2000};
};

}  // namespace retina::hubble
