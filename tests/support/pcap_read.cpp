#include "support/pcap_read.hpp"

#include <stdlib.h>

#include <algorithm>
#include <filesystem>
#include <sstream>
#include <stdexcept>

#include <fmt/format.h>

#include "support/netns.hpp"

namespace retina::test {
namespace {

std::vector<std::string> split(const std::string& line, char sep) {
  std::vector<std::string> out;
  std::string cur;
  for (char c : line) {
    if (c == sep) {
      out.push_back(cur);
      cur.clear();
    } else {
      cur.push_back(c);
    }
  }
  out.push_back(cur);
  return out;
}

uint64_t num(const std::string& s) { return s.empty() ? 0 : std::stoull(s); }

}  // namespace

std::map<std::string, FlowTally> tshark_tally(const std::string& file) {
  // A file cut short makes tshark exit non-zero (sh throws). Its warning
  // about running as root is skipped below.
  const std::string out = sh(fmt::format(
      "tshark -n -r '{}' -T fields -E separator=, -e ip.src -e ipv6.src -e ip.dst -e ipv6.dst -e tcp.srcport "
      "-e tcp.dstport -e udp.srcport -e udp.dstport -e frame.len -e tcp.len -e udp.length 2>/dev/null",
      file));
  std::map<std::string, FlowTally> tally;
  std::istringstream lines(out);
  for (std::string line; std::getline(lines, line);) {
    if (line.empty() || line.starts_with("Running as user")) continue;
    const auto f = split(line, ',');
    if (f.size() < 11) throw std::runtime_error("unexpected tshark line: " + line);
    const std::string src = f[0].empty() ? f[1] : f[0];
    const std::string dst = f[2].empty() ? f[3] : f[2];
    std::string key = "other";
    uint64_t payload = 0;
    if (!f[4].empty()) {
      key = fmt::format("TCP {}:{} > {}:{}", src, f[4], dst, f[5]);
      payload = num(f[9]);
    } else if (!f[6].empty()) {
      key = fmt::format("UDP {}:{} > {}:{}", src, f[6], dst, f[7]);
      payload = num(f[10]) - 8;
    }
    auto& t = tally[key];
    ++t.packets;
    t.bytes += num(f[8]);
    t.payload += payload;
  }
  return tally;
}

std::vector<std::string> tshark_field(const std::string& file, const std::string& field) {
  const std::string out = sh(fmt::format("tshark -n -r '{}' -T fields -e {} 2>/dev/null", file, field));
  std::vector<std::string> v;
  std::istringstream lines(out);
  for (std::string line; std::getline(lines, line);) {
    if (!line.starts_with("Running as user")) v.push_back(line);
  }
  return v;
}

std::vector<std::string> untar(const std::string& archive, const std::string& dir) {
  std::filesystem::create_directories(dir);
  sh(fmt::format("tar -xzf '{}' -C '{}'", archive, dir));
  const std::string listing = sh(fmt::format("tar -tzf '{}'", archive));
  std::vector<std::string> names;
  std::istringstream lines(listing);
  for (std::string line; std::getline(lines, line);) {
    if (!line.empty()) names.push_back(line);
  }
  std::sort(names.begin(), names.end());
  return names;
}

TempDir::TempDir() {
  char tmpl[] = "/tmp/retina-test-XXXXXX";
  if (!::mkdtemp(tmpl)) throw std::runtime_error("mkdtemp failed");
  path_ = tmpl;
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

}  // namespace retina::test
