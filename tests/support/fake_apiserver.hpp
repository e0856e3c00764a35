// A scriptable Kubernetes API server for tests: HTTPS (a CA, server and client
// certificate made at start-up) or plain HTTP on 127.0.0.1, serving LIST
// (limit/continue pagination) and chunked streaming WATCH (resourceVersion,
// bookmarks, timeoutSeconds, fieldSelector spec.nodeName) in the API
// server's wire format for pods, services, nodes, namespaces, replicasets and
// metricsconfigurations and captures (with POST, DELETE and status PATCH).
//
// Tests change objects (upsert/remove emit ADDED/MODIFIED/DELETED to open
// watches) and inject faults: 410 Gone (as HTTP status or ERROR event), a
// dropped connection mid-stream, raw bytes (malformed or split lines), 404
// for the CRD, a required bearer token, the whole server going away.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace retina::test {

// Certificates and keys in a fresh temporary directory, removed on destruction.
struct TestPki {
  TestPki();
  ~TestPki();
  TestPki(const TestPki&) = delete;
  TestPki& operator=(const TestPki&) = delete;

  std::string dir;
  std::string ca_file, ca_pem;
  std::string server_cert_file, server_key_file;
  std::string client_cert_file, client_key_file, client_cert_pem, client_key_pem;
};

enum class GoneMode { kErrorEvent, kHttpStatus };

class FakeApiServer {
 public:
  struct Options {
    bool tls = true;
    std::string token;  // required bearer token; empty: none
    bool require_client_cert = false;
    GoneMode gone_mode = GoneMode::kErrorEvent;
  };

  FakeApiServer();
  explicit FakeApiServer(Options options);
  ~FakeApiServer();
  FakeApiServer(const FakeApiServer&) = delete;
  FakeApiServer& operator=(const FakeApiServer&) = delete;

  // Listens (again, on the same port after stop()).
  void start();
  // Closes the listener and every open stream: connections are refused until start().
  void stop();

  int port() const;
  std::string url() const;  // "https://127.0.0.1:<port>"
  const TestPki& pki() const;

  // `resource` is the plural name ("pods", "replicasets", ...). The JSON is
  // one object with "metadata":{ written without spaces; its resourceVersion
  // is set by the server.
  void upsert(const std::string& resource, const std::string& json);  // ADDED or MODIFIED
  void remove(const std::string& resource, const std::string& ns, const std::string& name);  // DELETED
  void bookmark(const std::string& resource);
  // Bytes written as they are to every open watch of the resource.
  void send_raw(const std::string& resource, const std::string& bytes);
  // Cuts every open watch of the resource without ending the chunked body.
  void drop_watches(const std::string& resource);
  // Compacts the resource's history: watches from older versions get 410 Gone
  // (HTTP status or ERROR event, per the gone mode); open watches get it too.
  void expire(const std::string& resource);
  void set_gone_mode(GoneMode mode);
  void set_not_found(const std::string& resource, bool not_found);
  void set_token(std::string token);

  uint64_t resource_version() const;
  // Status merge patches received for a resource: ("ns/name", body), in order.
  std::vector<std::pair<std::string, std::string>> patches(const std::string& resource) const;
  // An object's stored JSON; empty when absent.
  std::string object(const std::string& resource, const std::string& ns, const std::string& name) const;
  size_t list_requests(const std::string& resource) const;  // first pages only
  size_t page_requests(const std::string& resource) const;  // every page
  size_t watch_requests(const std::string& resource) const;
  size_t open_watches(const std::string& resource) const;
  size_t unauthorized_requests() const;
  // GET /api/v1/nodes/NODE:PORT/proxy/PATH goes to 127.0.0.1:PORT/PATH; the
  // requests, as "NODE:PORT/PATH".
  std::vector<std::string> proxied() const;
  // A query parameter of the last LIST (watch=false) or WATCH request.
  std::string last_param(const std::string& resource, bool watch, const std::string& key) const;
  // True once everything queued for the resource's open watches was written out.
  bool wait_drained(const std::string& resource, std::chrono::milliseconds timeout) const;

  struct State;

 private:
  std::unique_ptr<State> s_;
};

// Polls `pred` every few milliseconds until it holds or `timeout` passes.
bool wait_until(const std::function<bool()>& pred, std::chrono::milliseconds timeout);

// Compact objects in the API server's JSON shape, for tests.
namespace k8sjson {

using Pairs = std::vector<std::pair<std::string, std::string>>;

struct Pod {
  std::string ns = "default";
  std::string name;
  std::string node = "node-1";
  std::vector<std::string> ips;  // status.podIPs (the first is also status.podIP)
  std::string phase = "Running";
  Pairs labels;
  Pairs annotations;
  std::string owner_kind;
  std::string owner_name;
  bool host_network = false;
  bool only_pod_ip = false;  // write status.podIP without status.podIPs (old servers)
};
std::string pod(const Pod& p);
std::string service(const std::string& ns, const std::string& name, const std::vector<std::string>& cluster_ips,
                    const Pairs& selector, const Pairs& labels = {});
std::string node(const std::string& name, const std::vector<std::string>& internal_ips, const std::string& zone,
                 const Pairs& labels = {});
std::string namespace_(const std::string& name, bool observe, const Pairs& labels = {});
std::string replicaset(const std::string& ns, const std::string& name, const std::string& owner_kind,
                       const std::string& owner_name);
// A Secret with `data` base64-encoded from the given plain values.
std::string secret(const std::string& ns, const std::string& name, const Pairs& data);
std::string metrics_configuration(const std::string& name, const std::string& creation_timestamp,
                                  const std::string& spec_json);

}  // namespace k8sjson
}  // namespace retina::test
