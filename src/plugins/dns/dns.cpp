#include "plugins/dns/dns.hpp"

#include <fcntl.h>
#include <linux/bpf.h>
#include <linux/magic.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <cerrno>
#include <mutex>

#include <fmt/format.h>

#include "core/log.hpp"
#include "dns.skel.h"
#include "loader/fd.hpp"
#include "plugins/bpf_plugin.hpp"

namespace retina {

namespace {

constexpr const char* kCgroup2Candidates[] = {"/sys/fs/cgroup", "/sys/fs/cgroup/unified"};

Status validate(const DnsOptions& o) {
  std::vector<std::string> problems;
  // 0: sized by CPU count when loading.
  if (auto st = o.ring_buffer_size ? validate_ring_buffer_size("ring buffer size", o.ring_buffer_size) : ok(); !st)
    problems.push_back(st.error().message);
  if (o.dedup_entries == 0) problems.push_back("dedup entries must be at least 1");
  if (o.udp_pending_ttl.count() <= 0) problems.push_back("UDP pending TTL must be positive");
  if (o.tcp_seen_ttl.count() <= 0) problems.push_back("TCP seen TTL must be positive");
  if (problems.empty()) return ok();
  std::string msg = "dns options:";
  for (const auto& p : problems) msg += " " + p + ";";
  msg.pop_back();
  return unexpected(Error::invalid(std::move(msg)));
}

uint64_t to_ns(std::chrono::milliseconds d) {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(d).count());
}

// A link from a cgroup_skb program to a cgroup; it lives as long as its fd
// (never pinned), so a crashed agent leaves nothing attached.
Result<loader::UniqueFd> attach_cgroup(int prog_fd, int cgroup_fd, bpf_attach_type type, const std::string& path) {
  const char* hook = type == BPF_CGROUP_INET_EGRESS ? "BPF_CGROUP_INET_EGRESS" : "BPF_CGROUP_INET_INGRESS";
  int fd = bpf_link_create(prog_fd, cgroup_fd, type, nullptr);
  if (fd < 0) {
    const int err = errno;
    Error e = Error::system(fmt::format("bpf_link_create({}, {})", path, hook), err);
    if (err == EINVAL || err == EOPNOTSUPP) {
      e.kind = Error::Kind::kUnsupported;
      e.message = "kernel cannot link cgroup_skb programs to a cgroup (needs 5.7+): " + e.message;
    }
    return unexpected(std::move(e));
  }
  return loader::UniqueFd(fd);
}

}  // namespace

bool is_cgroup2_dir(const std::string& path) {
  struct statfs st {};
  if (::statfs(path.c_str(), &st) != 0) return false;
  return static_cast<unsigned long>(st.f_type) == CGROUP2_SUPER_MAGIC;
}

Result<std::string> find_cgroup2_root() {
  for (const char* c : kCgroup2Candidates)
    if (is_cgroup2_dir(c)) return std::string(c);
  return unexpected(Error::unsupported(
      "no cgroup v2 hierarchy at /sys/fs/cgroup or /sys/fs/cgroup/unified (mount it, or mount the host's into the "
      "container)"));
}

struct DnsPlugin::Impl {
  DnsOptions opts;
  std::string cgroup_path;
  loader::UniqueFd cgroup_fd;
  BpfPlugin<dns> bpf{"dns"};

  mutable std::mutex mu;  // links
  loader::UniqueFd egress_link;
  loader::UniqueFd ingress_link;
};

DnsPlugin::DnsPlugin(DnsOptions options) : impl_(std::make_unique<Impl>()) { impl_->opts = std::move(options); }

DnsPlugin::~DnsPlugin() { stop(); }

Status DnsPlugin::init(PluginContext& ctx) {
  auto& m = *impl_;
  if (auto st = validate(m.opts); !st) return st;

  if (auto st = check_context("dns", kNeeds, ctx); !st) return st;
  if (auto st = m.bpf.require(*ctx.features, {KernelFeature::kBpfSyscall, KernelFeature::kCgroupSkb,
                                              KernelFeature::kRingBuf, KernelFeature::kAtomics});
      !st)
    return st;

  if (m.opts.cgroup_path.empty()) {
    auto root = find_cgroup2_root();
    if (!root) return unexpected(root.error().wrap("dns"));
    m.cgroup_path = std::move(*root);
  } else {
    if (!is_cgroup2_dir(m.opts.cgroup_path))
      return unexpected(Error::invalid(fmt::format("dns: {} is not a cgroup v2 directory", m.opts.cgroup_path)));
    m.cgroup_path = m.opts.cgroup_path;
  }
  const int cg = ::open(m.cgroup_path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (cg < 0) return unexpected(Error::system(fmt::format("dns: open({})", m.cgroup_path), errno));
  m.cgroup_fd.reset(cg);

  auto& bpf = m.bpf;
  if (auto st = bpf.open(dns__open_opts, dns__load, dns__destroy); !st) return st;
  bpf->rodata->cfg_udp_pending_ns = to_ns(m.opts.udp_pending_ttl);
  bpf->rodata->cfg_tcp_seen_ns = to_ns(m.opts.tcp_seen_ttl);
  if (auto st = bpf.set_max_entries(bpf->maps.retina_dns_evts,
                                          ring_size_or_auto(m.opts.ring_buffer_size, 256ull << 10, 512ull << 10)); !st) return st;
  if (auto st = bpf.set_max_entries(bpf->maps.retina_dns_seen, m.opts.dedup_entries); !st) return st;
  if (auto st = bpf.load(); !st) return st;
  if (auto st = bpf.add_ring(bpf->maps.retina_dns_evts); !st) return st;

  using S = KernelStatsCollector::Stat;
  if (auto st = bpf.export_stats(
          ctx.registry,
          {bpf.common_stats({S{RETINA_STAT_REPORTS, "reports"}, S{RETINA_STAT_TRUNCATED, "truncated"}}),
           {bpf_map__fd(bpf->maps.retina_dns_stats), RETINA_DNS_STAT_MAX,
            {S{RETINA_DNS_STAT_DUPLICATE, "duplicate"}, S{RETINA_DNS_STAT_NO_MESSAGE, "no_message"},
             S{RETINA_DNS_STAT_CUT, "cut"}},
            -1}});
      !st)
    return st;
  log::info("dns", "loaded", {{"cgroup", m.cgroup_path}});
  return ok();
}

Status DnsPlugin::start() {
  auto& m = *impl_;
  if (!m.bpf.loaded()) return unexpected(Error::internal("dns: start before init"));
  std::lock_guard lock(m.mu);
  if (m.egress_link) return ok();
  // Egress first: a message that crosses the node while only one hook is
  // attached is still reported at most once.
  auto egr = attach_cgroup(bpf_program__fd(m.bpf->progs.retina_dns_egr), m.cgroup_fd.get(), BPF_CGROUP_INET_EGRESS,
                           m.cgroup_path);
  if (!egr) return unexpected(egr.error().wrap("dns"));
  auto ing = attach_cgroup(bpf_program__fd(m.bpf->progs.retina_dns_ing), m.cgroup_fd.get(), BPF_CGROUP_INET_INGRESS,
                           m.cgroup_path);
  if (!ing) return unexpected(ing.error().wrap("dns"));  // egr closes: detached
  m.egress_link = std::move(*egr);
  m.ingress_link = std::move(*ing);
  log::info("dns", "attached", {{"cgroup", m.cgroup_path}, {"hooks", "egress,ingress"}});
  return ok();
}

void DnsPlugin::stop() noexcept {
  auto& m = *impl_;
  std::lock_guard lock(m.mu);
  if (!m.egress_link && !m.ingress_link) return;
  m.ingress_link.reset();
  m.egress_link.reset();
  log::info("dns", "detached", {{"cgroup", m.cgroup_path}});
}

std::vector<EventSource*> DnsPlugin::event_sources() { return impl_->bpf.event_sources(); }

Result<DnsPlugin::Stats> DnsPlugin::stats() const {
  auto v = impl_->bpf.read_stats_pair<RETINA_DNS_STAT_MAX>([](const dns& s) { return s.maps.retina_dns_stats; });
  if (!v) return unexpected(v.error());
  return Stats{v->first, v->second};
}

const std::string& DnsPlugin::cgroup_path() const { return impl_->cgroup_path; }

bool DnsPlugin::attached() const {
  std::lock_guard lock(impl_->mu);
  return static_cast<bool>(impl_->egress_link);
}

int DnsPlugin::egress_prog_fd() const {
  return impl_->bpf.loaded() ? bpf_program__fd(impl_->bpf->progs.retina_dns_egr) : -1;
}
int DnsPlugin::ingress_prog_fd() const {
  return impl_->bpf.loaded() ? bpf_program__fd(impl_->bpf->progs.retina_dns_ing) : -1;
}

std::unique_ptr<Plugin> make_dns_plugin() { return std::make_unique<DnsPlugin>(); }

}  // namespace retina
