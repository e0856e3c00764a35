// Kubernetes watcher: lists and watches pods, services, nodes, namespaces,
// replica sets and MetricsConfiguration objects on the API server and keeps
// the IpCache's EndpointSource::kKubernetes contribution in step with them.
//
//   auto client = retina::k8s::resolve_client_config(cfg.kubeconfig);
//   retina::k8s::WatcherOptions opts;
//   opts.client = std::move(*client);
//   opts.node_name = cfg.node_name;
//   auto w = retina::k8s::Watcher::create(std::move(opts), cache, &registry);
//   (*w)->start();
//   (*w)->wait_synced(std::chrono::seconds(30));
//
// The watcher keeps only the few fields the cache needs, parsed straight from
// the JSON. While the API server is unreachable the last known endpoints stay
// in the cache; on reconnect it resumes the watch from the last seen
// resourceVersion, or relists when the server says that version is gone.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "retina/config.hpp"
#include "retina/error.hpp"

namespace retina {
class IpCache;
namespace metrics {
class Registry;
}  // namespace metrics
}  // namespace retina

namespace retina::k8s {

// How to reach and authenticate to the API server.
struct ClientConfig {
  std::string server;  // "https://10.0.0.1:443" or "http://127.0.0.1:8001"; no trailing slash
  // Trust: a PEM file, inline PEM, or the system store when both are empty.
  std::string ca_file;
  std::string ca_pem;
  bool insecure_skip_tls_verify = false;
  // Credentials: a bearer token (inline or a file re-read periodically, since
  // bound service-account tokens rotate), a client certificate, or basic auth.
  std::string token;
  std::string token_file;
  std::string client_cert_file;
  std::string client_cert_pem;
  std::string client_key_file;
  std::string client_key_pem;
  std::string username;
  std::string password;
  std::string namespace_;  // the context's or the service account's namespace
  std::string source;      // where this came from, for messages: "in-cluster", "kubeconfig ~/.kube/config (context kind)"
};

// Files and variables of the in-cluster configuration; overridable for tests.
struct InClusterPaths {
  std::string token_file = "/var/run/secrets/kubernetes.io/serviceaccount/token";
  std::string ca_file = "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt";
  std::string namespace_file = "/var/run/secrets/kubernetes.io/serviceaccount/namespace";
  std::string host_env = "KUBERNETES_SERVICE_HOST";
  std::string port_env = "KUBERNETES_SERVICE_PORT";
};

// The pod's service account: KUBERNETES_SERVICE_HOST/PORT, token and CA files.
Result<ClientConfig> in_cluster_config(const InClusterPaths& paths = {});

// One kubeconfig document. Relative file paths in it are resolved against
// `base_dir`. An empty `context` selects current-context.
Result<ClientConfig> parse_kubeconfig(std::string_view yaml, std::string_view base_dir,
                                      std::string_view context = {});

// A kubeconfig path, or a ':'-separated list merged the way kubectl merges
// $KUBECONFIG (the first file that defines a name or current-context wins).
Result<ClientConfig> load_kubeconfig(const std::string& paths, std::string_view context = {});

// The agent's choice: `kubeconfig` (--kubeconfig) when set, else $KUBECONFIG,
// else the in-cluster configuration when KUBERNETES_SERVICE_HOST is set,
// else ~/.kube/config.
Result<ClientConfig> resolve_client_config(const std::string& kubeconfig);

// Retina's MetricsConfiguration (retina.sh/v1alpha1) spec, in the agent
// config's terms.
struct MetricsConfigurationSpec {
  std::string name;  // metadata.name of the object; empty: no MetricsConfiguration exists any more
  std::vector<MetricsContextOption> context_options;
  MetricsNamespaces namespaces;
  friend bool operator==(const MetricsConfigurationSpec& a, const MetricsConfigurationSpec& b);
};

// Parses and validates a MetricsConfiguration object (or a bare spec) given as
// JSON. Every problem is reported at once, one per line, with its JSON path.
Result<MetricsConfigurationSpec> parse_metrics_configuration(std::string_view json);

enum class Resource : uint8_t {
  kPods,
  kServices,
  kNodes,
  kNamespaces,
  kReplicaSets,
  kMetricsConfigurations,
  kCaptures,  // watched by the capture runner (retina::capture), not by Watcher
  kCount
};
inline constexpr size_t kResourceCount = static_cast<size_t>(Resource::kCount);

// The plural resource name ("pods", "metricsconfigurations"), as used in
// metric labels.
const char* to_string(Resource r);

struct WatcherOptions {
  ClientConfig client;

  // Local context (the default) watches only the pods of `node_name`
  // (fieldSelector spec.nodeName=<node>); remote context watches all pods.
  bool remote_context = false;
  std::string node_name;

  // ReplicaSets map pods to their Deployment. Without them (or before they
  // are listed) the name convention <deployment>-<pod-template-hash> is used.
  bool watch_replicasets = true;
  bool watch_metrics_configuration = true;

  // Deleted pods, services and nodes keep resolving this long.
  std::chrono::nanoseconds delete_grace = std::chrono::seconds(30);

  // timeoutSeconds of each watch request is drawn from [watch_timeout, 2*watch_timeout).
  std::chrono::seconds watch_timeout{300};
  uint32_t page_size = 500;  // LIST limit
  std::chrono::milliseconds connect_timeout{10000};
  std::chrono::milliseconds list_timeout{60000};  // one LIST page, end to end
  // Reconnects back off exponentially with jitter from `backoff_initial` up
  // to `backoff_max`; a watch that stayed up for `backoff_reset` resets it.
  std::chrono::milliseconds backoff_initial{500};
  std::chrono::milliseconds backoff_max{30000};
  std::chrono::milliseconds backoff_reset{30000};
  // A 404 for metricsconfigurations (CRD not installed) is retried this slowly.
  std::chrono::milliseconds crd_retry_interval{std::chrono::minutes(5)};
  std::chrono::milliseconds token_reload_interval{std::chrono::minutes(1)};
  // How often lingering (deleted) endpoints are reclaimed from the cache.
  std::chrono::milliseconds expire_interval{1000};

  // Called on the MetricsConfiguration stream's thread whenever the active
  // MetricsConfiguration changes (the oldest object, ties broken by name).
  // A spec with an empty name means the last one was deleted.
  std::function<void(const MetricsConfigurationSpec&)> on_metrics_configuration;
  // An invalid (or ignored, non-active) MetricsConfiguration: the previous
  // configuration stays in force.
  std::function<void(const std::string& name, const Error&)> on_metrics_configuration_error;
};

struct ResourceStatus {
  Resource resource = Resource::kPods;
  bool enabled = false;
  bool synced = false;    // a LIST completed (or, for the CRD, it is known to be absent)
  bool watch_up = false;  // a watch stream is established
  std::string resource_version;
  std::string last_error;  // empty after a successful exchange
  uint64_t objects = 0;
  uint64_t relists = 0;
  std::chrono::system_clock::time_point last_sync{};  // last LIST, event or bookmark
};

class Watcher {
 public:
  // Validates the options; nothing is contacted before start().
  static Result<std::unique_ptr<Watcher>> create(WatcherOptions options, IpCache& cache,
                                                 metrics::Registry* registry = nullptr);
  ~Watcher();  // stops
  Watcher(const Watcher&) = delete;
  Watcher& operator=(const Watcher&) = delete;

  // Starts one thread per watched resource and one for housekeeping.
  Status start();
  // Stops the streams promptly (open transfers are woken, not waited out).
  // The cache keeps what the watcher put into it.
  void stop();

  std::vector<ResourceStatus> status() const;
  // True once every enabled resource has completed its first LIST.
  bool wait_synced(std::chrono::milliseconds timeout) const;

  struct Impl;

 private:
  explicit Watcher(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace retina::k8s
