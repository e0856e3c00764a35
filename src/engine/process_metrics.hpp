// The process_* metrics every Prometheus client library exports (names and
// meanings of the Go and Python clients), read from /proc at each scrape:
//
//   process_cpu_seconds_total        counter  user + system CPU time
//   process_resident_memory_bytes    gauge
//   process_virtual_memory_bytes     gauge
//   process_open_fds                 gauge
//   process_max_fds                  gauge    RLIMIT_NOFILE soft limit
//   process_start_time_seconds       gauge    Unix time the process started
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "retina/error.hpp"
#include "retina/metrics/registry.hpp"

namespace retina::metrics {

// The fields of /proc/<pid>/stat these metrics need.
struct ProcStat {
  uint64_t utime_ticks = 0;
  uint64_t stime_ticks = 0;
  uint64_t start_ticks = 0;  // since boot
  uint64_t vsize_bytes = 0;
  uint64_t rss_pages = 0;
};

// Parses /proc/<pid>/stat. The command name may hold spaces and
// parentheses, so the fields are counted from its last ')'.
Result<ProcStat> parse_proc_stat(std::string_view text);
// "btime <seconds>" of /proc/stat: the boot time in Unix seconds.
Result<uint64_t> parse_boot_time(std::string_view proc_stat);

class ProcessCollector final : public Collector {
 public:
  // proc_root: "/proc", or a fixture tree with self/stat, self/fd and stat.
  explicit ProcessCollector(std::string proc_root = "/proc");
  void collect(TextWriter& w) override;

 private:
  std::string proc_;
  // Read once by the constructor (it does not change), so concurrent
  // scrapes only read members.
  uint64_t boot_time_ = 0;
  bool boot_time_known_ = false;
};

}  // namespace retina::metrics
