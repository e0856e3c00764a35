#include "engine/process_metrics.hpp"

#include <sys/resource.h>
#include <unistd.h>

#include <array>
#include <vector>

#include <fmt/format.h>

#include "core/log.hpp"
#include "plugins/linuxutil/file_io.hpp"
#include "plugins/linuxutil/value_parsers.hpp"

namespace retina::metrics {

namespace {

// Whitespace-separated fields after the command name, numbered as proc(5)
// numbers them: the first after ')' is field 3 (state).
constexpr size_t kFirstField = 3;
constexpr size_t kUtime = 14, kStime = 15, kStartTime = 22, kVsize = 23, kRss = 24;

}  // namespace

Result<ProcStat> parse_proc_stat(std::string_view text) {
  const size_t close = text.rfind(')');
  if (close == std::string_view::npos) return unexpected(Error::invalid("/proc stat: no ')' after the command name"));
  std::array<std::string_view, kRss + 1> fields{};
  size_t n = kFirstField;
  size_t i = close + 1;
  while (i < text.size() && n <= kRss) {
    while (i < text.size() && (text[i] == ' ' || text[i] == '\n')) ++i;
    const size_t start = i;
    while (i < text.size() && text[i] != ' ' && text[i] != '\n') ++i;
    if (i > start) fields[n++] = text.substr(start, i - start);
  }
  if (n <= kRss) return unexpected(Error::invalid(fmt::format("/proc stat: {} fields, need {}", n - 1, kRss)));
  ProcStat s;
  const std::pair<size_t, uint64_t*> wanted[] = {
      {kUtime, &s.utime_ticks}, {kStime, &s.stime_ticks}, {kStartTime, &s.start_ticks},
      {kVsize, &s.vsize_bytes}, {kRss, &s.rss_pages}};
  for (const auto& [field, out] : wanted) {
    auto v = linuxutil::parse_u64(fields[field]);
    if (!v) return unexpected(v.error().wrap(fmt::format("/proc stat field {}", field)));
    *out = *v;
  }
  return s;
}

Result<uint64_t> parse_boot_time(std::string_view proc_stat) {
  size_t pos = 0;
  while (pos < proc_stat.size()) {
    size_t end = proc_stat.find('\n', pos);
    if (end == std::string_view::npos) end = proc_stat.size();
    const std::string_view line = proc_stat.substr(pos, end - pos);
    if (line.starts_with("btime ")) {
      auto v = linuxutil::parse_u64(line.substr(6));
      if (!v) return unexpected(v.error().wrap("/proc/stat btime"));
      return *v;
    }
    pos = end + 1;
  }
  return unexpected(Error::invalid("/proc/stat: no btime line"));
}

ProcessCollector::ProcessCollector(std::string proc_root) : proc_(std::move(proc_root)) {
  std::string buf;
  if (auto st = linuxutil::read_text_file(proc_ + "/stat", buf); !st) {
    log::warn("metrics", "process_start_time_seconds: boot time unknown", {{"error", st.error().message}});
  } else if (auto b = parse_boot_time(buf); !b) {
    log::warn("metrics", "process_start_time_seconds: boot time unknown", {{"error", b.error().message}});
  } else {
    boot_time_ = *b;
    boot_time_known_ = true;
  }
}

void ProcessCollector::collect(TextWriter& w) {
  static const double ticks = static_cast<double>(::sysconf(_SC_CLK_TCK));
  static const uint64_t page = static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
  std::string buf;
  // A failed read leaves its series out of this scrape, as Prometheus'
  // clients do, and says why once at debug level.
  if (auto st = linuxutil::read_text_file(proc_ + "/self/stat", buf); !st) {
    log::debug("metrics", "process metrics", {{"error", st.error().message}});
  } else if (auto s = parse_proc_stat(buf); !s) {
    log::debug("metrics", "process metrics", {{"error", s.error().message}});
  } else {
    w.family("process_cpu_seconds_total", "Total user and system CPU time spent in seconds.", MetricType::kCounter);
    w.sample("process_cpu_seconds_total", {}, static_cast<double>(s->utime_ticks + s->stime_ticks) / ticks);
    w.family("process_virtual_memory_bytes", "Virtual memory size in bytes.", MetricType::kGauge);
    w.sample("process_virtual_memory_bytes", {}, s->vsize_bytes);
    w.family("process_resident_memory_bytes", "Resident memory size in bytes.", MetricType::kGauge);
    w.sample("process_resident_memory_bytes", {}, s->rss_pages * page);
    if (boot_time_known_) {
      w.family("process_start_time_seconds", "Start time of the process since unix epoch in seconds.",
               MetricType::kGauge);
      w.sample("process_start_time_seconds", {}, static_cast<double>(boot_time_) + static_cast<double>(s->start_ticks) / ticks);
    }
  }
  if (auto fds = linuxutil::list_dir(proc_ + "/self/fd")) {
    w.family("process_open_fds", "Number of open file descriptors.", MetricType::kGauge);
    w.sample("process_open_fds", {}, static_cast<uint64_t>(fds->size()));
  }
  rlimit lim{};
  if (::getrlimit(RLIMIT_NOFILE, &lim) == 0) {
    w.family("process_max_fds", "Maximum number of open file descriptors.", MetricType::kGauge);
    w.sample("process_max_fds", {}, static_cast<uint64_t>(lim.rlim_cur));
  }
}

}  // namespace retina::metrics
