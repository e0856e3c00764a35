// Reading capture results back the way a user would: bundles unpacked with
// tar, packet files read by tshark, tallied per 5-tuple.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace retina::test {

struct FlowTally {
  uint64_t packets = 0;
  uint64_t bytes = 0;        // frame lengths
  uint64_t payload = 0;      // TCP segment lengths / UDP payloads
};

// "UDP 10.200.0.2:40000 > 10.200.0.3:5001" -> tally; frames that are not
// IPv4/IPv6 TCP/UDP are keyed "other". Throws when tshark cannot read the
// whole file (a truncated or unclosed capture).
std::map<std::string, FlowTally> tshark_tally(const std::string& file);
// tshark's per-frame field (e.g. "frame.interface_name"), one per packet.
std::vector<std::string> tshark_field(const std::string& file, const std::string& field);
// Unpacks a .tar.gz into `dir` (created); returns the member names, sorted.
std::vector<std::string> untar(const std::string& archive, const std::string& dir);
// A fresh temporary directory, removed with everything in it on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

}  // namespace retina::test
