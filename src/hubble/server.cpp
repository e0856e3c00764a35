// HubbleServer: the flow store, the gRPC services and the hubble_* metrics
// endpoint, composed.
#include <cstdlib>
#include <fstream>
#include <sstream>

#include <fmt/format.h>
#include <grpcpp/grpcpp.h>
#include <httplib.h>

#include "core/log.hpp"
#include "hubble/flow_store.hpp"
#include "hubble/hubble_metrics.hpp"
#include "hubble/observer_service.hpp"
#include "retina/hubble.hpp"
#include "retina/metrics/registry.hpp"

namespace retina {

namespace {

struct HostPort {
  std::string host;  // without brackets
  uint16_t port = 0;
};

Result<HostPort> split_host_port(const std::string& key, const std::string& a) {
  const size_t colon = a.rfind(':');
  if (colon == std::string::npos) return unexpected(Error::invalid(fmt::format("{}: \"{}\" is not host:port", key, a)));
  HostPort hp;
  hp.host = a.substr(0, colon);
  if (hp.host.size() >= 2 && hp.host.front() == '[' && hp.host.back() == ']') hp.host = hp.host.substr(1, hp.host.size() - 2);
  const std::string port = a.substr(colon + 1);
  char* end = nullptr;
  const unsigned long n = std::strtoul(port.c_str(), &end, 10);
  if (port.empty() || *end || n > 65535) return unexpected(Error::invalid(fmt::format("{}: \"{}\" has no valid port", key, a)));
  hp.port = static_cast<uint16_t>(n);
  return hp;
}

// gRPC's address syntax: an empty host listens on every address.
std::string grpc_address(const HostPort& hp) {
  if (hp.host.empty()) return fmt::format("[::]:{}", hp.port);
  if (hp.host.find(':') != std::string::npos) return fmt::format("[{}]:{}", hp.host, hp.port);
  return fmt::format("{}:{}", hp.host, hp.port);
}

Result<std::string> read_file(const std::string& key, const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return unexpected(Error::invalid(fmt::format("{}: cannot read {}", key, path)));
  std::ostringstream s;
  s << in.rdbuf();
  if (s.str().empty()) return unexpected(Error::invalid(fmt::format("{}: {} is empty", key, path)));
  return s.str();
}

}  // namespace

HubbleOptions HubbleOptions::from(const Config& c) {
  HubbleOptions o;
  o.listen_address = c.hubble_listen_address;
  o.buffer_capacity = c.hubble_event_buffer_capacity;
  o.node_name = c.node_name;
  o.tls_cert_file = c.hubble_tls_cert_file;
  o.tls_key_file = c.hubble_tls_key_file;
  o.tls_client_ca_files = c.hubble_tls_client_ca_files;
  o.metrics_address = c.hubble_metrics_server;
  o.metrics = c.hubble_metrics;
  return o;
}

struct HubbleServer::Impl {
  HubbleOptions options;
  std::shared_ptr<hubble::FlowStore> store;
  metrics::Registry registry;
  std::unique_ptr<hubble::HubbleMetrics> hubble_metrics;
  uint64_t collector_id = 0;
  std::unique_ptr<hubble::NodeRecord> node;
  std::unique_ptr<hubble::ObserverService> observer;
  std::unique_ptr<hubble::PeerService> peer;
  std::unique_ptr<grpc::Server> server;
  int port = 0;
  std::unique_ptr<httplib::Server> http;
  std::thread http_thread;
  int http_port = 0;
  bool stopped = false;
};

HubbleServer::HubbleServer() : impl_(std::make_unique<Impl>()) {}
HubbleServer::~HubbleServer() { stop(); }

Result<std::unique_ptr<HubbleServer>> HubbleServer::start(Pipeline& pipeline, HubbleOptions options) {
  std::unique_ptr<HubbleServer> s(new HubbleServer());
  Impl& m = *s->impl_;
  auto listen = split_host_port("hubbleListenAddress", options.listen_address);
  if (!listen) return unexpected(listen.error());

  auto hm = hubble::HubbleMetrics::create(options.metrics, m.registry);
  if (!hm) return unexpected(hm.error());
  m.hubble_metrics = std::move(*hm);

  std::shared_ptr<grpc::ServerCredentials> creds = grpc::InsecureServerCredentials();
  std::string tls_server_name;
  if (!options.tls_cert_file.empty()) {
    grpc::SslServerCredentialsOptions ssl(options.tls_client_ca_files.empty()
                                              ? GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE
                                              : GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
    auto cert = read_file("hubbleTLSCertFile", options.tls_cert_file);
    if (!cert) return unexpected(cert.error());
    auto key = read_file("hubbleTLSKeyFile", options.tls_key_file);
    if (!key) return unexpected(key.error());
    ssl.pem_key_cert_pairs.push_back({*key, *cert});
    for (const auto& ca : options.tls_client_ca_files) {
      auto pem = read_file("hubbleTLSClientCAFiles", ca);
      if (!pem) return unexpected(pem.error());
      ssl.pem_root_certs += *pem;
    }
    creds = grpc::SslServerCredentials(ssl);
    // Cilium's naming, which Relay checks the node's certificate against.
    tls_server_name = hubble::tls_server_name(options.node_name);
  }

  m.store = std::make_shared<hubble::FlowStore>(options.buffer_capacity);
  hubble::NodeInfo node;
  node.name = options.node_name;
  node.version = options.version;
  node.tls_server_name = tls_server_name;

  grpc::ServerBuilder builder;
  builder.AddListeningPort(grpc_address(*listen), creds, &m.port);
  m.node = std::make_unique<hubble::NodeRecord>(node);
  m.observer = std::make_unique<hubble::ObserverService>(*m.store, *m.node, &m.hubble_metrics->ring_buffer_lost());
  m.peer = std::make_unique<hubble::PeerService>(*m.store, *m.node, &pipeline.cache(), !tls_server_name.empty());
  builder.RegisterService(m.observer.get());
  builder.RegisterService(m.peer.get());
  m.server = builder.BuildAndStart();
  if (!m.server || m.port == 0)
    return unexpected(Error::system(fmt::format("hubble: cannot listen on {}", options.listen_address), EADDRINUSE));

  // Peer address: what Relay should dial to reach this node.
  std::string address = options.peer_address;
  if (address.empty()) {
    if (const char* env = std::getenv("HUBBLE_PEER_ADDRESS"); env && *env) address = env;
  }
  if (address.empty()) {
    std::string host = listen->host;
    if (host.empty() || host == "0.0.0.0" || host == "::") {
      const char* ip = std::getenv("NODE_IP");
      host = ip && *ip ? ip : (options.node_name.empty() ? "localhost" : options.node_name);
    }
    address = host.find(':') != std::string::npos ? fmt::format("[{}]:{}", host, m.port) : fmt::format("{}:{}", host, m.port);
  }
  m.node->set_address(address);

  hubble::FlowStore::attach(m.store, pipeline, [hm = m.hubble_metrics.get()](const Flow& f) { hm->observe(f); });

  // Flows the metrics follower lost to the ring, mirrored at scrape time.
  struct QueueLost final : metrics::Collector {
    hubble::FlowStore* store;
    metrics::Counter* counter;
    void refresh() override { counter->set(store->lost_by_observer()); }
  };
  auto collector = std::make_shared<QueueLost>();
  collector->store = m.store.get();
  collector->counter = &m.hubble_metrics->queue_lost();
  m.collector_id = m.registry.add_collector(collector);

  if (!options.metrics_address.empty()) {
    auto maddr = split_host_port("hubbleMetricsServer", options.metrics_address);
    if (!maddr) return unexpected(maddr.error());
    m.http = std::make_unique<httplib::Server>();
    m.http->Get("/metrics", [&m](const httplib::Request&, httplib::Response& res) {
      std::string body;
      m.registry.expose(body);
      res.set_content(std::move(body), "text/plain; version=0.0.4; charset=utf-8");
    });
    const std::string host = maddr->host.empty() ? "0.0.0.0" : maddr->host;
    m.http_port = maddr->port == 0 ? m.http->bind_to_any_port(host) : (m.http->bind_to_port(host, maddr->port) ? maddr->port : -1);
    if (m.http_port <= 0)
      return unexpected(Error::system(fmt::format("hubble: cannot listen on {} for metrics", options.metrics_address), EADDRINUSE));
    m.http_thread = std::thread([&m] { m.http->listen_after_bind(); });
  }
  m.options = std::move(options);
  log::info("hubble", "listening",
            {{"grpc", fmt::format("{}", m.port)},
             {"address", address},
             {"metrics", m.http_port > 0 ? fmt::format("{}", m.http_port) : std::string("off")},
             {"tls", !tls_server_name.empty()},
             {"buffer", m.store->capacity()}});
  return s;
}

uint16_t HubbleServer::port() const { return static_cast<uint16_t>(impl_->port); }
uint16_t HubbleServer::metrics_port() const { return static_cast<uint16_t>(impl_->http_port > 0 ? impl_->http_port : 0); }

HubbleStatus HubbleServer::status() const {
  HubbleStatus st;
  if (!impl_->store) return st;
  st.num_flows = impl_->store->size();
  st.max_flows = impl_->store->capacity();
  st.seen_flows = impl_->store->seen();
  st.metered_flows = impl_->store->observed();
  if (impl_->observer) {
    st.lost_flows = impl_->observer->lost();
    st.uptime = impl_->observer->uptime();
    st.followers = impl_->observer->followers();
  }
  return st;
}

void HubbleServer::stop() noexcept {
  Impl& m = *impl_;
  if (m.stopped) return;
  m.stopped = true;
  if (m.store) m.store->close();  // ends follow loops and Notify streams
  if (m.server) {
    m.server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
    m.server->Wait();
  }
  if (m.http) m.http->stop();
  if (m.http_thread.joinable()) m.http_thread.join();
  if (m.store) m.store->detach();
  if (m.collector_id) m.registry.remove_collector(m.collector_id);
}

}  // namespace retina
