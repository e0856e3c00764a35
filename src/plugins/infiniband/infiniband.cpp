#include "plugins/infiniband/infiniband.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <optional>
#include <string>
#include <vector>

#include <absl/container/flat_hash_set.h>
#include <fmt/format.h>

#include "plugins/infiniband/sysfs_parsers.hpp"
#include "plugins/linuxutil/file_io.hpp"
#include "plugins/linuxutil/polling.hpp"
#include "plugins/linuxutil/value_parsers.hpp"
#include "retina/metrics/names.hpp"
#include "retina/metrics/registry.hpp"

namespace retina {
namespace infiniband {
namespace {

namespace names = metrics::names;
using linuxutil::EntryKind;
using linuxutil::FirstError;
using linuxutil::has_errno;
using linuxutil::list_dir;
using linuxutil::PolledSource;
using linuxutil::PollingPlugin;
using linuxutil::read_text_file;
using linuxutil::StatValue;
using metrics::MetricType;
using metrics::TextWriter;

constexpr std::string_view kPlugin = "infiniband";
constexpr uint64_t kArphrdInfiniband = 32;  // /sys/class/net/<if>/type of an IPoIB interface

struct CounterSample {
  std::string device, port, name;
  uint64_t value = 0;
};

struct ParamSample {
  std::string iface, name;
  StatValue value;
};

struct Snapshot {
  std::vector<CounterSample> counters;
  std::vector<ParamSample> params;
};

void write_snapshot(const Snapshot& s, TextWriter& w) {
  if (!s.counters.empty()) {
    w.family(names::kInfinibandCounterStats,
             "InfiniBand port counters (/sys/class/infiniband/<device>/ports/<port>/{counters,hw_counters})",
             MetricType::kGauge);
    for (const CounterSample& c : s.counters)
      w.sample(names::kInfinibandCounterStats,
               {{"statistic_name", c.name}, {"device", c.device}, {"port", c.port}}, c.value);
  }
  if (!s.params.empty()) {
    w.family(names::kInfinibandStatusParams, "IPoIB interface parameters (/sys/class/net/<if>)", MetricType::kGauge);
    for (const ParamSample& p : s.params)
      linuxutil::write_stat(w, names::kInfinibandStatusParams,
                            {{"statistic_name", p.name}, {"interface_name", p.iface}}, p.value);
  }
}

// A parsed attribute; nullopt when the attribute says "unknown".
using ParamValue = Result<std::optional<StatValue>>;

ParamValue known(Result<uint64_t> r) {
  if (!r) return unexpected(r.error());
  return std::optional<StatValue>{StatValue{*r, false}};
}
ParamValue decimal(std::string_view t) { return known(linuxutil::parse_sysfs_u64(t)); }
ParamValue mode(std::string_view t) { return known(parse_ipoib_mode(t)); }
ParamValue hex(std::string_view t) { return known(parse_sysfs_hex(t)); }
ParamValue operstate(std::string_view t) { return known(parse_operstate(t)); }
ParamValue speed(std::string_view t) {  // Mb/s; -1 when the link does not know
  auto v = linuxutil::parse_sysfs_i64(t);
  if (!v) return unexpected(v.error());
  if (*v < 0) return std::optional<StatValue>{};
  return std::optional<StatValue>{StatValue{static_cast<uint64_t>(*v), false}};
}

// The IPoIB attributes exported as status params, by file name under
// /sys/class/net/<if>/.
struct ParamSpec {
  std::string_view file;
  ParamValue (*parse)(std::string_view text);
};
constexpr ParamSpec kParams[] = {
    {"mode", mode},       {"umcast", decimal},      {"pkey", hex},    {"mtu", decimal},
    {"carrier", decimal}, {"operstate", operstate}, {"speed", speed}, {"tx_queue_len", decimal},
};

class InfinibandPlugin final : public PollingPlugin<Snapshot> {
 public:
  std::string_view name() const override { return kPlugin; }

  Status init(PluginContext& ctx) override {
    if (!ctx.registry) return unexpected(Error::invalid("infiniband: no metrics registry"));
    const std::string ib = ctx.sys_root + "/class/infiniband";
    struct stat st {};
    if (::stat(ib.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
      return unexpected(Error::unsupported(fmt::format("infiniband: no InfiniBand devices ({} missing)", ib)));
    auto devices = list_dir(ib, EntryKind::kDirectory);
    if (!devices) return unexpected(devices.error().wrap("infiniband"));
    if (devices->empty())
      return unexpected(Error::unsupported(fmt::format("infiniband: no InfiniBand devices ({} is empty)", ib)));

    sys_ = ctx.sys_root;
    counters_.emplace(*ctx.registry, kPlugin, "counters");
    ipoib_.emplace(*ctx.registry, kPlugin, "ipoib");
    attach(*ctx.registry, &write_snapshot);
    return ok();
  }

 private:
  Status poll() override {
    auto snap = std::make_shared<Snapshot>();
    const Status counters = read_counters(snap->counters);
    const Status params = read_params(snap->params);
    counters ? counters_->succeeded() : counters_->failed(counters.error());
    params ? ipoib_->succeeded() : ipoib_->failed(params.error());
    publish(std::move(snap));
    if (!counters && !params)
      return unexpected(counters.error().wrap("infiniband: every source failed this poll; first"));
    return ok();
  }

  // A file that cannot be read or parsed is left out and fails the source
  // for this poll; the other files still export.
  Status read_counters(std::vector<CounterSample>& out) {
    const std::string ib = sys_ + "/class/infiniband";
    auto devices = list_dir(ib, EntryKind::kDirectory);
    if (!devices) return unexpected(devices.error());
    FirstError error;
    absl::flat_hash_set<std::string> seen;
    for (const std::string& dev : *devices) {
      const std::string ports_dir = ib + "/" + dev + "/ports";
      auto ports = list_dir(ports_dir, EntryKind::kDirectory);
      if (!ports) {
        if (!has_errno(ports.error(), ENOENT)) error.note(ports.error());  // ENOENT: device removed
        continue;
      }
      for (const std::string& port : *ports) {
        seen.clear();
        for (const char* sub : {"counters", "hw_counters"}) {
          const std::string dir = ports_dir + "/" + port + "/" + sub;
          auto files = list_dir(dir);
          if (!files) {
            if (!has_errno(files.error(), ENOENT)) error.note(files.error());  // hw_counters is driver specific
            continue;
          }
          for (const std::string& f : *files) {
            if (seen.contains(f)) continue;  // a hw_counters name that counters/ already has
            const std::string path = dir + "/" + f;
            if (auto st = read_text_file(path, buf_); !st) {
              error.note(st.error());
              continue;
            }
            auto v = parse_ib_counter(buf_);
            if (!v) {
              error.note(v.error().wrap(path));
              continue;
            }
            if (!*v) continue;  // "N/A (no PMA)"
            seen.insert(f);
            out.push_back({dev, port, f, **v});
          }
        }
      }
    }
    return error.status();
  }

  // IPoIB interfaces are those whose type is ARPHRD_INFINIBAND (32).
  Status read_params(std::vector<ParamSample>& out) {
    const std::string net = sys_ + "/class/net";
    auto ifaces = list_dir(net, EntryKind::kDirectory);
    if (!ifaces) return unexpected(ifaces.error());
    FirstError error;
    for (const std::string& iface : *ifaces) {
      const std::string dir = net + "/" + iface;
      if (auto st = read_text_file(dir + "/type", buf_); !st) {
        if (!has_errno(st.error(), ENOENT)) error.note(st.error());  // ENOENT: interface removed
        continue;
      }
      auto type = linuxutil::parse_sysfs_u64(buf_);
      if (!type) {
        error.note(type.error().wrap(dir + "/type"));
        continue;
      }
      if (*type != kArphrdInfiniband) continue;
      for (const ParamSpec& p : kParams) {
        const std::string path = dir + "/" + std::string(p.file);
        if (auto st = read_text_file(path, buf_); !st) {
          // ENOENT: not every driver has every attribute. EINVAL: carrier
          // and speed of an interface that is down.
          if (!has_errno(st.error(), ENOENT) && !has_errno(st.error(), EINVAL)) error.note(st.error());
          continue;
        }
        auto v = p.parse(buf_);
        if (!v) {
          error.note(v.error().wrap(path));
          continue;
        }
        if (*v) out.push_back({iface, std::string(p.file), **v});
      }
      read_debug_params(iface, dir + "/debug", out);
    }
    return error.status();
  }

  // Retina's source: the numeric files of /sys/class/net/<if>/debug (mlx5
  // IPoIB). Text files there are not values and are skipped.
  void read_debug_params(const std::string& iface, const std::string& dir, std::vector<ParamSample>& out) {
    auto files = list_dir(dir);
    if (!files) return;  // most drivers have no debug directory
    for (const std::string& f : *files) {
      const bool taken =
          std::any_of(std::begin(kParams), std::end(kParams), [&](const ParamSpec& p) { return p.file == f; });
      if (taken || !read_text_file(dir + "/" + f, buf_)) continue;
      if (auto v = linuxutil::parse_sysfs_u64(buf_)) out.push_back({iface, f, StatValue{*v, false}});
    }
  }

  std::string sys_;
  std::optional<PolledSource> counters_, ipoib_;
  std::string buf_;
};

}  // namespace
}  // namespace infiniband

std::unique_ptr<Plugin> make_infiniband_plugin() { return std::make_unique<infiniband::InfinibandPlugin>(); }

}  // namespace retina
