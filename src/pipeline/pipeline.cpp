// The producer side keeps everything it touches per event in plain members
// of Impl: the decode scratch, the batch's cache read section and list
// snapshots, local counters. Nothing per event allocates, locks, or
// writes a shared atomic, unless a subscriber wants the flow.
#include "retina/pipeline.hpp"

#include <array>
#include <cstdint>
#include <mutex>
#include <string>
#include <utility>

#include "pipeline/subscription.hpp"
#include "retina/decoder.hpp"
#include "retina/metrics/names.hpp"
#include "retina/metrics/registry.hpp"

namespace retina {

namespace names = metrics::names;
using pipeline::SubscriptionHandle;
using pipeline::SubscriptionState;

namespace {

constexpr size_t kRejectKinds = static_cast<size_t>(DecodeError::kCount);
// How often the boot-to-realtime offset is sampled again (NTP steps).
constexpr auto kClockResync = std::chrono::seconds(1);

struct SinkEntry {
  uint64_t id;
  std::shared_ptr<FlowSink> sink;
  bool keeps;  // keeps_flows(): gets owning endpoint references
};
using SinkList = std::vector<SinkEntry>;
using SubList = std::vector<std::shared_ptr<SubscriptionState>>;
using Names = std::vector<std::string>;

}  // namespace

struct Pipeline::Impl {
  IpCache* cache;
  metrics::Registry* registry;

  // ---- consumer side: any thread ----
  // The lists are immutable once published; a change publishes a new list
  // under `mu` and bumps `version`. The producer compares `version` once
  // per batch and takes `mu` only when it changed, to copy the pointers.
  std::mutex mu;
  uint64_t next_sink_id = 1;
  std::shared_ptr<const SinkList> sinks = std::make_shared<const SinkList>();
  std::shared_ptr<const SubList> subs = std::make_shared<const SubList>();
  std::shared_ptr<const Names> drop_names;
  std::atomic<uint64_t> version{1};
  std::atomic<bool> enrich{true};

  // ---- published statistics ----
  std::atomic<uint64_t> st_records{0}, st_decoded{0}, st_hits{0}, st_misses{0};
  std::array<std::atomic<uint64_t>, kRejectKinds> st_rejected{};

  // ---- producer side ----
  bool in_batch = false;
  uint64_t seen_version = 0;
  std::optional<IpCache::ReadGuard> guard;
  std::shared_ptr<const SinkList> batch_sinks;
  std::shared_ptr<const SubList> batch_subs;
  std::shared_ptr<const Names> batch_names;
  bool batch_enrich = true;
  bool saw_closed = false;

  DnsInfo dns_scratch;
  DecodeContext ctx;
  Flow flow;
  // process_ahead(): decoded flows waiting for their lookups, oldest at
  // ahead_head; each with its own DNS scratch, which its flow points to.
  struct Ahead {
    Flow flow;
    DnsInfo dns;
  };
  std::array<Ahead, kLookahead> ahead;
  size_t ahead_head = 0, ahead_count = 0;
  std::chrono::steady_clock::time_point clock_synced{};

  // Local counts, published at end_batch().
  uint64_t records = 0, decoded = 0, hits = 0, misses = 0, parsed = 0;

  metrics::Counter* parsed_counter = nullptr;
  metrics::Family<metrics::Counter>* lost_family = nullptr;
  // Decoder reject counters by plugin, resolved on a plugin's first reject.
  std::vector<std::pair<std::string, metrics::Counter*>> reject_counters;

  // The cache's own references to the current flow's endpoints (valid
  // for the batch's read section): what subscribers and keeping sinks get.
  const EndpointPtr* source_ref = nullptr;
  const EndpointPtr* destination_ref = nullptr;

  Impl(IpCache* c, metrics::Registry* r) : cache(c), registry(r) {
    if (registry) {
      parsed_counter = &registry->counter(names::kParsedPackets, "Packets parsed by the packetparser plugin").with({});
      lost_family = &registry->counter(names::kLostEvents, "Events lost before reaching every consumer",
                                       {std::string(names::kType), std::string(names::kReason)});
    }
    ctx.dns_scratch = &dns_scratch;
  }

  void begin_batch() {
    in_batch = true;
    if (version.load(std::memory_order_acquire) != seen_version) {
      std::lock_guard lock(mu);
      batch_sinks = sinks;
      batch_subs = subs;
      batch_names = drop_names;
      seen_version = version.load(std::memory_order_relaxed);
    }
    batch_enrich = enrich.load(std::memory_order_relaxed);
    ctx.drop_reason_names = batch_names.get();
    const auto now = std::chrono::steady_clock::now();
    if (now - clock_synced >= kClockResync) {
      ctx.boot_to_realtime_ns = boot_to_realtime_offset_ns();
      clock_synced = now;
    }
    if (batch_enrich) guard.emplace(cache->read());
  }

  void count_reject(DecodeError e, std::string_view plugin) {
    auto& c = st_rejected[static_cast<size_t>(e)];
    c.store(c.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    if (!lost_family) return;
    for (auto& [name, counter] : reject_counters)
      if (name == plugin) {
        counter->add();
        return;
      }
    auto* counter = &lost_family->with({names::kLostDecoder, plugin});
    reject_counters.emplace_back(std::string(plugin), counter);
    counter->add();
  }

  void enrich_flow(Flow& f) {
    source_ref = destination_ref = nullptr;
    if (!guard || f.ip_version == IpVersion::IP_NOT_USED) return;
    source_ref = guard->lookup_owned(f.src);
    destination_ref = guard->lookup_owned(f.dst);
    f.source = source_ref ? source_ref->get() : nullptr;
    f.destination = destination_ref ? destination_ref->get() : nullptr;
    const uint64_t found = (f.source != nullptr) + (f.destination != nullptr);
    hits += found;
    misses += 2 - found;
  }

  // The cache's reference that owns `raw`, when the flow was enriched here.
  static const EndpointPtr* owner_of(const Endpoint* raw, const EndpointPtr* ref) {
    return raw && ref && ref->get() == raw ? ref : nullptr;
  }
  // An owning reference to `raw`: the cache's own (a reference count), else
  // a copy of the endpoint.
  static EndpointPtr owned_endpoint(const Endpoint* raw, const EndpointPtr* ref) {
    if (!raw) return nullptr;
    if (const EndpointPtr* owner = owner_of(raw, ref)) return *owner;
    return std::make_shared<const Endpoint>(*raw);
  }

  void dispatch(const Flow& f, bool enriched_here) {
    for (const SinkEntry& e : *batch_sinks) {
      if (e.keeps)
        e.sink->on_kept_flow(f, owner_of(f.source, enriched_here ? source_ref : nullptr),
                             owner_of(f.destination, enriched_here ? destination_ref : nullptr));
      else
        e.sink->on_flow(f);
    }
    if (batch_subs->empty()) return;
    // The flow is copied once for the first taker; each further taker gets
    // a copy and the last one the original, moved.
    std::optional<OwnedFlow> owned;
    SubscriptionState* pending = nullptr;
    for (const auto& s : *batch_subs) {
      if (s->closed()) {
        saw_closed = true;
        continue;
      }
      if (!s->filter().matches(f)) continue;
      if (!s->has_room()) {
        s->drop();
        continue;
      }
      if (!owned) {
        owned.emplace(f, owned_endpoint(f.source, enriched_here ? source_ref : nullptr),
                      owned_endpoint(f.destination, enriched_here ? destination_ref : nullptr));
      }
      if (pending) pending->push(OwnedFlow(*owned));
      pending = s.get();
    }
    if (pending) pending->push(std::move(*owned));
  }

  void publish_stats() {
    st_records.store(st_records.load(std::memory_order_relaxed) + records, std::memory_order_relaxed);
    st_decoded.store(st_decoded.load(std::memory_order_relaxed) + decoded, std::memory_order_relaxed);
    st_hits.store(st_hits.load(std::memory_order_relaxed) + hits, std::memory_order_relaxed);
    st_misses.store(st_misses.load(std::memory_order_relaxed) + misses, std::memory_order_relaxed);
    if (parsed_counter && parsed) parsed_counter->add(parsed);
    records = decoded = hits = misses = parsed = 0;
  }

  // Publishes a change made under `mu`.
  void bump() { version.fetch_add(1, std::memory_order_release); }

  void prune_closed() {
    std::lock_guard lock(mu);
    auto next = std::make_shared<SubList>();
    next->reserve(subs->size());
    for (const auto& s : *subs)
      if (!s->closed()) next->push_back(s);
    subs = std::move(next);
    bump();
  }

  // Enriches and dispatches the oldest decoded-ahead flow.
  void finish_oldest() {
    Flow& f = ahead[ahead_head].flow;
    enrich_flow(f);
    dispatch(f, guard.has_value());
    ahead_head = (ahead_head + 1) % kLookahead;
    --ahead_count;
  }

  void flush_ahead() {
    while (ahead_count) finish_oldest();
  }

  void end_batch() {
    if (!in_batch) return;
    flush_ahead();
    for (const SinkEntry& e : *batch_sinks) e.sink->on_batch_end();
    guard.reset();
    publish_stats();
    if (saw_closed) {
      prune_closed();
      saw_closed = false;
    }
    // Let go of lists that changed meanwhile (removed sinks die here).
    if (version.load(std::memory_order_acquire) != seen_version) {
      batch_sinks.reset();
      batch_subs.reset();
      batch_names.reset();
      seen_version = 0;
    }
    ctx.drop_reason_names = nullptr;
    in_batch = false;
  }
};

Pipeline::Pipeline(std::shared_ptr<IpCache> cache, metrics::Registry* registry)
    : cache_(cache ? std::move(cache) : std::make_shared<IpCache>()),
      impl_(std::make_unique<Impl>(cache_.get(), registry)) {}

Pipeline::~Pipeline() {
  impl_->end_batch();
  // Wake consumers blocked in pop_batch(); their flows stay poppable.
  std::lock_guard lock(impl_->mu);
  for (const auto& s : *impl_->subs) s->close();
}

uint64_t Pipeline::add_sink(std::shared_ptr<FlowSink> sink) {
  if (!sink) return 0;
  Impl& im = *impl_;
  std::lock_guard lock(im.mu);
  auto next = std::make_shared<SinkList>(*im.sinks);
  const uint64_t id = im.next_sink_id++;
  const bool keeps = sink->keeps_flows();
  next->push_back({id, std::move(sink), keeps});
  im.sinks = std::move(next);
  im.bump();
  return id;
}

void Pipeline::remove_sink(uint64_t id) {
  Impl& im = *impl_;
  std::shared_ptr<const SinkList> old;  // released outside the lock
  std::lock_guard lock(im.mu);
  auto next = std::make_shared<SinkList>();
  next->reserve(im.sinks->size());
  for (const SinkEntry& e : *im.sinks)
    if (e.id != id) next->push_back(e);
  old = std::exchange(im.sinks, std::move(next));
  im.bump();
}

std::shared_ptr<Subscription> Pipeline::subscribe(std::string name, size_t capacity, FlowFilter filter) {
  Impl& im = *impl_;
  metrics::Counter* lost =
      im.lost_family ? &im.lost_family->with({names::kLostExternalChannel, name}) : nullptr;
  auto state = std::make_shared<SubscriptionState>(std::move(name), capacity, std::move(filter), lost);
  {
    std::lock_guard lock(im.mu);
    auto next = std::make_shared<SubList>(*im.subs);
    next->push_back(state);
    im.subs = std::move(next);
    im.bump();
  }
  return std::make_shared<SubscriptionHandle>(std::move(state));
}

// Names the source only when a record is rejected: the header is read again
// then, never on the hot path.
void Pipeline::process(std::span<const std::byte> record) noexcept { process(record, std::string_view()); }

// A batch record is taken apart here, so sinks, counts and rejects see
// each record it holds as if it had come alone. A batch whose framing is
// bad is one reject.
template <class Fn>
void Pipeline::take_apart(std::span<const std::byte> batch, std::string_view plugin, Fn&& fn) noexcept {
  auto view = split_batch(batch);
  if (!view) return reject(batch, plugin, view.error());
  for (size_t i = 0; i < view->count; ++i) fn(view->record(i));
}

void Pipeline::process(std::span<const std::byte> record, std::string_view plugin) noexcept {
  if (is_batch(record)) [[unlikely]]
    return take_apart(record, plugin, [&](std::span<const std::byte> r) { process(r, plugin); });
  Impl& im = *impl_;
  if (!im.in_batch) im.begin_batch();
  im.flush_ahead();
  ++im.records;
  auto r = decode(record, im.ctx, im.flow);
  if (!r) {
    im.count_reject(r.error(), plugin.empty() ? record_source(record) : plugin);
    return;
  }
  ++im.decoded;
  if (im.flow.origin == FlowSource::kPacketParser) ++im.parsed;
  im.enrich_flow(im.flow);
  im.dispatch(im.flow, im.guard.has_value());
}

void Pipeline::process_ahead(std::span<const std::byte> record, std::string_view plugin) noexcept {
  if (is_batch(record)) [[unlikely]]
    return take_apart(record, plugin, [&](std::span<const std::byte> r) { process_ahead(r, plugin); });
  Impl& im = *impl_;
  if (!im.in_batch) im.begin_batch();
  if (im.ahead_count == kLookahead) im.finish_oldest();
  ++im.records;
  Impl::Ahead& a = im.ahead[(im.ahead_head + im.ahead_count) % kLookahead];
  im.ctx.dns_scratch = &a.dns;
  auto r = decode(record, im.ctx, a.flow);
  im.ctx.dns_scratch = &im.dns_scratch;
  if (!r) {
    im.count_reject(r.error(), plugin.empty() ? record_source(record) : plugin);
    return;
  }
  ++im.decoded;
  if (a.flow.origin == FlowSource::kPacketParser) ++im.parsed;
  if (im.guard && a.flow.ip_version != IpVersion::IP_NOT_USED) {
    im.guard->prefetch(a.flow.src);
    im.guard->prefetch(a.flow.dst);
  }
  ++im.ahead_count;
}

void Pipeline::reject(std::span<const std::byte> record, std::string_view plugin, DecodeError e) noexcept {
  Impl& im = *impl_;
  if (!im.in_batch) im.begin_batch();
  ++im.records;
  im.count_reject(e, plugin.empty() ? record_source(record) : plugin);
}

void Pipeline::process_flow(Flow& flow) noexcept {
  Impl& im = *impl_;
  if (!im.in_batch) im.begin_batch();
  im.flush_ahead();
  const bool enriched = im.guard.has_value() && flow.ip_version != IpVersion::IP_NOT_USED;
  im.enrich_flow(flow);
  im.dispatch(flow, enriched);
}

void Pipeline::end_batch() noexcept { impl_->end_batch(); }

void Pipeline::idle() noexcept {
  if (impl_->in_batch) return;
  std::shared_ptr<const SinkList> list;
  {
    std::lock_guard lock(impl_->mu);
    list = impl_->sinks;
  }
  for (const SinkEntry& e : *list) e.sink->on_idle();
}

void Pipeline::set_drop_reason_names(std::shared_ptr<const std::vector<std::string>> names) {
  std::shared_ptr<const Names> old;  // released outside the lock
  std::lock_guard lock(impl_->mu);
  old = std::exchange(impl_->drop_names, std::move(names));
  impl_->bump();
}

void Pipeline::set_enrich(bool on) noexcept { impl_->enrich.store(on, std::memory_order_relaxed); }

PipelineStats Pipeline::stats() const {
  const Impl& im = *impl_;
  PipelineStats s;
  s.records = im.st_records.load(std::memory_order_relaxed);
  s.decoded = im.st_decoded.load(std::memory_order_relaxed);
  s.enrich_hits = im.st_hits.load(std::memory_order_relaxed);
  s.enrich_misses = im.st_misses.load(std::memory_order_relaxed);
  for (size_t i = 0; i < kRejectKinds; ++i) s.rejected[i] = im.st_rejected[i].load(std::memory_order_relaxed);
  return s;
}

}  // namespace retina
