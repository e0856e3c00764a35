#include "plugins/packetparser/packetparser.hpp"

#include <linux/bpf.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <algorithm>
#include <cstddef>
#include <condition_variable>
#include <cstring>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <thread>

#include <fmt/format.h>

#include "core/log.hpp"
#include "loader/interface_watcher.hpp"
#include "loader/tc_attach.hpp"
#include "loader/tcx_link.hpp"
#include "packetparser.skel.h"
#include "plugins/bpf_plugin.hpp"
#include "plugins/packetparser/pp_metrics.hpp"
#include "retina/ip_cache.hpp"

namespace retina {

// Maps shared with bpf/packetparser.bpf.c (which asserts the same sizes).
static_assert(sizeof(retina_ct_key) == 44 && offsetof(retina_ct_key, ifindex) == 40);
static_assert(sizeof(retina_ct_side) == 72 && offsetof(retina_ct_side, pending) == 16 &&
              offsetof(retina_ct_side, flags_seen) == 32);
static_assert(sizeof(retina_ct_entry) == 192 && offsetof(retina_ct_entry, packets) == 88 &&
              offsetof(retina_ct_entry, side_egr) == 120);
static_assert(sizeof(retina_ct_gauges) == 48);
static_assert(sizeof(retina_lpm_key) == 20 && offsetof(retina_lpm_key, addr) == 4);
static_assert(sizeof(retina_packet_event) == 128 && offsetof(retina_packet_event, prev_flag_counts) == 88);

namespace {

using loader::TcDirection;

constexpr auto kSweepPeriod = std::chrono::seconds(1);

// Aggregation low: a CPU's batch of packet records waits at most this long
// for more before it is sent (bpf/packetparser.bpf.c, "batches"); under
// load batches fill up (RETINA_BATCH_MAX records) long before.
constexpr auto kBatchWait = std::chrono::milliseconds(1);
// Where bh.count sits in an element of retina_pp_batch (the BPF side
// asserts the batch header's offset).
constexpr size_t kBatchCountOffset = 32 + offsetof(retina_batch_hdr, count);

// packetParserRingBufferSize, or when 0 (the default) 512 KiB per online
// CPU and at least 1 MiB: ~3800 records per CPU, while the reader is woken
// every 64.
uint64_t packet_parser_ring_size(const Config& c) {
  return ring_size_or_auto(c.packet_parser_ring_buffer_size, 512ull << 10, 1ull << 20);
}

Status validate(const Config& c) {
  std::vector<std::string> problems;
  // 0: sized by CPU count when loading.
  if (auto st = c.packet_parser_ring_buffer_size
                    ? validate_ring_buffer_size("packetParserRingBufferSize", c.packet_parser_ring_buffer_size)
                    : ok();
      !st)
    problems.push_back(st.error().message);
  if (c.data_sampling_rate == 0) problems.push_back("dataSamplingRate must be at least 1");
  if (c.conntrack_report_interval < std::chrono::seconds(1))
    problems.push_back("conntrackReportInterval must be at least 1s");
  if (c.filter_map_max_entries == 0) problems.push_back("filterMapMaxEntries must be at least 1");
  if (c.data_aggregation_level == AggregationLevel::kHigh && c.conntrack_max_entries == 0)
    problems.push_back("conntrack max entries must be at least 1");
  if (problems.empty()) return ok();
  std::string msg = "packetparser config:";
  for (const auto& p : problems) msg += " " + p + ";";
  msg.pop_back();
  return unexpected(Error::invalid(std::move(msg)));
}

}  // namespace

struct PacketParserPlugin::Impl {
  struct IfAttachment {
    int ifindex = 0;
    std::string name;
    uint32_t role = RETINA_IF_ROLE_POD;
    bool created_clsact = false;
    std::optional<loader::TcxLink> tcx[2];
    std::optional<loader::TcFilter> tc[2];
  };

  Config cfg;
  IpCache* cache = nullptr;
  InterfaceWatcher* watcher = nullptr;
  uint64_t subscription = 0;

  BpfPlugin<packetparser> obj{"packetparser"};
  bool use_tcx = false;
  bool sweeper_loaded = false;
  bool batched = false;
  std::string degraded;

  mutable std::mutex mu;  // attachments, checked, failed
  std::map<int, IfAttachment> attachments;
  std::set<int> checked;  // interfaces already cleared of stale retina filters
  std::set<int> foreign_clsact;  // interfaces whose clsact held a foreign filter when first seen
  // Interfaces we should observe but could not attach to, with why;
  // retried by reconcile().
  std::map<int, std::pair<InterfaceInfo, std::string>> failed;

  std::mutex sweep_mu;  // one sweeper run at a time
  std::thread sweeper;
  std::mutex sweeper_mu;
  std::condition_variable sweeper_cv;
  bool sweeper_stop = false;
  bool started = false;

  bool high() const { return cfg.data_aggregation_level == AggregationLevel::kHigh; }

  // Records waiting in the CPUs' batches.
  uint32_t batched_records() const {
    const int fd = bpf_map__fd(obj->maps.retina_pp_batch);
    const uint32_t entries = bpf_map__max_entries(obj->maps.retina_pp_batch);
    std::vector<std::byte> value(bpf_map__value_size(obj->maps.retina_pp_batch));
    uint32_t waiting = 0;
    for (uint32_t cpu = 0; cpu < entries; ++cpu) {
      uint16_t count = 0;
      if (bpf_map_lookup_elem(fd, &cpu, value.data()) == 0)
        std::memcpy(&count, value.data() + kBatchCountOffset, sizeof count);
      waiting += count;
    }
    return waiting;
  }

  uint32_t wait_batches_sent(std::chrono::milliseconds timeout) const {
    if (!batched || !obj.loaded()) return 0;
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      const uint32_t waiting = batched_records();
      if (waiting == 0 || std::chrono::steady_clock::now() >= deadline) return waiting;
      std::this_thread::sleep_for(kBatchWait);
    }
  }

  int prog_fd(TcDirection d) const {
    return bpf_program__fd(d == TcDirection::kIngress ? obj->progs.retina_pp_ing : obj->progs.retina_pp_egr);
  }

  // The role an interface should have, or nullopt for none.
  std::optional<uint32_t> desired_role(const InterfaceInfo& info) const {
    if (info.is_pod_veth) return RETINA_IF_ROLE_POD;
    for (const auto& h : cfg.host_interfaces) {
      if (h == "auto") {
        // Retina attaches to the default-route interface at low only.
        if (!high() && info.is_default_route) return RETINA_IF_ROLE_HOST;
      } else if (h == info.name) {
        return RETINA_IF_ROLE_HOST;
      }
    }
    return std::nullopt;
  }

  Status set_role(int ifindex, uint32_t role) {
    uint32_t key = static_cast<uint32_t>(ifindex);
    if (bpf_map_update_elem(bpf_map__fd(obj->maps.retina_pp_ifs), &key, &role, BPF_ANY) < 0)
      return unexpected(Error::system(fmt::format("bpf_map_update_elem(retina_pp_ifs, ifindex {})", ifindex), errno));
    return ok();
  }

  void clear_role(int ifindex) {
    uint32_t key = static_cast<uint32_t>(ifindex);
    (void)bpf_map_delete_elem(bpf_map__fd(obj->maps.retina_pp_ifs), &key);
  }

  Status attach(const InterfaceInfo& info, uint32_t role) {
    if (auto st = set_role(info.ifindex, role); !st) return st;
    IfAttachment a;
    a.ifindex = info.ifindex;
    a.name = info.name;
    a.role = role;
    if (use_tcx) {
      for (TcDirection d : {TcDirection::kIngress, TcDirection::kEgress}) {
        auto link = loader::TcxLink::attach(info.ifindex, d, prog_fd(d));
        if (!link) return unexpected(link.error());  // `a` detaches what it holds
        a.tcx[static_cast<int>(d)].emplace(std::move(*link));
      }
    } else {
      auto created = loader::ensure_clsact(info.ifindex);
      if (!created) return unexpected(created.error());
      // A clsact once seen holding someone else's filters stays theirs, even
      // after those filters go: retina never removes it.
      if (!*created) foreign_clsact.insert(info.ifindex);
      a.created_clsact = *created && !foreign_clsact.count(info.ifindex);
      for (TcDirection d : {TcDirection::kIngress, TcDirection::kEgress}) {
        auto f = loader::TcFilter::attach(info.ifindex, d, prog_fd(d), loader::kPacketParserTcSlot);
        if (!f) {
          detach(a);
          return unexpected(f.error());
        }
        a.tc[static_cast<int>(d)].emplace(std::move(*f));
      }
    }
    attachments.insert_or_assign(info.ifindex, std::move(a));
    // The message names the interface first: operators and tests look for "attached to <if> ".
    log::info("packetparser", fmt::format("attached to {} (ifindex {}, {}, {})", info.name, info.ifindex,
                                          role == RETINA_IF_ROLE_HOST ? "node interface" : "pod veth",
                                          use_tcx ? "tcx" : "tc"));
    return ok();
  }

  // Detaches everything of one interface; clsact goes too when retina
  // created it and nothing else is left on it.
  void detach(IfAttachment& a) noexcept {
    for (auto& l : a.tcx)
      if (l) l->detach();
    for (auto& f : a.tc) {
      if (!f) continue;
      if (auto st = f->detach(); !st) log::warn("packetparser", "detach failed", {{"interface", a.name}, {"error", st.error().message}});
    }
    if (a.created_clsact) {
      auto removed = loader::remove_clsact_if_empty(a.ifindex);
      if (!removed) log::warn("packetparser", "clsact cleanup failed", {{"interface", a.name}, {"error", removed.error().message}});
      a.created_clsact = false;
    }
  }

  // The interface is gone, and its hooks with it.
  static void forget(IfAttachment& a) noexcept {
    for (auto& l : a.tcx)
      if (l) l->forget();
    for (auto& f : a.tc)
      if (f) f->forget();
  }

  void on_interface(const InterfaceInfo& info, bool added) {
    std::lock_guard lock(mu);
    if (!started) return;
    auto it = attachments.find(info.ifindex);
    if (!added) {
      failed.erase(info.ifindex);
      if (it != attachments.end()) {
        forget(it->second);
        attachments.erase(it);
        clear_role(info.ifindex);
        log::info("packetparser", "interface went away", {{"interface", info.name}, {"ifindex", info.ifindex}});
      }
      checked.erase(info.ifindex);
      foreign_clsact.erase(info.ifindex);
      return;
    }
    const auto role = desired_role(info);
    if (!checked.count(info.ifindex)) {
      checked.insert(info.ifindex);
      // A retina filter from an earlier run where this run will not use
      // legacy tc here (not attaching at all, or attaching with TCX).
      if (!role || use_tcx) {
        auto removed = loader::detach_stale_retina_filters(info.ifindex, loader::kPacketParserTcSlot);
        if (!removed)
          log::warn("packetparser", "stale filter check failed", {{"interface", info.name}, {"error", removed.error().message}});
        else if (*removed) {
          log::info("packetparser", fmt::format("removed {} stale retina filter(s) from {}", *removed, info.name));
          (void)loader::remove_clsact_if_empty(info.ifindex);  // the earlier run's clsact, if nothing else uses it
        }
      }
    }
    if (!role) {
      failed.erase(info.ifindex);
      if (it != attachments.end()) {
        detach(it->second);
        attachments.erase(it);
        clear_role(info.ifindex);
      }
      return;
    }
    if (it != attachments.end()) {
      it->second.name = info.name;
      if (it->second.role != *role) {
        if (auto st = set_role(info.ifindex, *role); st) it->second.role = *role;
      }
      return;
    }
    try_attach(info, *role);
  }

  // (mu held)
  void try_attach(const InterfaceInfo& info, uint32_t role) {
    if (auto st = attach(info, role); !st) {
      std::string why = fmt::format("attach to {}: {}", info.name, st.error().message);
      log::error("packetparser", "attach failed", {{"error", why}});
      failed.insert_or_assign(info.ifindex, std::make_pair(info, std::move(why)));
      clear_role(info.ifindex);
      return;
    }
    failed.erase(info.ifindex);
  }

  // (mu held) "attach to a: ...; attach to b: ..."
  std::string failures() const {
    std::string r;
    for (const auto& [ifindex, f] : failed) {
      if (!r.empty()) r += "; ";
      r += f.second;
    }
    return r;
  }

  Status sweep(bool flush_all) {
    if (!sweeper_loaded) return unexpected(Error::unsupported("packetparser: no conntrack sweeper loaded"));
    std::lock_guard lock(sweep_mu);
    unsigned char pkt[64] = {};
    __sk_buff ctx;
    std::memset(&ctx, 0, sizeof ctx);
    ctx.mark = flush_all ? RETINA_SWEEP_FLUSH_ALL : 0;
    LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = pkt, .data_size_in = sizeof pkt, .ctx_in = &ctx,
                .ctx_size_in = sizeof ctx, .repeat = 1);
    int err = bpf_prog_test_run_opts(bpf_program__fd(obj->progs.retina_pp_sweep), &opts);
    if (err) return unexpected(Error::system("bpf_prog_test_run_opts(retina_pp_sweep)", err));
    return ok();
  }

  void sweeper_loop() {
    std::unique_lock lock(sweeper_mu);
    while (!sweeper_cv.wait_for(lock, kSweepPeriod, [this] { return sweeper_stop; })) {
      lock.unlock();
      if (auto st = sweep(false); !st) log::warn("packetparser", "sweep failed", {{"error", st.error().message}});
      lock.lock();
    }
  }
};

PacketParserPlugin::PacketParserPlugin() : impl_(std::make_unique<Impl>()) {}

PacketParserPlugin::~PacketParserPlugin() { stop(); }

Status PacketParserPlugin::init(PluginContext& ctx) {
  auto& m = *impl_;
  if (!ctx.config) return unexpected(Error::invalid("packetparser: no config"));
  m.cfg = *ctx.config;
  if (auto st = validate(m.cfg); !st) return st;
  if (!m.cfg.packet_parser_ring_buffer)
    log::warn("packetparser", "packetParserRingBuffer is disabled, but retina only reads through a ring buffer; using it");

  if (auto st = check_context("packetparser", kNeeds, ctx); !st) return st;
  FeatureDetector* features = ctx.features;
  if (auto st = m.obj.require(*features, {KernelFeature::kBpfSyscall, KernelFeature::kTcCls, KernelFeature::kRingBuf,
                                          KernelFeature::kAtomics});
      !st)
    return st;
  const bool for_each = features->probe(KernelFeature::kForEachMapElem).has_value();
  m.use_tcx = m.cfg.enable_tcx == TcxMode::kAuto && features->probe(KernelFeature::kTcx).has_value();
  m.sweeper_loaded = m.high() && for_each;
  m.batched = !m.high() && features->probe(KernelFeature::kBpfTimer).has_value();
  if (m.high() && !for_each) {
    m.degraded =
        "kernel lacks bpf_for_each_map_elem (5.13+): no conntrack sweeper, so idle connections report their "
        "pending counts only with their next packet and expired entries are reused instead of deleted";
    log::warn("packetparser", "degraded", {{"reason", m.degraded}});
  }

  if (auto st = m.obj.open(packetparser__open_opts, packetparser__load, packetparser__destroy); !st) return st;
  auto* skel = m.obj.get();
  skel->rodata->cfg_aggregation_high = m.high() ? 1 : 0;
  skel->rodata->cfg_bypass_filter = m.cfg.bypass_lookup_ip_of_interest ? 1 : 0;
  skel->rodata->cfg_sampling_rate = m.cfg.data_sampling_rate;
  skel->rodata->cfg_report_interval_ns =
      static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(m.cfg.conntrack_report_interval).count());
  // The reader is woken once 64 records' bytes wait (at most a quarter of
  // the ring); less waits for its periodic drain.
  constexpr uint64_t kRecordBytes = sizeof(retina_packet_event) + 8;  // + ring record header
  const uint64_t ring_bytes = packet_parser_ring_size(m.cfg);
  skel->rodata->cfg_wakeup_bytes = std::min<uint64_t>(64 * kRecordBytes, ring_bytes / 4);
  if (m.batched)
    skel->rodata->cfg_batch_ns = static_cast<uint64_t>(std::chrono::nanoseconds(kBatchWait).count());
  const int cpus = libbpf_num_possible_cpus();
  if (cpus <= 0) return unexpected(Error::system("packetparser: libbpf_num_possible_cpus", -cpus));
  struct Size {
    bpf_map* map;
    uint64_t entries;
  };
  for (const Size& s : {Size{skel->maps.retina_pp_evts, ring_bytes},
                        Size{skel->maps.retina_pp_batch, m.batched ? static_cast<uint64_t>(cpus) : 1},
                        Size{skel->maps.retina_pp_filt, m.cfg.filter_map_max_entries},
                        // Aggregation low never touches conntrack: keep it tiny.
                        Size{skel->maps.retina_pp_ct, m.high() ? m.cfg.conntrack_max_entries : 1}}) {
    if (auto st = m.obj.set_max_entries(s.map, s.entries); !st) return st;
  }
  bpf_program__set_autoload(skel->progs.retina_pp_sweep, m.sweeper_loaded);
  if (auto st = m.obj.load(); !st) return st;
  if (auto st = m.obj.add_ring(skel->maps.retina_pp_evts); !st) return st;
  m.watcher = ctx.interfaces;
  m.cache = ctx.cache;

  if (ctx.registry) {
    auto mx = PacketParserMetrics::create(*ctx.registry, bpf_map__fd(skel->maps.retina_stats),
                                          m.high() && m.cfg.enable_conntrack_metrics ? bpf_map__fd(skel->maps.retina_pp_ctg) : -1);
    if (!mx) return unexpected(mx.error().wrap("packetparser metrics"));
    m.obj.add_collector(ctx.registry, std::move(*mx));
  }
  log::info("packetparser", "loaded",
            {{"aggregation", m.high() ? "high" : "low"}, {"sampling", m.cfg.data_sampling_rate}, {"batched", m.batched},
             {"hook", m.use_tcx ? "tcx" : "tc"}, {"sweeper", m.sweeper_loaded}});
  return ok();
}

Status PacketParserPlugin::start() {
  auto& m = *impl_;
  if (!m.obj.loaded()) return unexpected(Error::internal("packetparser: start before init"));
  if (m.started) return ok();
  {
    std::lock_guard lock(m.mu);
    m.started = true;
  }
  m.subscription = m.watcher->subscribe([&m](const InterfaceInfo& info, bool added) { m.on_interface(info, added); });
  if (auto st = refresh_ips_of_interest(); !st)
    log::warn("packetparser", "IPs of interest not set", {{"error", st.error().message}});
  if (m.sweeper_loaded) {
    std::lock_guard lock(m.sweeper_mu);
    m.sweeper_stop = false;
    m.sweeper = std::thread([&m] { m.sweeper_loop(); });
  }
  return ok();
}

void PacketParserPlugin::stop() noexcept {
  auto& m = *impl_;
  if (!m.started) return;
  // Unsubscribe before taking our lock: the watcher holds its own while
  // calling back into on_interface.
  if (m.subscription) {
    m.watcher->unsubscribe(m.subscription);
    m.subscription = 0;
  }
  if (m.sweeper.joinable()) {
    {
      std::lock_guard lock(m.sweeper_mu);
      m.sweeper_stop = true;
    }
    m.sweeper_cv.notify_all();
    m.sweeper.join();
  }
  {
    std::lock_guard lock(m.mu);
    m.started = false;
    for (auto& [ifindex, a] : m.attachments) {
      m.detach(a);
      m.clear_role(ifindex);
    }
    m.attachments.clear();
    m.checked.clear();
    m.failed.clear();
  }
  // No packet reaches the programs any more: the batches' timers send what
  // they hold within kBatchWait; wait for that before the ring's last drain.
  if (const uint32_t left = m.wait_batches_sent(100 * kBatchWait))
    log::warn("packetparser", "batches not sent on stop", {{"records", left}});
  // Report what conntrack still holds, so nothing counted is left behind.
  if (m.sweeper_loaded) {
    if (auto st = m.sweep(true); !st) log::warn("packetparser", "final flush failed", {{"error", st.error().message}});
  }
}

Status PacketParserPlugin::reconcile() {
  auto& m = *impl_;
  if (auto st = refresh_ips_of_interest(); !st) return st;
  std::lock_guard lock(m.mu);
  if (!m.started || m.failed.empty()) return ok();
  auto retry = m.failed;
  for (const auto& [ifindex, f] : retry) {
    if (m.attachments.count(ifindex)) continue;
    if (auto role = m.desired_role(f.first)) m.try_attach(f.first, *role);
    else m.failed.erase(ifindex);
  }
  if (m.failed.empty()) return ok();
  return unexpected(Error::internal("packetparser: " + m.failures()));
}

std::vector<EventSource*> PacketParserPlugin::event_sources() { return impl_->obj.event_sources(); }

Status PacketParserPlugin::set_ips_of_interest(std::span<const IpAddr> ips) {
  auto& m = *impl_;
  if (!m.obj.loaded()) return unexpected(Error::internal("packetparser: set_ips_of_interest before init"));
  if (ips.size() > m.cfg.filter_map_max_entries)
    return unexpected(Error::invalid(
        fmt::format("packetparser: {} IPs of interest exceed filterMapMaxEntries {}", ips.size(), m.cfg.filter_map_max_entries)));
  const int fd = bpf_map__fd(m.obj->maps.retina_pp_filt);
  auto key_of = [](const IpAddr& ip) {
    retina_lpm_key k;
    std::memset(&k, 0, sizeof k);
    k.prefixlen = 128;
    std::memcpy(k.addr, ip.bytes.data(), 16);
    return k;
  };
  std::set<IpAddr> want(ips.begin(), ips.end());
  // Remove what is no longer wanted, then add: an address in both sets
  // never leaves the map.
  std::vector<retina_lpm_key> stale;
  retina_lpm_key cur, next;
  bool first = true;
  while (bpf_map_get_next_key(fd, first ? nullptr : &cur, &next) == 0) {
    first = false;
    IpAddr a;
    std::memcpy(a.bytes.data(), next.addr, 16);
    if (next.prefixlen != 128 || !want.count(a)) stale.push_back(next);
    cur = next;
  }
  for (const auto& k : stale) {
    if (bpf_map_delete_elem(fd, &k) < 0 && errno != ENOENT)
      return unexpected(Error::system("bpf_map_delete_elem(retina_pp_filt)", errno));
  }
  const uint8_t one = 1;
  for (const auto& ip : want) {
    retina_lpm_key k = key_of(ip);
    if (bpf_map_update_elem(fd, &k, &one, BPF_ANY) < 0)
      return unexpected(Error::system(fmt::format("bpf_map_update_elem(retina_pp_filt, {})", ip.to_string()), errno));
  }
  return ok();
}

Status PacketParserPlugin::refresh_ips_of_interest() {
  auto& m = *impl_;
  if (m.cfg.bypass_lookup_ip_of_interest) return ok();
  if (!m.cache) return unexpected(Error::internal("packetparser: no IP cache"));
  const auto& included = m.cfg.metrics_namespaces.include;
  std::vector<IpAddr> ips;
  m.cache->for_each([&](const EndpointPtr& ep) {
    if (ep->kind != EndpointKind::kPod) return;
    if (ep->observe || std::find(included.begin(), included.end(), ep->namespace_) != included.end())
      ips.insert(ips.end(), ep->ips.begin(), ep->ips.end());
  });
  std::sort(ips.begin(), ips.end());
  ips.erase(std::unique(ips.begin(), ips.end()), ips.end());
  return set_ips_of_interest(ips);
}

Result<std::array<uint64_t, RETINA_STAT_MAX>> PacketParserPlugin::stats() const {
  return impl_->obj.read_stats<RETINA_STAT_MAX>([](const packetparser& s) { return s.maps.retina_stats; });
}

Status PacketParserPlugin::sweep(bool flush_all) { return impl_->sweep(flush_all); }

uint32_t PacketParserPlugin::wait_batches_sent(std::chrono::milliseconds timeout) {
  return impl_->wait_batches_sent(timeout);
}

bool PacketParserPlugin::batched() const { return impl_->batched; }

Result<retina_ct_gauges> PacketParserPlugin::conntrack_gauges() const {
  if (!impl_->obj.loaded()) return unexpected(Error::internal("packetparser: not loaded"));
  return read_ct_gauges(bpf_map__fd(impl_->obj->maps.retina_pp_ctg));
}

std::vector<PacketParserPlugin::Attachment> PacketParserPlugin::attachments() const {
  std::lock_guard lock(impl_->mu);
  std::vector<Attachment> out;
  for (const auto& [ifindex, a] : impl_->attachments)
    out.push_back(Attachment{ifindex, a.name, a.role == RETINA_IF_ROLE_HOST, impl_->use_tcx});
  return out;
}

bool PacketParserPlugin::uses_tcx() const { return impl_->use_tcx; }

std::string PacketParserPlugin::degraded_reason() const {
  std::lock_guard lock(impl_->mu);
  std::string r = impl_->degraded;
  if (!impl_->failed.empty()) {
    if (!r.empty()) r += "; ";
    r += impl_->failures();
  }
  return r;
}

int PacketParserPlugin::ingress_prog_fd() const {
  return impl_->obj.loaded() ? impl_->prog_fd(TcDirection::kIngress) : -1;
}
int PacketParserPlugin::egress_prog_fd() const {
  return impl_->obj.loaded() ? impl_->prog_fd(TcDirection::kEgress) : -1;
}
int PacketParserPlugin::interface_role_map_fd() const {
  return impl_->obj.loaded() ? bpf_map__fd(impl_->obj->maps.retina_pp_ifs) : -1;
}

std::unique_ptr<Plugin> make_packetparser_plugin() { return std::make_unique<PacketParserPlugin>(); }

}  // namespace retina
