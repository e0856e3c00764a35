#include <algorithm>
#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <utility>
#include <vector>

#include "core/log.hpp"
#include "metrics/adv_labels.hpp"
#include "metrics/adv_metrics.hpp"
#include "metrics/adv_plan.hpp"
#include "metrics/adv_table.hpp"
#include "metrics/retina_values.hpp"
#include "retina/metrics/advanced.hpp"
#include "retina/metrics/names.hpp"
#include "retina/metrics/registry.hpp"

namespace retina::metrics {

namespace {

using adv::Group;
using adv::KeyBuilder;
using adv::Plan;
using adv::Series;
using adv::SideRef;
using adv::Table;
using Clock = std::chrono::steady_clock;

// How long new series may wait for a moment without scrapes before the
// feeding thread waits for the scrape to finish instead.
constexpr auto kPublishPatience = std::chrono::seconds(1);
constexpr auto kSweepInterval = std::chrono::seconds(1);

constexpr std::string_view kEgress = "egress";
constexpr std::string_view kIngress = "ingress";
// Remote context writes the flow's direction as Hubble names it, as Retina.
constexpr std::string_view kRemoteEgress = "EGRESS";
constexpr std::string_view kRemoteIngress = "INGRESS";
constexpr std::string_view kRemoteUnknown = "TRAFFIC_DIRECTION_UNKNOWN";
constexpr std::string_view kSynAck = "SYNACK";
constexpr size_t kSynBit = 1, kAckBit = 4;  // in kTcpFlagNames
static_assert(kTcpFlagNames[kSynBit] == "SYN" && kTcpFlagNames[kAckBit] == "ACK");

std::string_view remote_direction_name(TrafficDirection d) {
  switch (d) {
    case TrafficDirection::INGRESS: return kRemoteIngress;
    case TrafficDirection::EGRESS: return kRemoteEgress;
    default: return kRemoteUnknown;
  }
}

int64_t ns_of(Clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

// What scrapes read: the published tables and which metric each serves.
struct Shared {
  mutable std::shared_mutex mu;
  std::vector<std::unique_ptr<Table>> tables;
  std::array<int8_t, kAdvMetricCount> table_of{-1, -1, -1, -1, -1, -1, -1, -1};
};

class AdvCollector final : public Collector {
 public:
  explicit AdvCollector(std::shared_ptr<const Shared> s) : s_(std::move(s)) {}
  void collect(TextWriter& w) override {
    std::shared_lock lock(s_->mu);
    for (size_t m = 0; m < kAdvMetricCount; ++m) {
      const int8_t t = s_->table_of[m];
      if (t < 0) continue;
      const Table& table = *s_->tables[static_cast<size_t>(t)];
      const int slot = table.spec.slot[m];
      w.family(adv::info(static_cast<AdvMetric>(m)).name, adv::info(static_cast<AdvMetric>(m)).help, MetricType::kCounter);
      std::string& out = w.buffer();
      for (const Series* s : table.published) {
        adv::write_sample(out, adv::info(static_cast<AdvMetric>(m)).name, table.spec.label_names, s->key(),
                          s->value[slot].load(std::memory_order_relaxed));
      }
    }
  }

 private:
  std::shared_ptr<const Shared> s_;
};

}  // namespace

std::string_view adv_metric_name(AdvMetric m) {
  return static_cast<size_t>(m) < kAdvMetricCount ? adv::info(m).name : std::string_view();
}

std::string_view adv_metric_short_name(AdvMetric m) {
  return static_cast<size_t>(m) < kAdvMetricCount ? adv::info(m).short_name : std::string_view();
}

AdvancedOptions AdvancedOptions::from(const Config& c) {
  AdvancedOptions o;
  o.remote_context = c.remote_context;
  o.enable_annotations = c.enable_annotations;
  o.node_name = c.node_name;
  o.context_options = c.context_options;
  o.namespaces = c.metrics_namespaces;
  o.max_series_per_metric = c.max_series_per_metric;
  o.kernel_drop_reasons = c.kernel_drop_reasons;
  o.tcp_flags_separate_syn_ack = c.tcp_flags_separate_syn_ack;
  o.default_context = c.adv_metrics_without_configuration;
  return o;
}

Status validate(const AdvancedOptions& o) {
  // One rule set with the agent config and the MetricsConfiguration CRD.
  auto problems = adv::configuration_problems(o.context_options, o.namespaces);
  for (auto& p : problems) p.path = "metricsConfiguration." + p.path;
  if (o.max_series_per_metric < 1) problems.push_back({"maxSeriesPerMetric", "must be at least 1"});
  if (problems.empty()) return ok();
  return unexpected(Error::invalid(std::move(problems)).wrap("advanced metrics"));
}

struct AdvancedAggregator::Impl {
  Registry& registry;
  std::function<Clock::time_point()> clock;
  std::shared_ptr<Shared> shared = std::make_shared<Shared>();
  uint64_t collector_id = 0;

  // ---- feeding thread ----
  std::unique_ptr<Plan> plan;
  int64_t now_ns = 0;
  KeyBuilder key, ctx;
  size_t pending_total = 0;
  Clock::time_point pending_since{};
  Clock::time_point next_sweep{};
  std::array<uint64_t, kAdvMetricCount> overflow_local{};
  bool overflow_dirty = false;

  // ---- any thread ----
  std::mutex config_mu;
  std::unique_ptr<Plan> queued;  // under config_mu
  std::atomic<bool> config_pending{false};
  std::atomic<uint64_t> generation{0};
  std::array<std::atomic<uint64_t>, kAdvMetricCount> series_count{};
  std::array<std::atomic<uint64_t>, kAdvMetricCount> overflowed{};
  std::array<std::atomic<uint64_t>, kAdvMetricCount> expired{};
  std::array<std::atomic<bool>, kAdvMetricCount> enabled{};

  std::array<Counter*, kAdvMetricCount> expired_counter{};
  std::array<Counter*, kAdvMetricCount> overflow_counter{};

  Impl(Registry& r, std::function<Clock::time_point()> c) : registry(r), clock(std::move(c)) {
    if (!clock) clock = [] { return Clock::now(); };
    auto& exp = r.counter(names::kExpiredMetrics, "Advanced metric series removed after their ttl, by metric",
                          {"metric"});
    auto& ovf = r.counter(names::kSeriesOverflow,
                          "Updates of advanced metrics folded into the overflow series (maxSeriesPerMetric reached), "
                          "by metric",
                          {"metric"});
    for (size_t m = 0; m < kAdvMetricCount; ++m) {
      expired_counter[m] = &exp.with({adv::info(static_cast<AdvMetric>(m)).short_name});
      overflow_counter[m] = &ovf.with({adv::info(static_cast<AdvMetric>(m)).short_name});
    }
    key.reserve(512);
    ctx.reserve(256);
  }

  // ---- structure (feeding thread) ----

  void count_series(const Table& t, int64_t delta) {
    for (size_t m = 0; m < kAdvMetricCount; ++m) {
      if (t.spec.slot[m] < 0) continue;
      auto& c = series_count[m];
      c.store(static_cast<uint64_t>(static_cast<int64_t>(c.load(std::memory_order_relaxed)) + delta),
              std::memory_order_relaxed);
    }
  }

  void add_pending(Table& t, Series* s, Clock::time_point now) {
    if (pending_total++ == 0) pending_since = now;
    t.pending.push_back(s);
    count_series(t, 1);
  }

  Series* overflow_series(Table& t) {
    if (t.overflow) return t.overflow;
    KeyBuilder k;
    const size_t n = t.spec.label_names.size();
    for (size_t i = 0; i < n; ++i) k.value(adv::kOverflow);
    t.overflow = Series::make(k.view(), now_ns);
    add_pending(t, t.overflow, Clock::time_point(std::chrono::nanoseconds(now_ns)));
    return t.overflow;
  }

  Series* series_for(Table& t) {
    const std::string_view k = key.view();
    if (auto it = t.index.find(k); it != t.index.end()) return it->second;
    if (t.index.size() >= plan->cap) {
      for (size_t m = 0; m < kAdvMetricCount; ++m) {
        if (t.spec.slot[m] >= 0) ++overflow_local[m];
      }
      overflow_dirty = true;
      return overflow_series(t);
    }
    Series* s = Series::make(k, now_ns);
    t.index.emplace(s->key(), s);
    add_pending(t, s, Clock::time_point(std::chrono::nanoseconds(now_ns)));
    return s;
  }

  void bump(Table& t, AdvMetric a, uint64_t na, AdvMetric b, uint64_t nb) {
    const int sa = t.spec.slot[static_cast<size_t>(a)];
    const int sb = b == AdvMetric::kCount ? -1 : t.spec.slot[static_cast<size_t>(b)];
    if ((sa < 0 || na == 0) && (sb < 0 || nb == 0)) return;
    Series* s = series_for(t);
    s->touched_ns = now_ns;
    if (sa >= 0 && na) s->add(sa, na);
    if (sb >= 0 && nb) s->add(sb, nb);
  }

  // Publishes pending series; the caller holds the exclusive lock.
  void publish_pending() {
    for (auto& tp : shared->tables) {
      Table& t = *tp;
      for (Series* s : t.pending) {
        s->published = true;
        s->published_at = static_cast<uint32_t>(t.published.size());
        t.published.push_back(s);
      }
      t.pending.clear();
    }
    pending_total = 0;
  }

  // Removes series idle for their table's ttl; the caller holds the exclusive lock.
  void sweep(int64_t now) {
    for (auto& tp : shared->tables) {
      Table& t = *tp;
      const int64_t ttl = std::chrono::duration_cast<std::chrono::nanoseconds>(t.spec.ttl).count();
      if (ttl <= 0) continue;
      uint64_t removed = 0;
      for (size_t i = 0; i < t.published.size();) {
        Series* s = t.published[i];
        if (now - s->touched_ns < ttl) {
          ++i;
          continue;
        }
        Series* last = t.published.back();
        t.published[i] = last;
        last->published_at = static_cast<uint32_t>(i);
        t.published.pop_back();
        if (s == t.overflow) {
          t.overflow = nullptr;
        } else {
          t.index.erase(s->key());
        }
        Series::destroy(s);
        ++removed;
      }
      if (!removed) continue;
      count_series(t, -static_cast<int64_t>(removed));
      for (size_t m = 0; m < kAdvMetricCount; ++m) {
        if (t.spec.slot[m] < 0) continue;
        expired[m].fetch_add(removed, std::memory_order_relaxed);
        expired_counter[m]->add(removed);
      }
    }
  }

  void apply_config() {
    std::unique_ptr<Plan> next;
    {
      std::lock_guard l(config_mu);
      next = std::move(queued);
      config_pending.store(false, std::memory_order_relaxed);
    }
    if (!next) return;
    std::vector<std::unique_ptr<Table>> tables;
    std::vector<std::unique_ptr<Table>> old;
    {
      std::unique_lock lock(shared->mu);
      old = std::move(shared->tables);
      for (const auto& spec : next->tables) {
        auto it = std::find_if(old.begin(), old.end(),
                               [&](const std::unique_ptr<Table>& t) { return t && t->spec.same_labels(spec); });
        if (it != old.end()) {
          (*it)->spec.ttl = spec.ttl;  // the same series; a new ttl applies to them
          tables.push_back(std::move(*it));
        } else {
          tables.push_back(std::make_unique<Table>(spec));
        }
      }
      shared->tables = std::move(tables);
      shared->table_of = next->table_of;
      publish_pending();
    }
    plan = std::move(next);
    // Recount what survived; dropped tables are freed outside the lock.
    for (auto& c : series_count) c.store(0, std::memory_order_relaxed);
    for (const auto& t : shared->tables) count_series(*t, static_cast<int64_t>(t->live()));
    for (size_t m = 0; m < kAdvMetricCount; ++m) enabled[m].store(plan->table_of[m] >= 0, std::memory_order_relaxed);
    old.clear();
    generation.fetch_add(1, std::memory_order_relaxed);
  }

  void maintain(Clock::time_point now) noexcept {
    now_ns = ns_of(now);
    if (config_pending.load(std::memory_order_acquire)) apply_config();
    const bool sweep_due = now >= next_sweep;
    if (pending_total == 0 && !sweep_due) return;
    std::unique_lock lock(shared->mu, std::try_to_lock);
    if (!lock.owns_lock()) {
      // A scrape is running. Wait for it only when new series have waited long.
      if (pending_total == 0 || now - pending_since < kPublishPatience) return;
      lock.lock();
    }
    publish_pending();
    if (sweep_due) {
      sweep(now_ns);
      next_sweep = now + kSweepInterval;
    }
  }

  void flush_overflow() {
    if (!overflow_dirty) return;
    for (size_t m = 0; m < kAdvMetricCount; ++m) {
      if (!overflow_local[m]) continue;
      overflowed[m].fetch_add(overflow_local[m], std::memory_order_relaxed);
      overflow_counter[m]->add(overflow_local[m]);
      overflow_local[m] = 0;
    }
    overflow_dirty = false;
  }

  // ---- flows (feeding thread) ----

  bool local_pod(const Endpoint* ep) const {
    if (!ep || ep->kind != EndpointKind::kPod) return false;
    const std::string_view node = ep->node_name;
    return node.empty() || node == plan->node_name;
  }

  bool passes(const Endpoint* ep) const {
    const Plan& p = *plan;
    if (!p.filtered()) return true;
    if (!ep) return false;
    if (p.annotations && !ep->observe) return false;
    const std::string_view ns = ep->namespace_;
    if (!p.include.empty() && (ns.empty() || !p.include.contains(absl::string_view(ns.data(), ns.size()))))
      return false;
    if (!p.exclude.empty() && (ns.empty() || p.exclude.contains(absl::string_view(ns.data(), ns.size()))))
      return false;
    return true;
  }

  // Which sides of a flow count, per the context rules in docs/metrics.md.
  struct Selection {
    SideRef src, dst;
    bool remote = false;                // remote context: count the flow once
    std::string_view remote_direction;  //   with this direction
    bool local_src = false, local_dst = false;  // local context: count these sides
  };

  Selection select(const Flow& f) const {
    Selection s;
    const bool ports = f.proto == L4Protocol::kTCP || f.proto == L4Protocol::kUDP;
    s.src = SideRef{f.source, &f.src, f.src_port, ports};
    s.dst = SideRef{f.destination, &f.dst, f.dst_port, ports};
    // packetparser reports a packet at every point it passes (both pod veths,
    // the node's interface); the other sources report an event once.
    const TraceObservationPoint obs =
        f.origin == FlowSource::kPacketParser ? f.observation_point : TraceObservationPoint::UNKNOWN_POINT;
    const bool network = obs == TraceObservationPoint::FROM_NETWORK || obs == TraceObservationPoint::TO_NETWORK;
    const bool src_local = local_pod(f.source), dst_local = local_pod(f.destination);
    if (plan->remote) {
      // A local pod's packets are counted at its veth, not again at the node's interface.
      if ((obs == TraceObservationPoint::TO_NETWORK && src_local) ||
          (obs == TraceObservationPoint::FROM_NETWORK && dst_local))
        return s;
      if (plan->filtered() && !passes(f.source) && !passes(f.destination)) return s;
      s.remote = true;
      s.remote_direction = remote_direction_name(f.direction);
      if (f.direction == TrafficDirection::TRAFFIC_DIRECTION_UNKNOWN) {
        if (src_local) s.remote_direction = kRemoteEgress;
        else if (dst_local) s.remote_direction = kRemoteIngress;
      }
      return s;
    }
    if (network) return s;
    // At a pod's veth only that pod's side counts: the other pod's veth counts the other side.
    s.local_src = obs != TraceObservationPoint::TO_ENDPOINT && src_local && passes(f.source);
    s.local_dst = obs != TraceObservationPoint::TO_STACK && dst_local && passes(f.destination);
    return s;
  }

  // The context part of the key for a table: both sides (remote) or one.
  void build_ctx(const Table& t, const Selection& s, const SideRef* local) {
    ctx.clear();
    if (local) {
      adv::append_ctx_values(ctx, t.spec.src_ctx, *local);
    } else {
      adv::append_ctx_values(ctx, t.spec.src_ctx, s.src);
      adv::append_ctx_values(ctx, t.spec.dst_ctx, s.dst);
    }
  }

  template <class Prefix, class Count>
  void for_each_target(Table& t, const Selection& s, Prefix&& prefix, Count&& count) {
    const auto one = [&](const SideRef* local, std::string_view dir) {
      build_ctx(t, s, local);
      key.clear();
      prefix(dir);
      key.append_key(ctx.view());
      count();
    };
    if (s.remote) {
      one(nullptr, s.remote_direction);
      return;
    }
    if (s.local_src) one(&s.src, kEgress);
    if (s.local_dst) one(&s.dst, kIngress);
  }

  void forward(const Flow& f, const Selection& s) {
    const uint64_t packets = f.packets(), bytes = f.total_bytes();
    if (!packets && !bytes) return;
    for (int8_t ti : plan->by_group[static_cast<size_t>(Group::kForward)]) {
      if (ti < 0) continue;
      Table& t = *shared->tables[static_cast<size_t>(ti)];
      const std::string_view reply = !f.is_reply_known ? adv::kUnknown : (f.is_reply ? "true" : "false");
      for_each_target(
          t, s,
          [&](std::string_view dir) {
            key.value(dir);
            if (t.spec.is_reply) key.value(reply);
          },
          [&] { bump(t, AdvMetric::kForwardCount, packets, AdvMetric::kForwardBytes, bytes); });
    }
  }

  void tcp_flags(const Flow& f, const Selection& s) {
    const int8_t ti = plan->by_group[static_cast<size_t>(Group::kTcpFlags)][0];
    if (ti < 0) return;
    std::array<uint64_t, 9> counts;
    // Retina counts this packet's SYN-ACK as SYNACK (the earlier packets of
    // a report are only known flag by flag, so they count as SYN and ACK).
    const bool synack = !plan->separate_syn_ack && f.has_packet && (f.tcp_flags >> kSynBit & 1u) &&
                        (f.tcp_flags >> kAckBit & 1u);
    bool any = synack;
    for (size_t i = 0; i < counts.size(); ++i) {
      const bool own = f.has_packet && (f.tcp_flags >> i & 1u) && !(synack && (i == kSynBit || i == kAckBit));
      counts[i] = f.prev_flag_counts[i] + (own ? 1 : 0);
      any = any || counts[i];
    }
    if (!any) return;
    Table& t = *shared->tables[static_cast<size_t>(ti)];
    const auto sides = [&](const SideRef* local) {
      build_ctx(t, s, local);
      for (size_t i = 0; i < counts.size(); ++i) {
        if (!counts[i]) continue;
        key.clear();
        key.value(kTcpFlagNames[i]);
        key.append_key(ctx.view());
        bump(t, AdvMetric::kTcpFlags, counts[i], AdvMetric::kCount, 0);
      }
      if (synack) {
        key.clear();
        key.value(kSynAck);
        key.append_key(ctx.view());
        bump(t, AdvMetric::kTcpFlags, 1, AdvMetric::kCount, 0);
      }
    };
    if (s.remote) sides(nullptr);
    if (s.local_src) sides(&s.src);
    if (s.local_dst) sides(&s.dst);
  }

  void drop(const Flow& f, const Selection& s) {
    const uint64_t packets = 1 + uint64_t{f.suppressed}, bytes = f.bytes;
    const std::string_view reason =
        plan->kernel_drop_reasons ? std::string_view(f.drop_reason_desc) : retina_reason_or_unknown(f.drop_reason_desc);
    for (int8_t ti : plan->by_group[static_cast<size_t>(Group::kDrop)]) {
      if (ti < 0) continue;
      Table& t = *shared->tables[static_cast<size_t>(ti)];
      for_each_target(
          t, s,
          [&](std::string_view dir) {
            key.value_or_unknown(reason);
            key.value(dir);
          },
          [&] { bump(t, AdvMetric::kDropCount, packets, AdvMetric::kDropBytes, bytes); });
    }
  }

  void retrans(const Selection& s) {
    const int8_t ti = plan->by_group[static_cast<size_t>(Group::kTcpRetrans)][0];
    if (ti < 0) return;
    Table& t = *shared->tables[static_cast<size_t>(ti)];
    for_each_target(
        t, s, [&](std::string_view dir) { key.value(dir); },
        [&] { bump(t, AdvMetric::kTcpRetrans, 1, AdvMetric::kCount, 0); });
  }

  void dns(const Flow& f, const Selection& s) {
    const DnsInfo& d = *f.dns;
    const bool response = f.l7_type == L7Type::RESPONSE;
    const Group g = response ? Group::kDnsResponse : Group::kDnsRequest;
    const int8_t ti = plan->by_group[static_cast<size_t>(g)][0];
    if (ti < 0) return;
    Table& t = *shared->tables[static_cast<size_t>(ti)];
    const AdvMetric m = response ? AdvMetric::kDnsResponse : AdvMetric::kDnsRequest;
    for_each_target(
        t, s,
        [&](std::string_view) {
          if (response) key.value(dns_rcode_name(d.rcode));
          key.value(dns_qtype_name(d.qtype));
          key.value(d.query);
          if (response) {
            const size_t at = key.open();
            for (size_t i = 0; i < d.ips.size(); ++i) {
              if (i) key.raw().push_back(',');
              d.ips[i].append_to(key.raw());
            }
            key.close(at);
            key.number(d.answer_count);
          }
        },
        [&] { bump(t, m, 1, AdvMetric::kCount, 0); });
  }

  void on_flow(const Flow& f) {
    if (!plan || plan->tables.empty()) return;
    switch (f.verdict) {
      case Verdict::FORWARDED: {
        const bool fwd = plan->by_group[static_cast<size_t>(Group::kForward)][0] >= 0;
        const bool flags = f.proto == L4Protocol::kTCP && plan->by_group[static_cast<size_t>(Group::kTcpFlags)][0] >= 0;
        if (!fwd && !flags) return;
        const Selection s = select(f);
        if (fwd) forward(f, s);
        if (flags) tcp_flags(f, s);
        return;
      }
      case Verdict::DROPPED:
        if (plan->by_group[static_cast<size_t>(Group::kDrop)][0] >= 0) drop(f, select(f));
        return;
      case Verdict::RETRANSMISSION: retrans(select(f)); return;
      case Verdict::DNS:
        if (f.dns && (f.l7_type == L7Type::REQUEST || f.l7_type == L7Type::RESPONSE)) dns(f, select(f));
        return;
      default: return;
    }
  }
};

AdvancedAggregator::AdvancedAggregator(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Result<std::shared_ptr<AdvancedAggregator>> AdvancedAggregator::create(Registry& registry, AdvancedOptions options) {
  if (auto st = validate(options); !st) return unexpected(st.error());
  auto impl = std::make_unique<Impl>(registry, std::move(options.clock));
  impl->queued = std::make_unique<Plan>(adv::make_plan(options));
  impl->config_pending.store(true);
  impl->maintain(impl->clock());
  impl->collector_id = registry.add_collector(std::make_shared<AdvCollector>(impl->shared));
  return std::shared_ptr<AdvancedAggregator>(new AdvancedAggregator(std::move(impl)));
}

AdvancedAggregator::~AdvancedAggregator() {
  impl_->flush_overflow();
  impl_->registry.remove_collector(impl_->collector_id);
}

void AdvancedAggregator::on_flow(const Flow& flow) noexcept { impl_->on_flow(flow); }

void AdvancedAggregator::on_batch_end() noexcept {
  Impl& im = *impl_;
  im.flush_overflow();
  const auto now = im.clock();
  im.now_ns = ns_of(now);
  if (im.pending_total || now >= im.next_sweep || im.config_pending.load(std::memory_order_relaxed)) im.maintain(now);
}

Status AdvancedAggregator::configure(AdvancedOptions options) {
  if (auto st = validate(options); !st) return st;
  auto plan = std::make_unique<Plan>(adv::make_plan(options));
  std::lock_guard l(impl_->config_mu);
  impl_->queued = std::move(plan);
  impl_->config_pending.store(true, std::memory_order_release);
  return ok();
}

void AdvancedAggregator::maintain() noexcept { impl_->maintain(impl_->clock()); }
void AdvancedAggregator::maintain(std::chrono::steady_clock::time_point now) noexcept { impl_->maintain(now); }

AdvancedStats AdvancedAggregator::stats() const {
  const Impl& im = *impl_;
  AdvancedStats s;
  s.generation = im.generation.load(std::memory_order_relaxed);
  s.config_pending = im.config_pending.load(std::memory_order_relaxed);
  for (size_t m = 0; m < kAdvMetricCount; ++m) {
    s.series[m] = im.series_count[m].load(std::memory_order_relaxed);
    s.overflowed[m] = im.overflowed[m].load(std::memory_order_relaxed);
    s.expired[m] = im.expired[m].load(std::memory_order_relaxed);
    s.enabled[m] = im.enabled[m].load(std::memory_order_relaxed);
  }
  return s;
}

}  // namespace retina::metrics
