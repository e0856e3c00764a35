// Hubble mode: the node's flows over Hubble's gRPC API, so the `hubble`
// CLI, Hubble Relay and Hubble UI work against retina, and hubble_*
// metrics on a port of their own.
//
//   observer.Observer  GetFlows (last/first N, follow, since/until, white-
//                      and blacklist FlowFilters), ServerStatus, GetNodes,
//                      GetAgentEvents and GetDebugEvents (always empty)
//   peer.Peer          Notify: this node, for Relay to connect to
//   :9965/metrics      hubble_* metrics chosen by `metrics` (Cilium syntax)
//
// Flows come from a store of the node's most recent flows (buffer_capacity
// of them) fed by the pipeline; a follower that reads too slowly loses the
// flows overwritten meanwhile, is told so in a LostEvent and counted in
// hubble_lost_events_total{source="hubble_ring_buffer"}. Nothing a client
// does slows the pipeline.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "retina/config.hpp"
#include "retina/error.hpp"
#include "retina/pipeline.hpp"

namespace retina {

struct HubbleOptions {
  // host:port; ":4244" listens on every address; port 0 picks a free one.
  std::string listen_address = ":4244";
  size_t buffer_capacity = 4096;
  std::string node_name;
  // What Peer/Notify tells Relay to dial; empty: $HUBBLE_PEER_ADDRESS,
  // else $NODE_IP (or the listen host when it is specific) with the port.
  std::string peer_address;
  std::string version = "unknown";
  // Server TLS with this certificate and key; client certificates signed
  // by one of client_ca_files are then required (mTLS, as Relay does).
  std::string tls_cert_file;
  std::string tls_key_file;
  std::vector<std::string> tls_client_ca_files;
  // hubble_* metrics: host:port (empty disables) and Cilium's metric list,
  // e.g. {"flow:sourceContext=pod;destinationContext=pod", "dns:query", "drop", "tcp"}.
  std::string metrics_address = ":9965";
  std::vector<std::string> metrics;

  static HubbleOptions from(const Config& config);
};

struct HubbleStatus {
  uint64_t num_flows = 0;    // in the store now
  uint64_t max_flows = 0;    // the store's capacity
  uint64_t seen_flows = 0;   // stored since start
  uint64_t lost_flows = 0;   // lost by slow followers, summed
  uint64_t metered_flows = 0;  // of seen_flows, those the hubble_* metrics have taken in
  std::chrono::nanoseconds uptime{0};
  size_t followers = 0;      // GetFlows calls streaming now
};

class HubbleServer {
 public:
  // Subscribes to `pipeline`, binds the gRPC and metrics addresses and
  // serves from background threads until stop(). `pipeline` must outlive
  // the server.
  static Result<std::unique_ptr<HubbleServer>> start(Pipeline& pipeline, HubbleOptions options);
  ~HubbleServer();  // stops
  HubbleServer(const HubbleServer&) = delete;
  HubbleServer& operator=(const HubbleServer&) = delete;

  uint16_t port() const;          // the bound gRPC port
  uint16_t metrics_port() const;  // 0 when metrics are off
  HubbleStatus status() const;
  // Ends every stream, stops serving, detaches from the pipeline. Idempotent.
  void stop() noexcept;

 private:
  HubbleServer();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace retina
