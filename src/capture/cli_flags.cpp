#include "capture/cli_flags.hpp"

#include <fmt/format.h>

#include "core/flow_json.hpp"
#include "retina/config.hpp"

namespace retina::capture {
namespace {

std::vector<std::string> split_list(const std::string& s) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= s.size()) {
    const size_t comma = s.find(',', start);
    std::string item = s.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    while (!item.empty() && item.front() == ' ') item.erase(item.begin());
    while (!item.empty() && item.back() == ' ') item.pop_back();
    if (!item.empty()) out.push_back(std::move(item));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return out;
}

Result<LabelSelector> selector_flag(const std::string& text, std::string_view flag) {
  auto s = parse_label_selector(text);
  if (!s) return unexpected(Error::invalid(fmt::format("{}: {}", flag, s.error().message)));
  return s;
}

}  // namespace

void add_create_flags(CLI::App& app, CliFlags& f) {
  app.add_option("--name", f.name, "Name of the capture (and of its bundles)")->required();
  app.add_option("--namespace", f.namespace_, "Namespace of the Capture object (cluster mode)");
  app.add_option("--pod-selectors", f.pod_selectors, "Label selector of the pods to capture, e.g. app=web");
  app.add_option("--namespace-selectors", f.namespace_selectors,
                 "Label selector of the pods' namespaces, e.g. kubernetes.io/metadata.name=default");
  app.add_option("--node-selectors", f.node_selectors, "Label selector of the nodes to capture");
  app.add_option("--node-names", f.node_names, "Comma-separated node names to capture");
  app.add_option("--pod-names", f.pod_names,
                 "Comma-separated pods to capture: names in --namespace, or namespace/name");
  app.add_option("--duration", f.duration, "How long to capture (e.g. 30s, 2m)");
  app.add_option("--max-size", f.max_size_mb, "Stop at this many MB of packet files per node");
  app.add_option("--packet-size", f.packet_size, "Bytes kept of each packet (snap length)");
  app.add_option("--max-packets", f.max_packets, "Stop after this many packets per node");
  app.add_option("--file-count", f.file_count,
                 "Rotate each interface through this many files sharing --max-size, keeping the newest");
  app.add_option("--tcpdump-filter", f.tcpdump_filter, "A filter in tcpdump syntax");
  app.add_option("--include-filter", f.include_filter, "Comma-separated IP, IP:port or * to include");
  app.add_option("--exclude-filter", f.exclude_filter, "Comma-separated IP, IP:port or * to exclude");
  app.add_option("--interfaces", f.interfaces, "Comma-separated interfaces for a node capture");
  app.add_option("--format", f.format, "pcap or pcapng")->check(CLI::IsMember({"pcap", "pcapng"}));
  app.add_option("--include-metadata", f.include_metadata, "Add the node's network state to the bundle");
  app.add_option("--host-path", f.host_path, "Directory on the node (under the agent's captureOutputRoot)");
  app.add_option("--pvc", f.pvc, "PersistentVolumeClaim to store the bundle on");
  app.add_option("--blob-upload", f.blob_upload, "Blob container SAS URL to upload the bundle to");
  app.add_option("--s3-bucket", f.s3_bucket, "S3 bucket to upload the bundle to");
  app.add_option("--s3-region", f.s3_region, "S3 region");
  app.add_option("--s3-endpoint", f.s3_endpoint, "S3-compatible endpoint URL");
  app.add_option("--s3-path", f.s3_path, "Key prefix in the bucket");
  app.add_option("--s3-access-key-id", f.s3_access_key_id, "S3 access key id");
  app.add_option("--s3-secret-access-key", f.s3_secret_access_key, "S3 secret access key");
}

Result<Spec> spec_from_flags(const CliFlags& f) {
  // The JSON path validates the name and the duration exactly as the agent does.
  std::string body = "{\"name\":";
  json::append_string(body, f.name);
  body += ",\"spec\":{}}";
  auto base = parse_request_json(body);
  if (!base) return unexpected(base.error());
  Spec s = std::move(*base);
  s.namespace_ = f.namespace_;
  auto d = parse_duration(f.duration);
  if (!d) return unexpected(Error::invalid(fmt::format("--duration: {}", d.error().message)));
  s.duration = std::chrono::duration_cast<std::chrono::milliseconds>(*d);
  if (s.duration.count() <= 0) return unexpected(Error::invalid("--duration: must be above zero"));
  if (f.max_size_mb == 0 || f.max_size_mb > (1u << 20)) return unexpected(Error::invalid("--max-size: must be 1..1048576 (MB)"));
  s.max_capture_bytes = f.max_size_mb << 20;
  if (f.packet_size != 0 && (f.packet_size < 64 || f.packet_size > 262144)) {
    return unexpected(Error::invalid("--packet-size: must be 64..262144 bytes"));
  }
  s.packet_size = f.packet_size;
  s.max_packets = f.max_packets;
  if (f.file_count < 1 || f.file_count > 1000) return unexpected(Error::invalid("--file-count: must be 1..1000"));
  s.file_count = f.file_count;
  if (!f.pod_selectors.empty()) {
    auto sel = selector_flag(f.pod_selectors, "--pod-selectors");
    if (!sel) return unexpected(sel.error());
    s.pod_selector = std::move(*sel);
  }
  if (!f.namespace_selectors.empty()) {
    auto sel = selector_flag(f.namespace_selectors, "--namespace-selectors");
    if (!sel) return unexpected(sel.error());
    s.namespace_selector = std::move(*sel);
  }
  if (!f.node_selectors.empty()) {
    auto sel = selector_flag(f.node_selectors, "--node-selectors");
    if (!sel) return unexpected(sel.error());
    s.node_selector = std::move(*sel);
  }
  s.node_names = split_list(f.node_names);
  // Qualified here: the agent API body carries no namespace.
  for (auto& n : split_list(f.pod_names)) s.pod_names.push_back(n.find('/') == std::string::npos ? f.namespace_ + "/" + n : n);
  s.interfaces = split_list(f.interfaces);
  s.tcpdump_filter = f.tcpdump_filter;
  s.include_filter = split_list(f.include_filter);
  s.exclude_filter = split_list(f.exclude_filter);
  if (auto filter = build_filter(s); !filter) return unexpected(filter.error());
  s.format = f.format == "pcapng" ? FileFormat::kPcapng : FileFormat::kPcap;
  s.include_metadata = f.include_metadata;
  s.host_path = f.host_path;
  s.pvc = f.pvc;
  s.blob_sas_url = f.blob_upload;
  s.s3.bucket = f.s3_bucket;
  s.s3.region = f.s3_region;
  s.s3.endpoint = f.s3_endpoint;
  s.s3.path = f.s3_path;
  s.s3.access_key_id = f.s3_access_key_id;
  s.s3.secret_access_key = f.s3_secret_access_key;
  if (!s.s3.bucket.empty() && (s.s3.access_key_id.empty() != s.s3.secret_access_key.empty())) {
    return unexpected(Error::invalid("--s3-access-key-id and --s3-secret-access-key go together"));
  }
  // The spec must read back as written: the agent parses the same JSON.
  auto again = parse_spec_json(spec_to_json(s), s.name);
  if (!again) return unexpected(again.error());
  again->namespace_ = s.namespace_;
  return again;
}

std::string capture_object_json(const Spec& spec, const std::string& namespace_) {
  std::string out = R"({"apiVersion":"retina.sh/v1alpha1","kind":"Capture","metadata":{"name":)";
  json::append_string(out, spec.name);
  out += ",\"namespace\":";
  json::append_string(out, namespace_);
  out += "},\"spec\":" + spec_to_json(spec) + "}";
  return out;
}

}  // namespace retina::capture
