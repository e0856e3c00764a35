#include "plugins/linuxutil/linuxutil.hpp"

#include <netinet/in.h>

#include <cerrno>
#include <optional>
#include <string>
#include <vector>

#include <absl/container/flat_hash_map.h>
#include <absl/container/flat_hash_set.h>
#include <fmt/format.h>

#include "core/log.hpp"
#include "plugins/linuxutil/ethtool.hpp"
#include "plugins/linuxutil/file_io.hpp"
#include "plugins/linuxutil/polling.hpp"
#include "plugins/linuxutil/proc_parsers.hpp"
#include "plugins/linuxutil/sock_diag.hpp"
#include "plugins/linuxutil/socket_summary.hpp"
#include "metrics/retina_values.hpp"
#include "retina/metrics/names.hpp"
#include "retina/metrics/registry.hpp"

namespace retina {
namespace linuxutil {
namespace {

namespace names = metrics::names;
using metrics::MetricType;
using metrics::TextWriter;

constexpr std::string_view kPlugin = "linuxutil";
// Retina's name for the number of UDP sockets in udp_connection_stats.
constexpr std::string_view kUdpActive = "ACTIVE";

struct InterfaceStats {
  std::string name;
  std::vector<Stat> stats;
};

struct Snapshot {
  std::optional<TcpSummary> tcp;  // absent when the TCP socket tables failed this poll
  bool per_address = false;       // tcp->remotes by address, else one AllIPs series
  std::vector<Stat> tcp_stats, ip_stats, udp_stats;
  std::vector<InterfaceStats> interfaces;
};

// A statistic_name list for one family fed by several kernel tables. The
// kernel's names do not collide across the tables linuxutil merges; should a
// future one, the later table's entry is renamed "<Table><Name>" rather
// than writing a duplicate series.
class StatList {
 public:
  void add(std::string_view table, const Stat& s) {
    if (seen_.insert(s.name).second) {
      out_.push_back(s);
      return;
    }
    Stat renamed{std::string(table) + s.name, s.value};
    if (seen_.insert(renamed.name).second) out_.push_back(std::move(renamed));
  }
  std::vector<Stat> take() { return std::move(out_); }

 private:
  absl::flat_hash_set<std::string> seen_;
  std::vector<Stat> out_;
};

void write_stats(TextWriter& w, std::string_view family, std::string_view help, const std::vector<Stat>& stats) {
  if (stats.empty()) return;
  w.family(family, help, MetricType::kGauge);
  for (const Stat& s : stats) write_stat(w, family, {{"statistic_name", s.name}}, s.value);
}

void write_snapshot(const Snapshot& s, TextWriter& w) {
  if (s.tcp) {
    w.family(names::kTcpState, "TCP sockets per state (IPv4 and IPv6)", MetricType::kGauge);
    for (uint8_t st = kTcpEstablished; st <= kTcpClosing; ++st)
      w.sample(names::kTcpState, {{"state", tcp_state_name(st)}}, s.tcp->by_state[st]);
    if (!s.per_address) {
      uint64_t all = s.tcp->other_remotes;
      for (const auto& r : s.tcp->remotes) all += r.second;
      w.family(names::kTcpConnectionRemote, "Established TCP connections (remote addresses other than loopback)",
               MetricType::kGauge);
      w.sample(names::kTcpConnectionRemote, {{"address", metrics::kAllIps}}, all);
    } else if (!s.tcp->remotes.empty() || s.tcp->other_remotes) {
      w.family(names::kTcpConnectionRemote,
               "Established TCP connections per remote address (top N, the rest in address=\"other\")",
               MetricType::kGauge);
      std::string addr;
      for (const auto& [ip, n] : s.tcp->remotes) {
        addr.clear();
        ip.append_to(addr);
        w.sample(names::kTcpConnectionRemote, {{"address", addr}}, n);
      }
      if (s.tcp->other_remotes) w.sample(names::kTcpConnectionRemote, {{"address", "other"}}, s.tcp->other_remotes);
    }
  }
  write_stats(w, names::kTcpConnectionStats,
              "TCP counters: Tcp (/proc/net/snmp), TcpExt and MPTcpExt (/proc/net/netstat)", s.tcp_stats);
  write_stats(w, names::kIpConnectionStats,
              "IP counters: Ip (/proc/net/snmp), IpExt (/proc/net/netstat), Ip6 (/proc/net/snmp6)", s.ip_stats);
  write_stats(w, names::kUdpConnectionStats,
              "UDP counters: Udp (/proc/net/snmp), Udp6 (/proc/net/snmp6); ACTIVE is the number of UDP sockets",
              s.udp_stats);
  if (!s.interfaces.empty()) {
    w.family(names::kInterfaceStats, "Interface error and drop counters (ethtool -S and /sys/class/net/*/statistics)",
             MetricType::kGauge);
    for (const InterfaceStats& i : s.interfaces)
      for (const Stat& st : i.stats)
        write_stat(w, names::kInterfaceStats, {{"interface_name", i.name}, {"statistic_name", st.name}}, st.value);
  }
}

// The file or interface disappeared between listing and reading it.
bool is_gone(const Error& e) { return has_errno(e, ENOENT) || has_errno(e, ENODEV); }

// sysfs statistics/* worth exporting: errors and drops, plus rx_nohandler
// (packets dropped because no protocol handler wanted them).
bool keep_sysfs_stat(std::string_view name) { return is_error_or_drop_key(name) || name == "rx_nohandler"; }

// Retina's interface_stats: each statistic summed over the interfaces
// (saturating at 2^64-1), under interface_name="all_interfaces", in
// first-seen order.
std::vector<InterfaceStats> sum_interfaces(std::vector<InterfaceStats> per_interface) {
  if (per_interface.empty()) return {};
  InterfaceStats all{std::string(metrics::kAllInterfaces), {}};
  absl::flat_hash_map<std::string, size_t> index;
  for (InterfaceStats& i : per_interface) {
    for (Stat& st : i.stats) {
      auto [it, fresh] = index.try_emplace(st.name, all.stats.size());
      if (fresh) all.stats.push_back(std::move(st));
      else {
        // Saturates: a driver's all-ones "unknown" must not wrap the sum.
        uint64_t& sum = all.stats[it->second].value.magnitude;
        sum = st.value.magnitude > UINT64_MAX - sum ? UINT64_MAX : sum + st.value.magnitude;
      }
    }
  }
  std::vector<InterfaceStats> out;
  out.push_back(std::move(all));
  return out;
}

class LinuxUtilPlugin final : public PollingPlugin<Snapshot> {
 public:
  explicit LinuxUtilPlugin(LinuxUtilOptions options) : options_(options) {}

  std::string_view name() const override { return kPlugin; }

  Status init(PluginContext& ctx) override {
    if (!ctx.registry) return unexpected(Error::invalid("linuxutil: no metrics registry"));
    if (ctx.config) {
      options_.per_address = options_.per_address || ctx.config->tcp_connection_remote_per_address;
      options_.per_interface = options_.per_interface || ctx.config->interface_stats_per_interface;
    }
    proc_ = ctx.proc_root;
    sys_ = ctx.sys_root;
    using S = LinuxUtilOptions::Sockets;
    const bool diag = options_.sockets == S::kSockDiag || (options_.sockets == S::kAuto && proc_ == "/proc");
    tcp_diag_ = udp_diag_ = diag;
    ethtool_enabled_ = options_.ethtool && sys_ == "/sys";

    auto& r = *ctx.registry;
    snmp_.emplace(r, kPlugin, "snmp");
    netstat_.emplace(r, kPlugin, "netstat");
    snmp6_.emplace(r, kPlugin, "snmp6");
    tcp_sockets_.emplace(r, kPlugin, "tcp_sockets");
    udp_sockets_.emplace(r, kPlugin, "udp_sockets");
    interfaces_.emplace(r, kPlugin, "interfaces");
    if (ethtool_enabled_) ethtool_.emplace(r, kPlugin, "ethtool");
    attach(r, &write_snapshot);
    return ok();
  }

 private:
  // Reads every source into a fresh snapshot. A failing source leaves its
  // series out of this snapshot (no stale values) and is counted; the
  // result is an error only when the poll produced nothing at all.
  Status poll() override {
    auto snap = std::make_shared<Snapshot>();
    StatList tcp, ip, udp;
    FirstError first_error;
    auto report = [&](PolledSource& src, const Status& st) {
      if (st) {
        src.succeeded();
        return;
      }
      src.failed(st.error());
      first_error.note(st.error());
    };

    report(*snmp_, read_tables(proc_ + "/net/snmp", [&](const StatTable& t) {
      if (t.prefix == "Tcp") for (const Stat& s : t.stats) tcp.add(t.prefix, s);
      else if (t.prefix == "Ip") for (const Stat& s : t.stats) ip.add(t.prefix, s);
      else if (t.prefix == "Udp") for (const Stat& s : t.stats) udp.add(t.prefix, s);
    }));
    report(*netstat_, read_tables(proc_ + "/net/netstat", [&](const StatTable& t) {
      if (t.prefix == "TcpExt" || t.prefix == "MPTcpExt") for (const Stat& s : t.stats) tcp.add(t.prefix, s);
      else if (t.prefix == "IpExt") for (const Stat& s : t.stats) ip.add(t.prefix, s);
    }));
    report(*snmp6_, read_snmp6(ip, udp));

    auto tcp_socks = read_sockets(IPPROTO_TCP, tcp_diag_);
    if (tcp_socks) {
      TcpTally tally;
      tally.add(*tcp_socks);
      snap->tcp = std::move(tally).finish(options_.remote_top_n);
      snap->per_address = options_.per_address;
    }
    report(*tcp_sockets_, tcp_socks ? ok() : Status(unexpected(tcp_socks.error())));
    auto udp_socks = read_sockets(IPPROTO_UDP, udp_diag_);
    if (udp_socks) udp.add("Udp", Stat{std::string(kUdpActive), StatValue{udp_socks->size(), false}});
    report(*udp_sockets_, udp_socks ? ok() : Status(unexpected(udp_socks.error())));

    std::optional<Status> ethtool_status;  // set when the interfaces were listed and ethtool ran
    report(*interfaces_, read_interfaces(snap->interfaces, ethtool_status));
    if (ethtool_ && ethtool_status) report(*ethtool_, *ethtool_status);
    if (!options_.per_interface) snap->interfaces = sum_interfaces(std::move(snap->interfaces));

    snap->tcp_stats = tcp.take();
    snap->ip_stats = ip.take();
    snap->udp_stats = udp.take();
    const bool empty = !snap->tcp && snap->tcp_stats.empty() && snap->ip_stats.empty() && snap->udp_stats.empty() &&
                       snap->interfaces.empty();
    publish(std::move(snap));
    if (auto st = first_error.status(); empty && !st)
      return unexpected(st.error().wrap("linuxutil: no source could be read this poll; first"));
    return ok();
  }

  template <class Fn>
  Status read_tables(const std::string& path, Fn&& on_table) {
    if (auto st = read_text_file(path, buf_); !st) return st;
    auto tables = parse_proc_tables(buf_);
    if (!tables) return unexpected(tables.error().wrap(path));
    for (const StatTable& t : *tables) on_table(t);
    return ok();
  }

  // Ip6* and Udp6* of /proc/net/snmp6; the file is absent when IPv6 is off.
  Status read_snmp6(StatList& ip, StatList& udp) {
    const std::string path = proc_ + "/net/snmp6";
    if (auto st = read_text_file(path, buf_); !st) return is_gone(st.error()) ? ok() : st;
    auto stats = parse_proc_snmp6(buf_);
    if (!stats) return unexpected(stats.error().wrap(path));
    for (const Stat& s : *stats) {
      if (s.name.starts_with("Ip6")) ip.add("Ip6", s);
      else if (s.name.starts_with("Udp6")) udp.add("Udp6", s);
    }
    return ok();
  }

  Result<std::vector<SocketEntry>> read_sockets(int protocol, bool& use_diag) {
    const char* proto = protocol == IPPROTO_TCP ? "tcp" : "udp";
    if (use_diag) {
      auto r = sock_diag_dump(protocol);
      if (r || options_.sockets == LinuxUtilOptions::Sockets::kSockDiag ||
          r.error().kind != Error::Kind::kUnsupported)
        return r;
      log::info("linuxutil", "sock_diag unusable; reading the /proc files instead", {{"error", r.error().message}, {"file", fmt::format("{}/net/{}", proc_, proto)}});
      use_diag = false;
    }
    std::vector<SocketEntry> all;
    for (const char* suffix : {"", "6"}) {
      const std::string path = fmt::format("{}/net/{}{}", proc_, proto, suffix);
      if (auto st = read_text_file(path, buf_); !st) {
        if (*suffix && is_gone(st.error())) continue;  // no IPv6
        return unexpected(st.error());
      }
      auto socks = parse_proc_sockets(buf_);
      if (!socks) return unexpected(socks.error().wrap(path));
      all.insert(all.end(), socks->begin(), socks->end());
    }
    return all;
  }

  // Every interface but lo: ethtool keys first (Retina's source), then the
  // sysfs counters ethtool did not already report under the same name.
  Status read_interfaces(std::vector<InterfaceStats>& out, std::optional<Status>& ethtool_status) {
    const std::string net = sys_ + "/class/net";
    auto ifaces = list_dir(net, EntryKind::kDirectory);
    if (!ifaces) return unexpected(ifaces.error());
    std::optional<EthtoolReader> ethtool;
    FirstError ethtool_error, sysfs_error;
    if (ethtool_enabled_) {
      auto r = EthtoolReader::open();
      if (r) ethtool.emplace(std::move(*r));
      else ethtool_error.note(r.error());
    }
    absl::flat_hash_set<std::string> seen;
    for (const std::string& name : *ifaces) {
      if (name == "lo") continue;
      InterfaceStats iface{name, {}};
      seen.clear();
      if (ethtool) {
        auto stats = ethtool->stats(name);
        if (stats) {
          for (EthtoolStat& s : *stats)
            if (is_error_or_drop_key(s.name) && seen.insert(s.name).second)
              iface.stats.push_back({std::move(s.name), StatValue{s.value, false}});
        } else if (stats.error().kind != Error::Kind::kUnsupported && !is_gone(stats.error()) &&
                   !has_errno(stats.error(), ENXIO)) {
          ethtool_error.note(stats.error());
        }
      }
      const std::string dir = net + "/" + name + "/statistics";
      auto files = list_dir(dir);
      if (!files) {
        if (!is_gone(files.error())) sysfs_error.note(files.error());
      } else {
        for (const std::string& f : *files) {
          if (!keep_sysfs_stat(f) || seen.contains(f)) continue;
          const std::string path = dir + "/" + f;
          if (auto st = read_text_file(path, buf_); !st) {
            if (is_gone(st.error())) break;  // the interface went away mid-read
            sysfs_error.note(st.error());
            continue;
          }
          auto v = parse_sysfs_u64(buf_);
          if (!v) {
            sysfs_error.note(v.error().wrap(path));
            continue;
          }
          iface.stats.push_back({f, StatValue{*v, false}});
        }
      }
      if (!iface.stats.empty()) out.push_back(std::move(iface));
    }
    if (ethtool_enabled_) ethtool_status = ethtool_error.status();
    return sysfs_error.status();
  }

  LinuxUtilOptions options_;
  std::string proc_, sys_;
  bool tcp_diag_ = false, udp_diag_ = false, ethtool_enabled_ = false;
  std::optional<PolledSource> snmp_, netstat_, snmp6_, tcp_sockets_, udp_sockets_, interfaces_, ethtool_;
  std::string buf_;  // file contents, reused across reads
};

}  // namespace
}  // namespace linuxutil

std::unique_ptr<Plugin> make_linuxutil_plugin() { return make_linuxutil_plugin(LinuxUtilOptions{}); }

std::unique_ptr<Plugin> make_linuxutil_plugin(LinuxUtilOptions options) {
  return std::make_unique<linuxutil::LinuxUtilPlugin>(options);
}

}  // namespace retina
