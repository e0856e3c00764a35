// Packet capture: on-demand captures of pods (by label selector, resolved
// through the IP cache) or whole nodes (every host interface, or a named
// list), written with libpcap and packed with the node's state into one
// NAME-NODE-YYYYMMDDhhmmssUTC.tar.gz per node, delivered to a host path, a
// mounted PVC, S3 (SigV4) or a blob SAS URL.
//
// The spec mirrors Retina's Capture CRD (retina.sh/v1alpha1): the same JSON
// parser reads a CRD object's spec and the agent API's POST body.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "retina/api_server.hpp"
#include "retina/capabilities.hpp"
#include "retina/config.hpp"
#include "retina/error.hpp"

namespace retina {
class Engine;
class IpCache;
namespace metrics {
class Registry;
}
}  // namespace retina

namespace retina::capture {

// What capturing needs while the agent runs (enableCapture): libpcap's
// AF_PACKET socket on each interface, and reading a pod's namespace's
// addresses from the node's (IFA_TARGET_NETNSID) to find its host-side
// veth. Without the latter the capture listens on 'any' narrowed to the
// pod's addresses and its notes say why.
inline constexpr CapabilitySet kCaptureCapabilities{Capability::kNetRaw, Capability::kNetAdmin};

// Kubernetes label selector (matchLabels and matchExpressions In/NotIn/
// Exists/DoesNotExist), evaluated on "key=value" label lists.
struct LabelRequirement {
  enum class Op : uint8_t { kIn, kNotIn, kExists, kDoesNotExist };
  std::string key;
  Op op = Op::kIn;
  std::vector<std::string> values;
};
struct LabelSelector {
  bool present = false;  // an empty present selector matches everything
  std::vector<LabelRequirement> requirements;
  bool matches(const std::vector<std::string>& labels) const;
};
// "app=web,tier in (a,b),!legacy" (kubectl syntax) -> selector.
Result<LabelSelector> parse_label_selector(std::string_view text);

enum class FileFormat : uint8_t { kPcap, kPcapng };

struct S3Upload {
  std::string bucket;
  std::string region = "us-east-1";
  std::string endpoint;  // "https://s3.<region>.amazonaws.com" when empty
  std::string path;      // key prefix inside the bucket
  std::string secret_name;  // CRD: Secret with s3-access-key-id / s3-secret-access-key
  std::string access_key_id;      // resolved (or given directly to the agent API)
  std::string secret_access_key;
  bool enabled() const { return !bucket.empty(); }
};

struct Spec {
  std::string name;       // [a-z0-9.-], at most 63 characters
  std::string namespace_; // of the CRD object (informational on the agent API)

  // captureTarget
  LabelSelector namespace_selector;
  LabelSelector pod_selector;
  LabelSelector node_selector;
  std::vector<std::string> node_names;  // Retina's --node-names
  // captureTarget.podNames: "name" (in the spec's namespace, or any when it
  // has none) or "namespace/name"; pods named here are captured besides
  // those the selectors match.
  std::vector<std::string> pod_names;
  std::vector<std::string> interfaces;  // node capture on these only; empty: every host interface

  // captureConfiguration
  std::string tcpdump_filter;
  std::vector<std::string> include_filter;  // IP, IP:port or *
  std::vector<std::string> exclude_filter;
  std::chrono::milliseconds duration{std::chrono::minutes(1)};
  uint64_t max_capture_bytes = 100ull << 20;  // maxCaptureSize (MB)
  uint64_t max_packets = 0;                   // 0: no limit
  uint32_t packet_size = 0;                   // snap length; 0: 262144
  // fileCount: above 1, each interface writes a ring of this many files
  // sharing maxCaptureSize; the oldest file is dropped when a new one starts,
  // and the size no longer stops the capture.
  uint32_t file_count = 1;
  FileFormat format = FileFormat::kPcap;
  bool include_metadata = true;               // node state files in the bundle

  // outputConfiguration
  std::string host_path;  // directory (under the capture root)
  std::string pvc;        // claim name, mounted at <root>/pvc/<claim>
  S3Upload s3;
  std::string blob_sas_url;  // one PUT of the bundle
  std::string blob_secret_name;  // CRD: Secret whose blob-upload-url is the SAS URL (Retina's blobUpload)

  bool selects_pods() const { return pod_selector.present || namespace_selector.present || !pod_names.empty(); }
};

// Parses a spec object: Retina's Capture spec
//   {"captureConfiguration":{"captureTarget":{...},"captureOption":{...},
//    "filters":{"include":[...],"exclude":[...]},"tcpdumpFilter":"..."},
//    "outputConfiguration":{...}}
// `name` comes from metadata (CRD) or the request.
Result<Spec> parse_spec_json(std::string_view json, std::string name);
// The agent API body: {"name":"...","spec":{...}} or a whole Capture object
// {"metadata":{"name":...,"namespace":...},"spec":{...}}.
Result<Spec> parse_request_json(std::string_view json);
// The inverse of parse_spec_json (what the CLI sends and the bundle records).
std::string spec_to_json(const Spec& spec);

// The spec without S3 keys or the blob SAS token, for files and statuses
// others can read (metadata.json).
Spec without_credentials(Spec spec);

// The filter a spec compiles to: include/exclude shortcuts combined as
// "(inc...) and not (exc...)" and-ed with the tcpdump filter.
Result<std::string> build_filter(const Spec& spec);

struct Limits {
  std::chrono::milliseconds max_duration{std::chrono::hours(1)};
  uint64_t max_capture_bytes = 1ull << 30;
  uint64_t min_free_bytes = 64ull << 20;  // refuse when the root has less free
};

enum class State : uint8_t { kPending, kRunning, kUploading, kCompleted, kCancelled, kFailed };
const char* to_string(State s);

struct InterfaceStats {
  std::string name;
  std::string file;          // inside the bundle (the last one, with fileCount)
  std::vector<std::string> files;  // every packet file kept, oldest first
  uint64_t overwritten_packets = 0;  // in ring files dropped for newer ones (fileCount)
  uint64_t packets = 0;      // written
  uint64_t bytes = 0;        // original lengths of the written packets
  uint64_t kernel_dropped = 0;    // pcap_stats ps_drop (socket buffer full)
  uint64_t interface_dropped = 0; // ps_ifdrop
  std::string error;
};

struct CaptureStatus {
  std::string name;
  std::string node;
  State state = State::kPending;
  std::string stop_reason;  // "duration", "max size", "packet count", "cancelled", "error"
  std::string message;      // errors and notes
  std::string bundle;       // file name of the tar.gz
  std::string bundle_path;  // where it was written on this node (empty when only uploaded)
  std::vector<std::string> outputs;  // where the bundle went
  std::vector<InterfaceStats> interfaces;
  uint64_t start_unix_ms = 0, stop_unix_ms = 0;
  bool finished() const { return state == State::kCompleted || state == State::kCancelled || state == State::kFailed; }
};
std::string status_to_json(const CaptureStatus& s);

struct ManagerOptions {
  std::string node_name;
  std::string output_root = "/var/log/retina";
  Limits limits;
  size_t max_concurrent = 4;
  std::shared_ptr<IpCache> cache;       // resolves pod selectors; may be null
  metrics::Registry* registry = nullptr;  // capture counters; may be null
  std::string agent_config_text;        // copied into the bundle
  std::string version;
  std::string proc_root = "/proc";
};

// Runs captures, each on its own threads, and keeps their status.
class Manager {
 public:
  static Result<std::unique_ptr<Manager>> create(ManagerOptions options);
  ~Manager();  // cancels and joins every capture
  Manager(const Manager&) = delete;
  Manager& operator=(const Manager&) = delete;

  // Validates (filter compiles, targets exist on this node, limits, disk
  // space, output paths under the root) and starts. kInvalidArgument errors
  // are the caller's fault (HTTP 400); a running capture of the same name
  // is kInvalidArgument too.
  Result<CaptureStatus> start(Spec spec);
  // Whether this node is selected (nodeSelector with the node's labels,
  // node names), without starting anything.
  bool selects_node(const Spec& spec, const std::vector<std::string>& node_labels) const;
  std::vector<CaptureStatus> list() const;
  Result<CaptureStatus> get(std::string_view name) const;
  // Stops a running capture; its files are closed and bundled as usual.
  Result<CaptureStatus> cancel(std::string_view name);
  // Forgets a finished capture (its bundle stays on disk).
  CaptureStatus remove(std::string_view name);
  // Blocks until the capture finished or the timeout passed.
  Result<CaptureStatus> wait(std::string_view name, std::chrono::milliseconds timeout) const;
  // Called from the capture's thread whenever its status changes.
  void on_change(std::function<void(const CaptureStatus&)> fn);

  const ManagerOptions& options() const;

 private:
  Manager();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The options an agent uses: node name, output root, limits, IP cache and
// registry from the engine's config; the config file copied into bundles.
ManagerOptions manager_options(Engine& engine, const std::string& config_path, std::string version);

// Capture objects (retina.sh/v1alpha1) run on this node: every agent lists
// them, runs those selecting its node and merge-patches its own entry under
// status.nodes.<node>. Opaque here; see src/capture/crd.hpp.
class CrdRunner;
struct CrdRunnerDeleter {
  void operator()(CrdRunner* r) const;
};
// Uses the config's kubeconfig (or the in-cluster account) and node name.
Result<std::unique_ptr<CrdRunner, CrdRunnerDeleter>> start_crd_runner(Manager& manager, const Config& config);

// The largest spec the agent API accepts.
constexpr size_t kMaxSpecBytes = 64 * 1024;

// The agent API routes under /captures, for ApiServerBackend::routes:
//   POST /captures (a spec, see parse_request_json), GET /captures,
//   GET /captures/NAME, DELETE /captures/NAME (cancels a running capture,
//   forgets a finished one), GET /captures/NAME/download (the bundle).
// Bad specs answer 400 with the reason; a null manager answers 404
// (capture disabled).
using HttpReply = RouteReply;
// Returns false when the path is not under /captures.
bool handle_http(Manager* manager, std::string_view method, std::string_view path, std::string_view body,
                 HttpReply& reply);

}  // namespace retina::capture
