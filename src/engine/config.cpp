// Retina's agent config.yaml, read with yaml-cpp.
//
// Keys match case-insensitively (Retina reads its config through viper,
// which lowercases keys). A null value (`enableTCX:` with nothing after it,
// as Retina's Helm chart renders unset values) keeps the default. Every
// problem is collected, so one run reports all of them.
#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include <fcntl.h>
#include <unistd.h>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include "core/file.hpp"
#include "core/hubble_metric_spec.hpp"
#include "core/log.hpp"
#include "core/strings.hpp"
#include "metrics/adv_metrics.hpp"
#include "retina/config.hpp"
#include "retina/plugin.hpp"

namespace retina {

namespace {

// Retina keys that describe parts of Retina this agent does not have. They
// are accepted, so existing config maps load, and ignored with a warning.
constexpr std::string_view kIgnoredRetinaKeys[] = {
    "enableTelemetry",       // Application Insights telemetry: this agent sends none
    "telemetryEnabled",      // the same, as spelled in Retina's own sample config
    "telemetryInterval",     // telemetry heartbeat period
    "enableRetinaEndpoint",  // RetinaEndpoint CRD cache: use endpointsFile / enableKubernetes
    "monitorSockPath",       // Cilium monitor socket of Retina's Hubble mode
};

constexpr uint64_t kMaxRingBufferSize = 1ull << 30;
constexpr uint32_t kMaxMapEntries = 1u << 24;
constexpr auto kMinMetricsInterval = std::chrono::milliseconds(100);
constexpr size_t kMaxConfigBytes = 4u << 20;
constexpr uint32_t kMaxFlowLogSizeMb = 1u << 20;  // a terabyte
constexpr uint32_t kMaxFlowLogFiles = 1000;

using text::lower;
std::string trim(std::string_view s) { return std::string(text::trim(s)); }

template <class Range>
std::string join(const Range& items, std::string_view sep) {
  return fmt::format("{}", fmt::join(items, sep));
}

// Problems are collected as "<key path>: <what is wrong>" lines, the form
// every message here takes; the error carries them split.
std::vector<Problem> as_problems(std::vector<std::string> lines) {
  std::vector<Problem> out;
  out.reserve(lines.size());
  for (auto& line : lines) {
    const size_t colon = line.find(": ");
    if (colon == std::string::npos) out.push_back({std::string(), std::move(line)});
    else out.push_back({line.substr(0, colon), line.substr(colon + 2)});
  }
  return out;
}

template <class Range>
bool contains(const Range& items, std::string_view v) {
  for (const auto& s : items) {
    if (std::string_view(s) == v) return true;
  }
  return false;
}

size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t sub = prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1);
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, sub});
    }
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

// The known key closest to `key`, if it is close enough to be a typo.
std::optional<std::string> closest(std::string_view key, const std::vector<std::string>& known) {
  const std::string k = lower(key);
  size_t best = SIZE_MAX;
  std::string best_key;
  for (const auto& cand : known) {
    const size_t d = edit_distance(k, lower(cand));
    if (d < best) {
      best = d;
      best_key = cand;
    }
  }
  const size_t limit = std::max<size_t>(2, k.size() / 3);
  if (best_key.empty() || best > limit) return std::nullopt;
  return best_key;
}

// Shows a node in an error message, bounded so hostile input stays readable.
std::string describe(const YAML::Node& n) {
  switch (n.Type()) {
    case YAML::NodeType::Null: return "nothing";
    case YAML::NodeType::Sequence: return "a list";
    case YAML::NodeType::Map: return "a map";
    case YAML::NodeType::Scalar: {
      std::string s = n.Scalar();
      if (s.size() > 64) s = s.substr(0, 61) + "...";
      std::string out = "\"";
      for (unsigned char c : s) {
        if (c < 0x20 || c == 0x7f) {
          out += fmt::format("\\x{:02x}", c);
        } else {
          out.push_back(static_cast<char>(c));
        }
      }
      out += "\"";
      return out;
    }
    default: return "an undefined value";
  }
}

std::string with_unit(uint64_t bytes) {
  if (bytes >= (1ull << 30) && bytes % (1ull << 30) == 0) return fmt::format("{} GiB", bytes >> 30);
  if (bytes >= (1ull << 20) && bytes % (1ull << 20) == 0) return fmt::format("{} MiB", bytes >> 20);
  if (bytes >= (1ull << 10) && bytes % (1ull << 10) == 0) return fmt::format("{} KiB", bytes >> 10);
  return fmt::format("{} bytes", bytes);
}

std::string format_duration(std::chrono::nanoseconds d) {
  using namespace std::chrono;
  if (d.count() == 0) return "0s";
  if (d % hours(1) == nanoseconds(0)) return fmt::format("{}h", duration_cast<hours>(d).count());
  if (d % minutes(1) == nanoseconds(0)) return fmt::format("{}m", duration_cast<minutes>(d).count());
  if (d % seconds(1) == nanoseconds(0)) return fmt::format("{}s", duration_cast<seconds>(d).count());
  if (d % milliseconds(1) == nanoseconds(0)) return fmt::format("{}ms", duration_cast<milliseconds>(d).count());
  return fmt::format("{}ns", d.count());
}

// ---- typed readers; each reports a problem naming the key and the type ----

class Reader {
 public:
  std::vector<std::string> problems;

  void problem(std::string msg) { problems.push_back(std::move(msg)); }
  void type_error(const std::string& key, std::string_view expected, const YAML::Node& n) {
    problem(fmt::format("{}: expected {}, got {}", key, expected, describe(n)));
  }

  std::optional<bool> boolean(const std::string& key, const YAML::Node& n) {
    if (n.IsScalar()) {
      const std::string v = lower(trim(n.Scalar()));
      // YAML 1.1 spellings, and Go's strconv.ParseBool ones that viper's
      // weak decoding accepts in Retina (1, t, 0, f).
      if (v == "true" || v == "yes" || v == "on" || v == "1" || v == "t") return true;
      if (v == "false" || v == "no" || v == "off" || v == "0" || v == "f") return false;
    }
    type_error(key, "a boolean (true or false)", n);
    return std::nullopt;
  }

  // Integers in [lo, hi]. Accepts integral floats such as 8.388608e+06,
  // which Helm renders for large numbers.
  std::optional<uint64_t> integer(const std::string& key, const YAML::Node& n, uint64_t lo, uint64_t hi) {
    const std::string expected = fmt::format("an integer from {} to {}", lo, hi);
    if (!n.IsScalar()) {
      type_error(key, expected, n);
      return std::nullopt;
    }
    const std::string v = trim(n.Scalar());
    uint64_t out = 0;
    bool ok = false;
    if (!v.empty() && v[0] != '-') {
      const char* first = v.data() + (v[0] == '+' ? 1 : 0);
      const char* last = v.data() + v.size();
      auto [p, ec] = std::from_chars(first, last, out);
      ok = ec == std::errc() && p == last && first != last;
      if (!ok && ec != std::errc::result_out_of_range) {
        double d = 0;
        auto [pd, ecd] = std::from_chars(first, last, d);
        if (ecd == std::errc() && pd == last && std::isfinite(d) && d >= 0 && d < 18446744073709551616.0 &&
            std::floor(d) == d) {
          out = static_cast<uint64_t>(d);
          ok = true;
        }
      }
    }
    if (!ok || out < lo || out > hi) {
      type_error(key, expected, n);
      return std::nullopt;
    }
    return out;
  }

  std::optional<std::string> string(const std::string& key, const YAML::Node& n) {
    if (n.IsScalar()) return n.Scalar();
    type_error(key, "a string", n);
    return std::nullopt;
  }

  // A list of strings; a comma-separated string also works (as in Retina).
  std::optional<std::vector<std::string>> string_list(const std::string& key, const YAML::Node& n) {
    std::vector<std::string> out;
    if (n.IsScalar()) {
      std::string_view s = n.Scalar();
      while (!s.empty()) {
        const size_t comma = s.find(',');
        std::string item = trim(s.substr(0, comma));
        if (!item.empty()) out.push_back(std::move(item));
        if (comma == std::string_view::npos) break;
        s.remove_prefix(comma + 1);
      }
      return out;
    }
    if (!n.IsSequence()) {
      type_error(key, "a list of strings", n);
      return std::nullopt;
    }
    bool good = true;
    size_t i = 0;
    for (const auto& item : n) {
      if (item.IsScalar()) {
        out.push_back(trim(item.Scalar()));
      } else {
        type_error(fmt::format("{}[{}]", key, i), "a string", item);
        good = false;
      }
      ++i;
    }
    if (!good) return std::nullopt;
    return out;
  }

  std::optional<std::chrono::nanoseconds> duration(const std::string& key, const YAML::Node& n) {
    if (!n.IsScalar()) {
      type_error(key, "a duration such as 30s", n);
      return std::nullopt;
    }
    auto d = parse_duration(trim(n.Scalar()));
    if (!d) {
      problem(fmt::format("{}: {}", key, d.error().message));
      return std::nullopt;
    }
    if (d->count() < 0) {
      problem(fmt::format("{}: must not be negative, got {}", key, describe(n)));
      return std::nullopt;
    }
    return *d;
  }

  // A whole number of seconds (conntrack reports, metric TTLs).
  std::optional<std::chrono::seconds> seconds(const std::string& key, const YAML::Node& n) {
    auto d = duration(key, n);
    if (!d) return std::nullopt;
    if (*d % std::chrono::seconds(1) != std::chrono::nanoseconds(0)) {
      problem(fmt::format("{}: must be a whole number of seconds, got {}", key, describe(n)));
      return std::nullopt;
    }
    return std::chrono::duration_cast<std::chrono::seconds>(*d);
  }

  // One of `choices` (case-insensitive); returns its index.
  std::optional<size_t> choice(const std::string& key, const YAML::Node& n,
                               std::initializer_list<std::string_view> choices) {
    if (n.IsScalar()) {
      const std::string v = lower(trim(n.Scalar()));
      size_t i = 0;
      for (auto c : choices) {
        if (v == c) return i;
        ++i;
      }
    }
    type_error(key, "one of " + join(choices, ", "), n);
    return std::nullopt;
  }
};

// Dispatches the keys of one YAML map to handlers, reporting unknown and
// repeated keys.
struct KeyTable {
  struct Entry {
    std::string_view name;
    std::function<void(const std::string& path, const YAML::Node& value)> handle;
  };
  std::vector<Entry> entries;
  std::vector<std::string_view> ignored;  // accepted, ignored with a warning

  void run(Reader& r, const std::string& prefix, const YAML::Node& map) const {
    std::vector<std::string> seen;
    for (const auto& kv : map) {
      if (!kv.first.IsScalar()) {
        r.problem(fmt::format("{}expected text keys, got {} as a key", prefix, describe(kv.first)));
        continue;
      }
      const std::string key = kv.first.Scalar();
      const std::string path = prefix + key;
      const std::string lkey = lower(key);
      if (contains(seen, lkey)) {
        r.problem(fmt::format("{}: given more than once", path));
        continue;
      }
      seen.push_back(lkey);
      const Entry* hit = nullptr;
      for (const auto& e : entries) {
        if (lower(e.name) == lkey) hit = &e;
      }
      if (hit) {
        if (!kv.second.IsNull()) hit->handle(path, kv.second);
        continue;
      }
      bool ignore = false;
      for (auto name : ignored) ignore = ignore || lower(name) == lkey;
      if (ignore) {
        log::warn("config", "ignoring a Retina key that does not apply to this agent", {{"key", path}});
        continue;
      }
      std::vector<std::string> known;
      for (const auto& e : entries) known.emplace_back(e.name);
      for (auto name : ignored) known.emplace_back(name);
      std::string msg = fmt::format("{}: unknown key", path);
      if (auto near = closest(key, known)) msg += fmt::format(" (did you mean {}{}?)", prefix, *near);
      r.problem(std::move(msg));
    }
  }
};

bool require_map(Reader& r, const std::string& path, const YAML::Node& n) {
  if (n.IsMap()) return true;
  r.type_error(path, "a map", n);
  return false;
}

void read_context_option(Reader& r, const std::string& path, const YAML::Node& n, Config& cfg) {
  if (!require_map(r, path, n)) return;
  MetricsContextOption opt;
  KeyTable t;
  t.entries = {
      {"metricName",
       [&](const std::string& p, const YAML::Node& v) {
         if (auto s = r.string(p, v)) opt.metric_name = trim(*s);
       }},
      {"sourceLabels",
       [&](const std::string& p, const YAML::Node& v) {
         if (auto l = r.string_list(p, v)) opt.source_labels = std::move(*l);
       }},
      {"destinationLabels",
       [&](const std::string& p, const YAML::Node& v) {
         if (auto l = r.string_list(p, v)) opt.destination_labels = std::move(*l);
       }},
      {"additionalLabels",
       [&](const std::string& p, const YAML::Node& v) {
         if (auto l = r.string_list(p, v)) opt.additional_labels = std::move(*l);
       }},
      {"ttl",
       [&](const std::string& p, const YAML::Node& v) {
         if (auto s = r.seconds(p, v)) opt.ttl = *s;
       }},
  };
  t.run(r, path + ".", n);
  cfg.context_options.push_back(std::move(opt));
}

void read_metrics_configuration(Reader& r, const std::string& path, const YAML::Node& n, Config& cfg) {
  if (!require_map(r, path, n)) return;
  KeyTable t;
  t.entries = {
      {"contextOptions",
       [&](const std::string& p, const YAML::Node& v) {
         if (!v.IsSequence()) {
           r.type_error(p, "a list of context options", v);
           return;
         }
         size_t i = 0;
         for (const auto& item : v) read_context_option(r, fmt::format("{}[{}]", p, i++), item, cfg);
       }},
      {"namespaces",
       [&](const std::string& p, const YAML::Node& v) {
         if (!require_map(r, p, v)) return;
         KeyTable ns;
         ns.entries = {
             {"include",
              [&](const std::string& q, const YAML::Node& w) {
                if (auto l = r.string_list(q, w)) cfg.metrics_namespaces.include = std::move(*l);
              }},
             {"exclude",
              [&](const std::string& q, const YAML::Node& w) {
                if (auto l = r.string_list(q, w)) cfg.metrics_namespaces.exclude = std::move(*l);
              }},
         };
         ns.run(r, p + ".", v);
       }},
  };
  t.run(r, path + ".", n);
}

Result<Config> parse_document(const YAML::Node& root) {
  Config cfg;
  Reader r;
  if (root.IsNull()) return cfg;
  if (!root.IsMap()) {
    return unexpected(Error::invalid(
        fmt::format("config: expected a map of keys at the top level, got {}", describe(root))));
  }

  std::optional<std::chrono::nanoseconds> interval_duration;
  std::optional<std::chrono::nanoseconds> interval_legacy;
  const auto u32 = [&](uint32_t& field) {
    return [&r, &field](const std::string& p, const YAML::Node& v) {
      if (auto x = r.integer(p, v, 0, UINT32_MAX)) field = static_cast<uint32_t>(*x);
    };
  };
  const auto flag = [&](bool& field) {
    return [&r, &field](const std::string& p, const YAML::Node& v) {
      if (auto b = r.boolean(p, v)) field = *b;
    };
  };
  const auto text = [&](std::string& field) {
    return [&r, &field](const std::string& p, const YAML::Node& v) {
      if (auto s = r.string(p, v)) field = trim(*s);
    };
  };
  const auto list = [&](std::vector<std::string>& field) {
    return [&r, &field](const std::string& p, const YAML::Node& v) {
      if (auto l = r.string_list(p, v)) field = std::move(*l);
    };
  };

  KeyTable t;
  t.ignored.assign(std::begin(kIgnoredRetinaKeys), std::end(kIgnoredRetinaKeys));
  t.entries = {
      // ---- Retina's keys ----
      {"apiServer",
       [&](const std::string& p, const YAML::Node& v) {
         if (!require_map(r, p, v)) return;
         KeyTable api;
         api.entries = {
             {"host", text(cfg.api_server_host)},
             {"port",
              [&](const std::string& q, const YAML::Node& w) {
                if (auto x = r.integer(q, w, 0, 65535)) cfg.api_server_port = static_cast<uint16_t>(*x);
              }},
         };
         api.run(r, p + ".", v);
       }},
      {"logLevel",
       [&](const std::string& p, const YAML::Node& v) {
         // Retina's zap levels too: dpanic, panic and fatal log as errors.
         if (auto i = r.choice(p, v, {"trace", "debug", "info", "warn", "warning", "error", "dpanic", "panic", "fatal"})) {
           static constexpr LogLevel kMap[] = {LogLevel::kTrace, LogLevel::kDebug, LogLevel::kInfo,
                                               LogLevel::kWarn,  LogLevel::kWarn,  LogLevel::kError,
                                               LogLevel::kError, LogLevel::kError, LogLevel::kError};
           cfg.log_level = kMap[*i];
         }
       }},
      {"enabledPlugin", list(cfg.enabled_plugins)},
      {"metricsIntervalDuration",
       [&](const std::string& p, const YAML::Node& v) { interval_duration = r.duration(p, v); }},
      {"metricsInterval",
       [&](const std::string& p, const YAML::Node& v) {
         // Deprecated in Retina: a number of seconds. A duration string is
         // taken as written.
         const std::string s = v.IsScalar() ? trim(v.Scalar()) : std::string();
         if (!s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; })) {
           if (auto x = r.integer(p, v, 0, 1u << 30)) interval_legacy = std::chrono::seconds(*x);
         } else {
           interval_legacy = r.duration(p, v);
         }
       }},
      {"enablePodLevel", flag(cfg.enable_pod_level)},
      {"remoteContext", flag(cfg.remote_context)},
      {"enableAnnotations", flag(cfg.enable_annotations)},
      {"bypassLookupIPOfInterest", flag(cfg.bypass_lookup_ip_of_interest)},
      {"dataAggregationLevel",
       [&](const std::string& p, const YAML::Node& v) {
         if (auto i = r.choice(p, v, {"low", "high"})) {
           cfg.data_aggregation_level = *i == 0 ? AggregationLevel::kLow : AggregationLevel::kHigh;
         }
       }},
      {"dataSamplingRate",
       [&](const std::string& p, const YAML::Node& v) {
         if (auto x = r.integer(p, v, 0, UINT32_MAX)) {
           // Retina treats 0 as unset and samples every packet.
           cfg.data_sampling_rate = *x == 0 ? 1 : static_cast<uint32_t>(*x);
         }
       }},
      {"conntrackReportInterval",
       [&](const std::string& p, const YAML::Node& v) {
         if (auto s = r.seconds(p, v)) cfg.conntrack_report_interval = *s;
       }},
      {"packetParserRingBuffer",
       [&](const std::string& p, const YAML::Node& v) {
         if (v.IsScalar() && lower(trim(v.Scalar())) == "auto") {
           r.problem(fmt::format("{}: auto is not supported (as in Retina); use enabled or disabled", p));
           return;
         }
         if (auto i = r.choice(p, v, {"enabled", "disabled"})) cfg.packet_parser_ring_buffer = *i == 0;
       }},
      {"packetParserRingBufferSize",
       [&](const std::string& p, const YAML::Node& v) {
         if (auto x = r.integer(p, v, 0, UINT64_MAX)) cfg.packet_parser_ring_buffer_size = *x;
       }},
      {"filterMapMaxEntries", u32(cfg.filter_map_max_entries)},
      {"enableTCX",
       [&](const std::string& p, const YAML::Node& v) {
         if (v.IsScalar() && trim(v.Scalar()).empty()) return;  // rendered empty: auto, as Retina
         if (v.IsScalar() && lower(trim(v.Scalar())) == "always") {
           r.problem(fmt::format("{}: always is not supported by this agent; use auto (tcx when the kernel "
                                 "has it, tc otherwise) or off",
                                 p));
           return;
         }
         if (auto i = r.choice(p, v, {"auto", "off", "true", "false"})) {
           cfg.enable_tcx = (*i == 0 || *i == 2) ? TcxMode::kAuto : TcxMode::kOff;
         }
       }},
      {"enableConntrackMetrics", flag(cfg.enable_conntrack_metrics)},
      // ---- ours ----
      {"endpointsFile", text(cfg.endpoints_file)},
      {"kubeconfig", text(cfg.kubeconfig)},
      {"enableKubernetes", flag(cfg.enable_kubernetes)},
      {"nodeName", text(cfg.node_name)},
      {"flowLogPath", text(cfg.flow_log_path)},
      {"flowLogMaxSize", u32(cfg.flow_log_max_size_mb)},
      {"flowLogMaxFiles", u32(cfg.flow_log_max_files)},
      {"enableCapture", flag(cfg.enable_capture)},
      {"captureOutputRoot", text(cfg.capture_output_root)},
      {"captureMaxDuration",
       [&](const std::string& p, const YAML::Node& v) {
         if (auto s = r.seconds(p, v)) cfg.capture_max_duration = *s;
       }},
      // ---- Hubble mode ----
      {"enableHubble", flag(cfg.enable_hubble)},
      {"hubbleListenAddress", text(cfg.hubble_listen_address)},
      {"hubbleMetricsServer", text(cfg.hubble_metrics_server)},
      {"hubbleMetrics", list(cfg.hubble_metrics)},
      {"hubbleEventBufferCapacity", u32(cfg.hubble_event_buffer_capacity)},
      {"hubbleTLSCertFile", text(cfg.hubble_tls_cert_file)},
      {"hubbleTLSKeyFile", text(cfg.hubble_tls_key_file)},
      {"hubbleTLSClientCAFiles", list(cfg.hubble_tls_client_ca_files)},
      {"hostInterfaces", list(cfg.host_interfaces)},
      {"podInterfacePrefixes", list(cfg.pod_interface_prefixes)},
      {"dropIncludeExpected", flag(cfg.drop_include_expected)},
      {"dropEventsPerSecond", u32(cfg.drop_events_per_second)},
      {"conntrackMaxEntries", u32(cfg.conntrack_max_entries)},
      {"maxSeriesPerMetric", u32(cfg.max_series_per_metric)},
      {"podForwardMetrics", flag(cfg.pod_forward_metrics)},
      {"kernelDropReasons", flag(cfg.kernel_drop_reasons)},
      {"interfaceStatsPerInterface", flag(cfg.interface_stats_per_interface)},
      {"tcpConnectionRemotePerAddress", flag(cfg.tcp_connection_remote_per_address)},
      {"tcpFlagsSeparateSynAck", flag(cfg.tcp_flags_separate_syn_ack)},
      {"advMetricsWithoutConfiguration", flag(cfg.adv_metrics_without_configuration)},
      {"metricsConfiguration",
       [&](const std::string& p, const YAML::Node& v) { read_metrics_configuration(r, p, v, cfg); }},
  };
  t.run(r, "", root);

  // metricsIntervalDuration wins; Retina's deprecated metricsInterval is the
  // fallback. Zero means unset for both, as in Retina.
  if (interval_duration && interval_duration->count() > 0) {
    cfg.metrics_interval = std::chrono::duration_cast<std::chrono::milliseconds>(*interval_duration);
  } else if (interval_legacy && interval_legacy->count() > 0) {
    cfg.metrics_interval = std::chrono::duration_cast<std::chrono::milliseconds>(*interval_legacy);
    log::warn("config", "metricsInterval is deprecated; use metricsIntervalDuration",
              {{"metricsInterval", format_duration(*interval_legacy)}});
  }

  std::vector<std::string> problems = std::move(r.problems);
  if (auto st = cfg.validate(); !st) {
    for (const Problem& p : st.error().problems) {
      std::string line = p.path.empty() ? p.message : p.path + ": " + p.message;
      if (!contains(problems, line)) problems.push_back(std::move(line));
    }
  }
  if (!problems.empty()) return unexpected(Error::invalid(as_problems(std::move(problems))));
  return cfg;
}

bool valid_interface_name(std::string_view name) {
  // IFNAMSIZ is 16 with the terminating NUL.
  if (name.empty() || name.size() > 15 || name == "." || name == "..") return false;
  for (unsigned char c : name) {
    if (c <= ' ' || c == '/' || c == ':' || c == 0x7f) return false;
  }
  return true;
}

// Counts documents with content, stopping at two. (YAML::LoadAll never
// returns on some inputs, e.g. a lone ",": it keeps yielding empty documents.)
class DocumentCounter final : public YAML::EventHandler {
 public:
  bool content = false;
  void OnDocumentStart(const YAML::Mark&) override {}
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
  void OnAlias(const YAML::Mark&, YAML::anchor_t) override { content = true; }
  void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t, const std::string&) override {
    content = true;
  }
  void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override {
    content = true;
  }
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override {
    content = true;
  }
  void OnMapEnd() override {}
};

size_t count_documents(const std::string& text) {
  std::istringstream in(text);
  YAML::Parser parser(in);
  size_t with_content = 0;
  // Bounded: an input that yields endless empty documents ends here too.
  for (int i = 0; i < 64 && with_content < 2; ++i) {
    DocumentCounter counter;
    if (!parser.HandleNextDocument(counter)) break;
    if (counter.content) ++with_content;
  }
  return with_content;
}

// "host:port", ":port", "[v6]:port"; port 0 to 65535.
bool valid_listen_address(std::string_view a) {
  const size_t colon = a.rfind(':');
  if (colon == std::string_view::npos) return false;
  const std::string_view host = a.substr(0, colon), port = a.substr(colon + 1);
  unsigned n = 0;
  auto [ptr, ec] = std::from_chars(port.data(), port.data() + port.size(), n);
  if (port.empty() || ec != std::errc() || ptr != port.data() + port.size() || n > 65535) return false;
  if (host.starts_with('[')) return host.ends_with(']') && host.size() > 2;
  for (unsigned char c : host)
    if (c <= ' ' || c == '/' || c == ':' || c == 0x7f) return false;
  return true;
}

void check_hubble(std::vector<std::string>& p, const Config& c) {
  if (!valid_listen_address(c.hubble_listen_address))
    p.push_back(fmt::format("hubbleListenAddress: \"{}\" is not host:port (e.g. :4244)", c.hubble_listen_address));
  if (!c.hubble_metrics_server.empty() && !valid_listen_address(c.hubble_metrics_server))
    p.push_back(fmt::format("hubbleMetricsServer: \"{}\" is not host:port (e.g. :9965), or empty to disable",
                            c.hubble_metrics_server));
  if (auto m = hubble_spec::parse_metrics(c.hubble_metrics); !m) p.push_back("hubbleMetrics: " + m.error().message);
  if (c.hubble_event_buffer_capacity < 1 || c.hubble_event_buffer_capacity > (1u << 20))
    p.push_back(fmt::format("hubbleEventBufferCapacity: must be from 1 to {}, got {}", 1u << 20,
                            c.hubble_event_buffer_capacity));
  if (c.hubble_tls_cert_file.empty() != c.hubble_tls_key_file.empty())
    p.push_back(c.hubble_tls_cert_file.empty() ? "hubbleTLSCertFile: required with hubbleTLSKeyFile"
                                               : "hubbleTLSKeyFile: required with hubbleTLSCertFile");
  if (!c.hubble_tls_client_ca_files.empty() && c.hubble_tls_cert_file.empty())
    p.push_back("hubbleTLSClientCAFiles: client certificates need server TLS (hubbleTLSCertFile and hubbleTLSKeyFile)");
}

}  // namespace

Status Config::validate() const {
  std::vector<std::string> p;

  if (trim(api_server_host).empty()) p.push_back("apiServer.host: must not be empty");
  if (flow_log_max_size_mb > kMaxFlowLogSizeMb) {
    p.push_back(fmt::format("flowLogMaxSize: must be at most {} (megabytes; 0 never rotates), got {}", kMaxFlowLogSizeMb,
                            flow_log_max_size_mb));
  }
  if (flow_log_max_files < 1 || flow_log_max_files > kMaxFlowLogFiles) {
    p.push_back(fmt::format("flowLogMaxFiles: must be from 1 to {}, got {}", kMaxFlowLogFiles, flow_log_max_files));
  }
  for (unsigned char c : api_server_host) {
    if (std::isspace(c) || c < 0x20) {
      p.push_back(fmt::format("apiServer.host: \"{}\" is not a host name or address", api_server_host));
      break;
    }
  }

  const auto known = builtin_plugin_names();
  std::vector<std::string> names;
  for (auto n : known) names.emplace_back(n);
  std::vector<std::string_view> seen;
  for (const auto& name : enabled_plugins) {
    if (!contains(known, name)) {
      std::string msg = fmt::format("enabledPlugin: unknown plugin \"{}\" (known: {})", name, join(known, ", "));
      if (auto near = closest(name, names)) msg = fmt::format("enabledPlugin: unknown plugin \"{}\" (did you mean {}?)", name, *near);
      p.push_back(std::move(msg));
    } else if (contains(seen, name)) {
      p.push_back(fmt::format("enabledPlugin: \"{}\" listed twice", name));
    } else {
      seen.push_back(name);
    }
  }

  if (metrics_interval < kMinMetricsInterval) {
    p.push_back(fmt::format("metricsIntervalDuration: must be at least 100ms, got {}",
                            format_duration(metrics_interval)));
  }
  if (data_sampling_rate < 1) p.push_back("dataSamplingRate: must be at least 1 (1 keeps every packet)");
  if (conntrack_report_interval < std::chrono::seconds(1)) {
    p.push_back(fmt::format("conntrackReportInterval: must be at least 1s, got {}",
                            format_duration(conntrack_report_interval)));
  }

  const uint64_t page = static_cast<uint64_t>(sysconf(_SC_PAGESIZE) > 0 ? sysconf(_SC_PAGESIZE) : 4096);
  const uint64_t rb = packet_parser_ring_buffer_size;
  if (rb != 0 && ((rb & (rb - 1)) != 0 || rb < page || rb > kMaxRingBufferSize)) {
    p.push_back(fmt::format("packetParserRingBufferSize: must be a power of two from {} to {}, got {} (or 0: by CPU count)",
                            with_unit(page), with_unit(kMaxRingBufferSize), rb));
  }
  if (filter_map_max_entries < 1 || filter_map_max_entries > kMaxMapEntries) {
    p.push_back(fmt::format("filterMapMaxEntries: must be from 1 to {}, got {}", kMaxMapEntries, filter_map_max_entries));
  }
  if (conntrack_max_entries < 1 || conntrack_max_entries > kMaxMapEntries) {
    p.push_back(fmt::format("conntrackMaxEntries: must be from 1 to {}, got {}", kMaxMapEntries, conntrack_max_entries));
  }
  if (max_series_per_metric < 1) p.push_back("maxSeriesPerMetric: must be at least 1");

  for (const auto& name : host_interfaces) {
    if (name != "auto" && !valid_interface_name(name)) {
      p.push_back(fmt::format("hostInterfaces: \"{}\" is not an interface name (1-15 characters, no spaces, '/' or ':')", name));
    }
  }
  for (const auto& prefix : pod_interface_prefixes) {
    if (!valid_interface_name(prefix)) {
      p.push_back(fmt::format("podInterfacePrefixes: \"{}\" is not an interface name prefix (1-15 characters, no spaces, '/' or ':')", prefix));
    }
  }

  for (const auto& problem : metrics::adv::configuration_problems(context_options, metrics_namespaces))
    p.push_back(fmt::format("metricsConfiguration.{}: {}", problem.path, problem.message));

  if (capture_output_root.empty() || capture_output_root.front() != '/') {
    p.push_back(fmt::format("captureOutputRoot: \"{}\" must be an absolute path", capture_output_root));
  }
  if (capture_max_duration.count() <= 0) p.push_back("captureMaxDuration: must be above zero");

  check_hubble(p, *this);

  if (p.empty()) return ok();
  return unexpected(Error::invalid(as_problems(std::move(p))));
}

Result<Config> load_config_yaml(std::string_view yaml_text) {
  if (yaml_text.size() > kMaxConfigBytes) {
    return unexpected(Error::invalid(fmt::format("config: {} bytes is larger than the {} limit", yaml_text.size(),
                                                 with_unit(kMaxConfigBytes))));
  }
  try {
    const std::string text(yaml_text);
    if (count_documents(text) > 1) {
      return unexpected(Error::invalid("config: expected one YAML document, found several"));
    }
    const YAML::Node root = YAML::Load(text);
    return parse_document(root);
  } catch (const YAML::Exception& e) {
    if (e.mark.is_null()) return unexpected(Error::parse(fmt::format("yaml: {}", e.msg)));
    return unexpected(
        Error::parse(fmt::format("yaml: line {}, column {}: {}", e.mark.line + 1, e.mark.column + 1, e.msg)));
  } catch (const std::exception& e) {
    return unexpected(Error::parse(fmt::format("yaml: {}", e.what())));
  }
}

Result<Config> load_config_file(const std::string& path) {
  std::string text;
  if (auto st = read_file(path, text, kMaxConfigBytes); !st) {
    if (st.error().kind == Error::Kind::kInvalidArgument)
      return unexpected(Error::invalid(fmt::format("{}: larger than the {} limit", path, with_unit(kMaxConfigBytes))));
    return unexpected(st.error());
  }
  auto cfg = load_config_yaml(text);
  if (!cfg) {
    // Prefix every problem with the file so each line stands alone.
    Error e = cfg.error();
    std::string msg;
    std::istringstream lines(e.message);
    for (std::string line; std::getline(lines, line);) {
      if (!msg.empty()) msg.push_back('\n');
      msg += path + ": " + line;
    }
    e.message = std::move(msg);
    return unexpected(std::move(e));
  }
  return cfg;
}

}  // namespace retina
