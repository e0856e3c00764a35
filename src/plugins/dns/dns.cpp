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
#include <spdlog/spdlog.h>

#include "dns.skel.h"
#include "loader/bpf_object.hpp"
#include "loader/fd.hpp"
#include "loader/percpu.hpp"
#include "loader/ring_buffer.hpp"
#include "plugins/kernel_stats.hpp"
#include "retina/features.hpp"
#include "retina/metrics/registry.hpp"

namespace retina {

namespace {

constexpr uint64_t kMaxRingBuffer = 1ull << 30;
constexpr const char* kCgroup2Candidates[] = {"/sys/fs/cgroup", "/sys/fs/cgroup/unified"};

bool is_pow2(uint64_t v) { return v && (v & (v - 1)) == 0; }

Status validate(const DnsOptions& o) {
  std::vector<std::string> problems;
  const uint64_t page = static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
  if (!is_pow2(o.ring_buffer_size) || o.ring_buffer_size < page || o.ring_buffer_size > kMaxRingBuffer)
    problems.push_back(fmt::format("ring buffer size {} must be a power of two between {} and {}", o.ring_buffer_size,
                                   page, kMaxRingBuffer));
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
  loader::BpfObject<dns> obj;
  std::unique_ptr<loader::RingBuffer> ring;
  metrics::Registry* registry = nullptr;
  uint64_t collector_id = 0;

  mutable std::mutex mu;  // links
  loader::UniqueFd egress_link;
  loader::UniqueFd ingress_link;
};

DnsPlugin::DnsPlugin(DnsOptions options) : impl_(std::make_unique<Impl>()) { impl_->opts = std::move(options); }

DnsPlugin::~DnsPlugin() {
  stop();
  if (impl_->registry && impl_->collector_id) impl_->registry->remove_collector(impl_->collector_id);
}

Status DnsPlugin::init(PluginContext& ctx) {
  auto& m = *impl_;
  if (auto st = validate(m.opts); !st) return st;

  std::unique_ptr<FeatureDetector> own;
  FeatureDetector* features = ctx.features;
  if (!features) {
    own = make_kernel_feature_detector();
    features = own.get();
  }
  for (KernelFeature f : {KernelFeature::kBpfSyscall, KernelFeature::kCgroupSkb, KernelFeature::kRingBuf,
                          KernelFeature::kAtomics}) {
    if (auto st = features->probe(f); !st) return unexpected(Error::unsupported("dns: " + st.error().message));
  }

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

  auto obj = loader::BpfObject<dns>::open("dns", dns__open_opts, dns__load, dns__destroy);
  if (!obj) return unexpected(obj.error().wrap("dns"));
  m.obj = std::move(*obj);
  auto* skel = m.obj.get();
  skel->rodata->cfg_udp_pending_ns = to_ns(m.opts.udp_pending_ttl);
  skel->rodata->cfg_tcp_seen_ns = to_ns(m.opts.tcp_seen_ttl);
  if (int err = bpf_map__set_max_entries(skel->maps.retina_dns_evts, static_cast<uint32_t>(m.opts.ring_buffer_size)); err)
    return unexpected(Error::system(fmt::format("dns: bpf_map__set_max_entries(retina_dns_evts, {})", m.opts.ring_buffer_size), err));
  if (int err = bpf_map__set_max_entries(skel->maps.retina_dns_seen, m.opts.dedup_entries); err)
    return unexpected(Error::system(fmt::format("dns: bpf_map__set_max_entries(retina_dns_seen, {})", m.opts.dedup_entries), err));
  if (auto st = m.obj.load(); !st) return unexpected(st.error().wrap("dns"));

  auto ring = loader::RingBuffer::open("dns", bpf_map__fd(skel->maps.retina_dns_evts));
  if (!ring) return unexpected(ring.error().wrap("dns"));
  m.ring = std::move(*ring);

  m.registry = ctx.registry;
  if (m.registry) {
    using S = KernelStatsCollector::Stat;
    std::vector<KernelStatsCollector::Map> maps = {
        {bpf_map__fd(skel->maps.retina_stats), RETINA_STAT_MAX,
         {S{RETINA_STAT_REPORTS, "reports"}, S{RETINA_STAT_TRUNCATED, "truncated"}}, RETINA_STAT_RINGBUF_FULL},
        {bpf_map__fd(skel->maps.retina_dns_stats), RETINA_DNS_STAT_MAX,
         {S{RETINA_DNS_STAT_DUPLICATE, "duplicate"}, S{RETINA_DNS_STAT_NO_MESSAGE, "no_message"},
          S{RETINA_DNS_STAT_CUT, "cut"}},
         -1},
    };
    auto c = KernelStatsCollector::create(*m.registry, "dns", maps);
    if (!c) return unexpected(c.error().wrap("dns metrics"));
    m.collector_id = m.registry->add_collector(std::move(*c));
  }
  spdlog::info("dns: loaded (cgroup {})", m.cgroup_path);
  return ok();
}

Status DnsPlugin::start() {
  auto& m = *impl_;
  if (!m.obj.loaded()) return unexpected(Error::internal("dns: start before init"));
  std::lock_guard lock(m.mu);
  if (m.egress_link) return ok();
  // Egress first: a message that crosses the node while only one hook is
  // attached is still reported at most once.
  auto egr = attach_cgroup(bpf_program__fd(m.obj->progs.retina_dns_egr), m.cgroup_fd.get(), BPF_CGROUP_INET_EGRESS,
                           m.cgroup_path);
  if (!egr) return unexpected(egr.error().wrap("dns"));
  auto ing = attach_cgroup(bpf_program__fd(m.obj->progs.retina_dns_ing), m.cgroup_fd.get(), BPF_CGROUP_INET_INGRESS,
                           m.cgroup_path);
  if (!ing) return unexpected(ing.error().wrap("dns"));  // egr closes: detached
  m.egress_link = std::move(*egr);
  m.ingress_link = std::move(*ing);
  spdlog::info("dns: attached to cgroup {} (egress and ingress)", m.cgroup_path);
  return ok();
}

void DnsPlugin::stop() noexcept {
  auto& m = *impl_;
  std::lock_guard lock(m.mu);
  if (!m.egress_link && !m.ingress_link) return;
  m.ingress_link.reset();
  m.egress_link.reset();
  spdlog::info("dns: detached from cgroup {}", m.cgroup_path);
}

std::vector<EventSource*> DnsPlugin::event_sources() {
  if (!impl_->ring) return {};
  return {impl_->ring.get()};
}

Result<DnsPlugin::Stats> DnsPlugin::stats() const {
  const auto& m = *impl_;
  if (!m.obj.loaded()) return unexpected(Error::internal("dns: not loaded"));
  auto common = loader::sum_percpu_u64(bpf_map__fd(m.obj->maps.retina_stats), RETINA_STAT_MAX);
  if (!common) return unexpected(common.error().wrap("dns"));
  auto own = loader::sum_percpu_u64(bpf_map__fd(m.obj->maps.retina_dns_stats), RETINA_DNS_STAT_MAX);
  if (!own) return unexpected(own.error().wrap("dns"));
  Stats s;
  for (size_t i = 0; i < s.common.size(); ++i) s.common[i] = (*common)[i];
  for (size_t i = 0; i < s.dns.size(); ++i) s.dns[i] = (*own)[i];
  return s;
}

const std::string& DnsPlugin::cgroup_path() const { return impl_->cgroup_path; }

bool DnsPlugin::attached() const {
  std::lock_guard lock(impl_->mu);
  return static_cast<bool>(impl_->egress_link);
}

int DnsPlugin::egress_prog_fd() const {
  return impl_->obj.loaded() ? bpf_program__fd(impl_->obj->progs.retina_dns_egr) : -1;
}
int DnsPlugin::ingress_prog_fd() const {
  return impl_->obj.loaded() ? bpf_program__fd(impl_->obj->progs.retina_dns_ing) : -1;
}

std::unique_ptr<Plugin> make_dns_plugin() { return std::make_unique<DnsPlugin>(); }

}  // namespace retina
