// The per-node bundle: packet files, the node's network state and
// metadata.json, packed with libarchive into NAME-NODE-YYYYMMDDhhmmssUTC.tar.gz.
#pragma once

#include <string>
#include <vector>

#include "retina/error.hpp"

namespace retina::capture {

struct BundleEntry {
  std::string name;      // path inside the archive
  std::string disk_path; // copied from here, or
  std::string content;   // this text when disk_path is empty
};

// What the node state adds, one row per file (one source of truth for the
// docs and the test): commands whose output is concatenated, or files copied.
struct StateSource {
  const char* file;                     // name in the bundle
  std::vector<const char*> commands;    // run with sh -c, output with a header each
  std::vector<const char*> proc_files;  // paths relative to proc_root
};
const std::vector<StateSource>& node_state_sources();

// Collects the node state files (commands are bounded in time and output).
std::vector<BundleEntry> collect_node_state(const std::string& proc_root);

// "name-node-20261204153000UTC.tar.gz"
std::string bundle_name(const std::string& capture, const std::string& node, int64_t unix_seconds);

// Writes the archive at `path` (a temporary name renamed into place).
retina::Status write_bundle(const std::string& path, const std::vector<BundleEntry>& entries);

}  // namespace retina::capture
