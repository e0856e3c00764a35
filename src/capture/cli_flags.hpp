// `retina capture create` flags (Retina's names) and the spec they make.
// Shared by the CLI and its fuzz target.
#pragma once

#include <cstdint>
#include <string>

#include <CLI/CLI.hpp>

#include "retina/capture.hpp"

namespace retina::capture {

struct CliFlags {
  std::string name;
  std::string namespace_ = "default";
  std::string pod_selectors, namespace_selectors, node_selectors, node_names, pod_names;
  std::string duration = "1m";
  uint64_t max_size_mb = 100;
  uint32_t packet_size = 0;
  uint64_t max_packets = 0;
  uint32_t file_count = 1;
  std::string tcpdump_filter, include_filter, exclude_filter, interfaces;
  std::string format = "pcap";
  bool include_metadata = true;
  std::string host_path, pvc, blob_upload;
  std::string s3_bucket, s3_region = "us-east-1", s3_endpoint, s3_path, s3_access_key_id, s3_secret_access_key;
};

// Registers the create flags on `app`.
void add_create_flags(CLI::App& app, CliFlags& flags);
// Validates the flags into a spec (the same checks the agent makes).
Result<Spec> spec_from_flags(const CliFlags& flags);
// The Capture object the CLI creates in a cluster.
std::string capture_object_json(const Spec& spec, const std::string& namespace_);

}  // namespace retina::capture
