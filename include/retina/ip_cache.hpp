// The IP-to-object cache: IPv4/IPv6 address -> Endpoint (pod, service, node).
//
// Readers never block on writers. The cache keeps two copies of its index
// (a left-right pair of absl::flat_hash_map keyed with xxHash3); writers
// change the copy no reader uses, switch readers over, wait for the last
// reader of the old copy to leave and then bring that copy up to date.
// A reader pays two uncontended atomic increments per read section, and a
// read section normally spans a whole batch of events.
//
// Which endpoint an address resolves to: among the live endpoints (of any
// source) that list it, the most recently written one; when none is live,
// the most recently removed one still in its grace period.
//
// A writer waits until the readers of the copy it replaced have left, so a
// thread must not call a writer method while it holds a ReadGuard (it would
// wait for itself). find(), find_key(), stats() and for_each() never wait
// for readers and are safe to call while holding one.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "retina/endpoint.hpp"
#include "retina/ip.hpp"

namespace retina {

// Who contributed an endpoint. Each source's set can be replaced as a whole.
enum class EndpointSource : uint8_t { kApi = 0, kFile = 1, kKubernetes = 2, kCount };

struct IpCacheStats {
  uint64_t endpoints = 0;   // live endpoints
  uint64_t ips = 0;         // addresses resolving
  uint64_t lingering = 0;   // deleted endpoints still resolving during their grace period
  uint64_t updates = 0;     // write operations applied
  uint64_t lookups_hit = 0; // maintained by the enricher, not by lookups themselves
  uint64_t lookups_miss = 0;
};

class IpCache {
 public:
  IpCache();
  ~IpCache();
  IpCache(const IpCache&) = delete;
  IpCache& operator=(const IpCache&) = delete;

  // ---- writers: any thread, serialized internally ----

  // Maps each of ep->ips to `ep`. An endpoint with the same key from the
  // same source is replaced (also one still in its grace period); an IP
  // owned by another endpoint moves to `ep` at once (IP reuse by a new pod).
  // A null `ep` is ignored.
  void upsert(EndpointPtr ep, EndpointSource source = EndpointSource::kApi);

  // Removes the endpoint with `key` (Endpoint::key()). With grace > 0 its
  // IPs keep resolving until the grace period ends, unless another endpoint
  // claims them first; expire() reclaims them. IPs another live endpoint
  // also lists fall back to it at once. grace 0 also ends the grace period
  // of an endpoint removed earlier with that key.
  void remove(std::string_view key, EndpointSource source = EndpointSource::kApi,
              std::chrono::nanoseconds grace = std::chrono::nanoseconds{0});

  // Replaces everything `source` contributed with `eps`, as one update.
  // Endpoints whose content did not change keep their object and their
  // place in the write order; of two with the same key the later one wins.
  void replace_source(EndpointSource source, std::vector<EndpointPtr> eps,
                      std::chrono::nanoseconds grace = std::chrono::nanoseconds{0});

  // Drops lingering endpoints whose grace period ended before `now`.
  void expire(std::chrono::steady_clock::time_point now = std::chrono::steady_clock::now());

  // ---- readers ----

  // A read section. Pointers returned by lookup() stay valid until the
  // guard is destroyed. Wait-free; cheap enough to hold for a batch.
  class ReadGuard {
   public:
    ReadGuard(ReadGuard&& o) noexcept;
    ReadGuard& operator=(ReadGuard&&) = delete;
    ~ReadGuard();
    const Endpoint* lookup(const IpAddr& ip) const noexcept;
    // Starts loading what lookup(ip) will read, without waiting for it.
    void prefetch(const IpAddr& ip) const noexcept;
    // The same endpoint as the cache's own reference (null when unknown),
    // valid until the guard is destroyed: copying it keeps the endpoint.
    const EndpointPtr* lookup_owned(const IpAddr& ip) const noexcept;

   private:
    friend class IpCache;
    ReadGuard(const IpCache* cache, int version, const void* index) noexcept
        : cache_(cache), version_(version), index_(index) {}
    const IpCache* cache_;
    int version_;
    const void* index_;
  };
  ReadGuard read() const noexcept;

  // Owning lookup for code off the hot path.
  EndpointPtr find(const IpAddr& ip) const;
  // Owning lookup by key, among live endpoints (the most recent if several
  // sources have that key).
  EndpointPtr find_key(std::string_view key) const;

  IpCacheStats stats() const;

  // Visits every live endpoint (owning pointers), e.g. for /debug output.
  void for_each(const std::function<void(const EndpointPtr&)>& fn) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace retina
