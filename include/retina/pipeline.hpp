// The flow path in user space: ring-buffer record -> decode -> enrich ->
// every sink and subscriber. One thread feeds a Pipeline.
//
//   * A FlowSink runs inline on the feeding thread and sees a Flow view.
//     It must be quick and must never block (the metric aggregator is one;
//     the Hubble flow store, which keeps flows, is another).
//   * A Subscription gets its own bounded queue of OwnedFlow. When it falls
//     behind, its own flows are dropped and counted; the kernel reader and
//     the other consumers never wait for it.
//
// Batches: the first process() after end_batch() opens a batch. It takes
// an IpCache read section and a snapshot of the sink and subscriber lists,
// and keeps both until end_batch(). Sinks and subscriptions added or
// removed meanwhile take effect at the next batch; a removed sink is kept
// alive (and still called) until the batch it was part of ends, and it
// always gets that batch's on_batch_end(). Producers must call end_batch()
// regularly (the engine does after every ring-buffer drain).
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "retina/decoder.hpp"
#include "retina/flow.hpp"
#include "retina/ip_cache.hpp"

namespace retina {

namespace metrics {
class Registry;
}

class FlowSink {
 public:
  virtual ~FlowSink() = default;
  virtual void on_flow(const Flow& flow) noexcept = 0;
  // Called after each batch; sinks that accumulate locally publish here.
  virtual void on_batch_end() noexcept {}
  // Called on the pipeline's thread when it has had no records for a while
  // (Pipeline::idle()): for work a sink put off at a batch end.
  virtual void on_idle() noexcept {}
  // A sink that keeps flows past the call (a ring of recent flows) says so
  // here, once, when added: the pipeline then calls on_kept_flow() instead
  // of on_flow(), with the IP cache's own references to the flow's
  // endpoints, valid for the call: a set `source` owns flow.source (copy it
  // to keep the endpoint: a reference count); a null one means the sink
  // copies *flow.source, if any, to keep it.
  virtual bool keeps_flows() const noexcept { return false; }
  virtual void on_kept_flow(const Flow& flow, const EndpointPtr* source, const EndpointPtr* destination) noexcept {
    (void)source;
    (void)destination;
    on_flow(flow);
  }
};

// A Flow that owns what it points to; safe to keep and pass across threads.
class OwnedFlow {
 public:
  OwnedFlow() = default;
  // Copies the view; endpoints are copied into new objects.
  explicit OwnedFlow(const Flow& view);
  // Copies the view, sharing the given endpoints, which must be the ones
  // (or equal to the ones) view.source and view.destination point to.
  OwnedFlow(const Flow& view, EndpointPtr source, EndpointPtr destination);
  OwnedFlow(const OwnedFlow& o) { *this = o; }
  OwnedFlow& operator=(const OwnedFlow& o);
  OwnedFlow(OwnedFlow&& o) noexcept { *this = std::move(o); }
  OwnedFlow& operator=(OwnedFlow&& o) noexcept;

  // The flow with its pointers aimed at this object's own copies.
  const Flow& flow() const { return flow_; }
  const EndpointPtr& source() const { return source_; }
  const EndpointPtr& destination() const { return destination_; }

 private:
  void repoint();
  Flow flow_{};
  EndpointPtr source_, destination_;
  std::optional<DnsInfo> dns_;
  std::string drop_reason_desc_;
};

// Which flows a subscriber wants. An empty field matches everything; a
// flow must match every non-empty field (any one of its values).
struct FlowFilter {
  std::vector<Verdict> verdicts;
  std::vector<FlowSource> origins;
  std::vector<std::string> namespaces;  // either side's namespace
  std::vector<std::string> pod_names;   // either side's pod, "ns/name" or "name"
  std::vector<IpAddr> ips;              // either side's address
  std::vector<uint16_t> ports;          // either side's port
  bool matches(const Flow& f) const noexcept;
};

class Subscription {
 public:
  virtual ~Subscription() = default;
  virtual std::string_view name() const = 0;
  // Non-blocking pop.
  virtual bool try_pop(OwnedFlow& out) = 0;
  // Appends up to `max` flows to `out`, waiting up to `wait` for the first
  // one; returns how many. Returns at once when closed and empty.
  virtual size_t pop_batch(std::vector<OwnedFlow>& out, size_t max, std::chrono::milliseconds wait) = 0;
  // Flows dropped because this subscriber's queue was full.
  virtual uint64_t dropped() const = 0;
  // Flows accepted into this subscriber's queue.
  virtual uint64_t delivered() const = 0;
  // Flows waiting in the queue.
  virtual size_t queued() const = 0;
  // Stops delivery and wakes a waiting pop_batch(); flows already queued
  // can still be popped. The pipeline forgets the subscription at the end
  // of its current batch. Destroying the last reference closes it too.
  virtual void close() = 0;
  virtual bool closed() const = 0;
};

// Counts are published at end_batch().
struct PipelineStats {
  uint64_t records = 0;        // records handed to process(); a batch counts those it holds
  uint64_t decoded = 0;
  uint64_t rejected[static_cast<size_t>(DecodeError::kCount)] = {};
  uint64_t enrich_hits = 0;    // endpoint lookups that found something
  uint64_t enrich_misses = 0;
};

class Pipeline {
 public:
  // `registry` may be null; otherwise the pipeline exports its own counters
  // (parsed packets, decoder rejects, subscriber drops) into it, and it must
  // outlive the pipeline. A null `cache` gets an empty cache of its own.
  Pipeline(std::shared_ptr<IpCache> cache, metrics::Registry* registry);
  ~Pipeline();
  Pipeline(const Pipeline&) = delete;
  Pipeline& operator=(const Pipeline&) = delete;

  // ---- consumers: any thread ----
  // Returns the sink's id (0 for a null sink, which is not added).
  uint64_t add_sink(std::shared_ptr<FlowSink> sink);
  void remove_sink(uint64_t id);
  // `name` labels the subscriber's drop counter; capacity is at least 1.
  std::shared_ptr<Subscription> subscribe(std::string name, size_t capacity = 1 << 16,
                                          FlowFilter filter = {});

  // ---- producer: one thread at a time ----
  // Decodes one record from `source` (its name labels reject counters),
  // enriches and dispatches it; a batch record (is_batch()), each record it
  // holds. Malformed records are counted, never thrown.
  void process(std::span<const std::byte> record, std::string_view source) noexcept;
  // The same, with rejects labelled by the source the record's header names
  // (record_source()): for recorded events whose ring buffer is not known.
  void process(std::span<const std::byte> record) noexcept;
  // Like process(), but the flow reaches sinks and subscribers up to
  // kLookahead records later, and at the latest in end_batch(): records are
  // decoded a few ahead and their cache entries prefetched, so the lookups
  // of a large cache overlap instead of each waiting for memory. Order is
  // kept; process() and process_flow() dispatch what is pending first.
  void process_ahead(std::span<const std::byte> record, std::string_view source) noexcept;
  static constexpr size_t kLookahead = 8;
  // Enriches and dispatches a flow built elsewhere (e.g. a user-space source).
  void process_flow(Flow& flow) noexcept;
  // Ends a batch: releases the cache read section, flushes sinks.
  void end_batch() noexcept;
  // Tells the sinks the producer is idle (FlowSink::on_idle), from the
  // producer's thread between batches; the engine calls it on idle rounds.
  void idle() noexcept;

  void set_drop_reason_names(std::shared_ptr<const std::vector<std::string>> names);
  // Disables enrichment (for benchmarks of decode alone).
  void set_enrich(bool on) noexcept;

  PipelineStats stats() const;
  IpCache& cache() { return *cache_; }

 private:
  // Calls fn for each record a batch holds, or counts the batch as one reject.
  template <class Fn>
  void take_apart(std::span<const std::byte> batch, std::string_view source, Fn&& fn) noexcept;
  void reject(std::span<const std::byte> record, std::string_view source, DecodeError e) noexcept;
  struct Impl;
  std::shared_ptr<IpCache> cache_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace retina
