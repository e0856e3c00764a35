// IpCache: a left-right pair of reader indexes plus writer-side ownership.
//
// Readers: arrive on the read indicator of the current version, load the
// left-right switch, look up in that copy, depart. Nothing else.
//
// Writers (serialized by write_mu) work in two phases:
//  1. Under state_mu, change the writer-side state (records per source and
//     key, claimants per IP) and compute the new winner of every touched IP.
//     Replaced or removed endpoints move to a local `retired` list.
//  2. Without state_mu: apply the winners to the inactive copy, switch
//     readers to it, wait until no reader can still be in the old copy,
//     apply the same winners to the old copy. Then drop `retired`: no reader
//     can reach those endpoints any more.
// state_mu is never held while waiting for readers, so find() and stats()
// stay safe to call from a thread that holds a ReadGuard.
#include "retina/ip_cache.hpp"

#include <absl/container/flat_hash_set.h>

#include <algorithm>
#include <atomic>
#include <exception>
#include <mutex>
#include <thread>
#include <utility>

#include "cache/ip_index.hpp"
#include "cache/read_indicator.hpp"
#include "cache/records.hpp"

namespace retina {

using cache::ClaimList;
using cache::IpEq;
using cache::IpHash;
using cache::IpIndex;
using cache::ReadIndicator;
using cache::Record;
using cache::RecordSet;
using Clock = std::chrono::steady_clock;

namespace {

constexpr size_t kSources = static_cast<size_t>(EndpointSource::kCount);

struct Op {
  IpAddr ip;
  EndpointPtr ep;  // null: erase
};

// Everything one write call changes, published as one swap.
struct Batch {
  absl::flat_hash_set<IpAddr, IpHash, IpEq> touched;
  std::vector<EndpointPtr> retired;
  bool changed = false;
};

size_t index_of(EndpointSource s) {
  auto i = static_cast<size_t>(s);
  return i < kSources ? i : 0;
}

}  // namespace

struct IpCache::Impl {
  // ---- reader side ----
  IpIndex maps[2];
  std::atomic<int> left_right{0};     // the copy readers use
  std::atomic<int> version_index{0};  // the read indicator new readers arrive on
  ReadIndicator indicators[2];

  // ---- writer side ----
  std::mutex write_mu;          // serializes writers, held across the reader drain
  mutable std::mutex state_mu;  // guards everything below; never held while waiting
  std::array<RecordSet, kSources> live;
  std::array<RecordSet, kSources> lingering;
  absl::flat_hash_map<IpAddr, ClaimList, IpHash, IpEq> claims;
  uint64_t seq = 0;
  uint64_t updates = 0;
  uint64_t live_count = 0;
  uint64_t lingering_count = 0;
  Clock::time_point next_deadline = Clock::time_point::max();

  // ---- state changes (state_mu held) ----

  // Adds `r` to the claimants of each of its IPs. A live claim ends any
  // lingering claim on the same IP ("until claimed").
  void claim(Record* r, Batch& b) {
    for (const IpAddr& ip : r->ep->ips) {
      ClaimList& list = claims[ip];
      if (list.contains(r)) continue;  // the address is listed twice
      for (size_t i = 0; i < list.size();) {
        Record* c = list[i];
        if (c->lingering) {
          list.erase_at(i);
          if (--c->claims == 0) drop_lingering(c, b);
        } else {
          ++i;
        }
      }
      list.push_back(r);
      ++r->claims;
      b.touched.insert(ip);
    }
  }

  // Removes `r` from the claimants of each of its IPs.
  void unclaim(Record* r, Batch& b) {
    for (const IpAddr& ip : r->ep->ips) {
      auto it = claims.find(ip);
      if (it == claims.end() || !it->second.erase(r)) continue;
      --r->claims;
      if (it->second.empty()) claims.erase(it);
      b.touched.insert(ip);
    }
  }

  // Takes a lingering record out of its set and retires its endpoint.
  void drop_lingering(Record* r, Batch& b) {
    RecordSet& set = lingering[index_of(r->source)];
    auto it = set.find(r);
    if (it == set.end()) return;
    auto node = set.extract(it);
    std::unique_ptr<Record> owned = std::move(node.value());
    unclaim(owned.get(), b);  // no-op for the address being claimed, clears any others
    b.retired.push_back(std::move(owned->ep));
    --lingering_count;
  }

  void drop_lingering_key(EndpointSource source, std::string_view key, Batch& b) {
    RecordSet& set = lingering[index_of(source)];
    auto it = set.find(key);
    if (it == set.end()) return;
    drop_lingering(it->get(), b);
    b.changed = true;
  }

  // Readers of stored flows (Hubble followers) read an endpoint's fields
  // while the pipeline thread takes and drops references to it for the
  // flows it stores. Made by make_shared, the counts share a cache line
  // with the endpoint's first fields, and each change of them evicts that
  // line from every reader. So the cache's reference counts in a block
  // allocated apart, which holds the caller's (same object, same address).
  static EndpointPtr counted_apart(EndpointPtr ep) {
    if (!ep) return ep;
    const Endpoint* raw = ep.get();
    return EndpointPtr(raw, [keep = std::move(ep)](const Endpoint*) noexcept {});
  }

  void upsert(EndpointPtr ep, EndpointSource source, std::string_view key, Batch& b) {
    ep = counted_apart(std::move(ep));
    drop_lingering_key(source, key, b);
    RecordSet& set = live[index_of(source)];
    auto it = set.find(key);
    Record* r;
    if (it != set.end()) {
      r = it->get();
      unclaim(r, b);
      // Same key, so the record keeps its place in the set.
      b.retired.push_back(std::exchange(r->ep, std::move(ep)));
    } else {
      auto owned = std::make_unique<Record>();
      r = owned.get();
      r->ep = std::move(ep);
      r->source = source;
      set.insert(std::move(owned));
      ++live_count;
    }
    r->seq = ++seq;
    claim(r, b);
    b.changed = true;
  }

  // Takes a live record out of its source's set.
  std::unique_ptr<Record> detach(RecordSet& set, RecordSet::iterator it) {
    auto node = set.extract(it);
    --live_count;
    return std::move(node.value());
  }

  // Ends a detached record: at once, or after `grace` on the IPs no live
  // endpoint claims (the others fall back now). Records detached together
  // are all marked lingering first, so none counts as a live claimant of
  // another's IP.
  void retire(std::unique_ptr<Record> owned, std::chrono::nanoseconds grace, Clock::time_point now, Batch& b) {
    Record* r = owned.get();
    b.changed = true;
    if (grace.count() > 0) {
      r->lingering = true;
      r->deadline = now + std::chrono::duration_cast<Clock::duration>(grace);
      for (const IpAddr& ip : r->ep->ips) {
        auto c = claims.find(ip);
        if (c == claims.end()) continue;
        ClaimList& list = c->second;
        if (!list.contains(r)) continue;
        bool other_live = false;
        for (size_t i = 0; i < list.size(); ++i) other_live |= !list[i]->lingering;
        if (other_live) {
          list.erase(r);
          --r->claims;
        }
        b.touched.insert(ip);
      }
      if (r->claims > 0) {
        next_deadline = std::min(next_deadline, r->deadline);
        lingering[index_of(r->source)].insert(std::move(owned));
        ++lingering_count;
        return;
      }
    }
    unclaim(r, b);
    b.retired.push_back(std::move(r->ep));
  }

  void remove(EndpointSource source, std::string_view key, std::chrono::nanoseconds grace, Clock::time_point now,
              Batch& b) {
    RecordSet& set = live[index_of(source)];
    auto it = set.find(key);
    if (it != set.end()) retire(detach(set, it), grace, now, b);
  }

  void expire(Clock::time_point now, Batch& b) {
    if (now < next_deadline) return;
    next_deadline = Clock::time_point::max();
    std::vector<Record*> due;
    for (RecordSet& set : lingering) {
      for (const auto& r : set) {
        if (r->deadline <= now) due.push_back(r.get());
        else next_deadline = std::min(next_deadline, r->deadline);
      }
    }
    for (Record* r : due) drop_lingering(r, b);
    if (!due.empty()) b.changed = true;
  }

  // Most recent live claimant, else most recent lingering one.
  const Record* winner(const IpAddr& ip) const {
    auto it = claims.find(ip);
    if (it == claims.end()) return nullptr;
    const ClaimList& list = it->second;
    const Record* best = nullptr;
    for (size_t i = 0; i < list.size(); ++i) {
      const Record* r = list[i];
      if (!best || (best->lingering && !r->lingering) || (best->lingering == r->lingering && r->seq > best->seq))
        best = r;
    }
    return best;
  }

  // The reader-visible changes of `b`: the new winner of each touched IP
  // whose current value differs. Only writers mutate maps, so reading the
  // active copy here is safe under write_mu.
  std::vector<Op> ops_for(const Batch& b) const {
    std::vector<Op> ops;
    ops.reserve(b.touched.size());
    const IpIndex& current = maps[left_right.load(std::memory_order_relaxed)];
    for (const IpAddr& ip : b.touched) {
      const Record* w = winner(ip);
      const Endpoint* ep = w ? w->ep.get() : nullptr;
      auto it = current.find(ip);
      const Endpoint* cur = it == current.end() ? nullptr : it->second.get();
      if (cur != ep) ops.push_back({ip, w ? w->ep : nullptr});
    }
    return ops;
  }

  // ---- publication (write_mu held, state_mu not) ----

  static void apply(IpIndex& m, const std::vector<Op>& ops) {
    size_t inserts = 0;
    for (const Op& op : ops) inserts += op.ep != nullptr;
    // Grow once for a big batch (e.g. an initial list) instead of doubling.
    if (inserts > 256) m.reserve(m.size() + inserts);
    for (const Op& op : ops) {
      if (op.ep) m.insert_or_assign(op.ip, op.ep);
      else m.erase(op.ip);
    }
  }

  void wait_for_readers(int version) const {
    for (unsigned spins = 0; !indicators[version].empty(); ++spins) {
      if (spins < 128) {
#if defined(__x86_64__) || defined(__i386__)
        __builtin_ia32_pause();
#endif
      } else if (spins < 2048) {
        std::this_thread::yield();
      } else {
        std::this_thread::sleep_for(std::chrono::microseconds(50));
      }
    }
  }

  void publish(const std::vector<Op>& ops) {
    if (ops.empty()) return;
    const int lr = left_right.load(std::memory_order_relaxed);
    apply(maps[lr ^ 1], ops);
    left_right.store(lr ^ 1, std::memory_order_seq_cst);
    // Readers that arrive from now on read the new copy. Flip the version
    // so that the old readers can be told apart, and wait for them.
    const int prev = version_index.load(std::memory_order_relaxed);
    const int next = prev ^ 1;
    wait_for_readers(next);
    version_index.store(next, std::memory_order_seq_cst);
    wait_for_readers(prev);
    apply(maps[lr], ops);
  }

  // Publishes what `b` changed. noexcept: once the state has changed, the
  // reader copies must follow, or they could point at retired endpoints;
  // running out of memory here ends the process rather than risk that.
  void finish(Batch& b) noexcept {
    if (b.changed) ++updates;
    std::vector<Op> ops = ops_for(b);
    state_mu.unlock();
    publish(ops);
  }

  // Runs `change` on the state and publishes it as one swap. If `change`
  // throws (out of memory), what it did so far is still published and the
  // exception then propagates.
  template <class F>
  void write(F&& change) {
    Batch b;
    std::exception_ptr failure;
    {
      std::lock_guard wl(write_mu);
      state_mu.lock();
      try {
        change(b);
      } catch (...) {
        failure = std::current_exception();
      }
      finish(b);  // unlocks state_mu
    }
    // b.retired is released here: no reader can reach those endpoints now.
    if (failure) std::rethrow_exception(failure);
  }
};

IpCache::IpCache() : impl_(std::make_unique<Impl>()) {}
IpCache::~IpCache() = default;

void IpCache::upsert(EndpointPtr ep, EndpointSource source) {
  if (!ep) return;
  const std::string key = ep->key();
  impl_->write([&](Batch& b) { impl_->upsert(std::move(ep), source, key, b); });
}

void IpCache::remove(std::string_view key, EndpointSource source, std::chrono::nanoseconds grace) {
  const auto now = Clock::now();
  impl_->write([&](Batch& b) {
    impl_->remove(source, key, grace, now, b);
    // A key already removed with grace: removing it again ends the grace
    // only when asked to (grace 0).
    if (grace.count() <= 0) impl_->drop_lingering_key(source, key, b);
  });
}

namespace {

bool same_content(const Endpoint& a, const Endpoint& b) {
  return a.kind == b.kind && a.namespace_ == b.namespace_ && a.name == b.name && a.labels == b.labels &&
         a.workloads == b.workloads && a.node_name == b.node_name && a.zone == b.zone &&
         a.service == b.service && a.ips == b.ips && a.observe == b.observe;
}

}  // namespace

void IpCache::replace_source(EndpointSource source, std::vector<EndpointPtr> eps,
                             std::chrono::nanoseconds grace) {
  const auto now = Clock::now();
  impl_->write([&](Batch& b) {
    Impl& im = *impl_;
    RecordSet& current = im.live[index_of(source)];
    // The last endpoint listed for a key wins; they apply in list order, so
    // among this source's endpoints claiming one IP the later one wins.
    std::vector<std::string> keys(eps.size());
    absl::flat_hash_map<std::string_view, size_t> wanted;
    wanted.reserve(eps.size());
    for (size_t i = 0; i < eps.size(); ++i) {
      if (!eps[i]) continue;
      keys[i] = eps[i]->key();
      wanted.insert_or_assign(std::string_view(keys[i]), i);
    }

    std::vector<Record*> gone_records;
    for (const auto& r : current)
      if (!wanted.contains(r->ep->key())) gone_records.push_back(r.get());
    std::vector<std::unique_ptr<Record>> gone;
    gone.reserve(gone_records.size());
    for (Record* r : gone_records) gone.push_back(im.detach(current, current.find(r)));
    if (grace.count() > 0)
      for (auto& r : gone) r->lingering = true;
    for (auto& r : gone) im.retire(std::move(r), grace, now, b);

    b.touched.reserve(b.touched.size() + wanted.size());
    im.claims.reserve(im.claims.size() + wanted.size());
    current.reserve(wanted.size());
    for (size_t i = 0; i < eps.size(); ++i) {
      if (!eps[i] || wanted[keys[i]] != i) continue;
      auto it = current.find(std::string_view(keys[i]));
      // Unchanged endpoints keep their record: no reader-visible change and
      // no new claim order, so reloading the same file flips nothing.
      if (it != current.end() && same_content(*(*it)->ep, *eps[i])) continue;
      im.upsert(std::move(eps[i]), source, keys[i], b);
    }
  });
}

void IpCache::expire(std::chrono::steady_clock::time_point now) {
  impl_->write([&](Batch& b) { impl_->expire(now, b); });
}

IpCache::ReadGuard IpCache::read() const noexcept {
  Impl& im = *impl_;
  const unsigned stripe = ReadIndicator::stripe_of_this_thread();
  const int vi = im.version_index.load(std::memory_order_seq_cst);
  im.indicators[vi].arrive(stripe);
  const int lr = im.left_right.load(std::memory_order_seq_cst);
  return ReadGuard(this, vi | static_cast<int>(stripe << 1), &im.maps[lr]);
}

IpCache::ReadGuard::ReadGuard(ReadGuard&& o) noexcept
    : cache_(std::exchange(o.cache_, nullptr)), version_(o.version_), index_(std::exchange(o.index_, nullptr)) {}

IpCache::ReadGuard::~ReadGuard() {
  if (cache_) cache_->impl_->indicators[version_ & 1].depart(static_cast<unsigned>(version_) >> 1);
}

const Endpoint* IpCache::ReadGuard::lookup(const IpAddr& ip) const noexcept {
  const IpIndex& m = *static_cast<const IpIndex*>(index_);
  auto it = m.find(ip);
  return it == m.end() ? nullptr : it->second.get();
}

const EndpointPtr* IpCache::ReadGuard::lookup_owned(const IpAddr& ip) const noexcept {
  const IpIndex& m = *static_cast<const IpIndex*>(index_);
  auto it = m.find(ip);
  return it == m.end() ? nullptr : &it->second;
}

void IpCache::ReadGuard::prefetch(const IpAddr& ip) const noexcept {
  static_cast<const IpIndex*>(index_)->prefetch(ip);
}

EndpointPtr IpCache::find(const IpAddr& ip) const {
  std::lock_guard l(impl_->state_mu);
  const Record* w = impl_->winner(ip);
  return w ? w->ep : nullptr;
}

EndpointPtr IpCache::find_key(std::string_view key) const {
  std::lock_guard l(impl_->state_mu);
  const Record* best = nullptr;
  for (const RecordSet& set : impl_->live) {
    auto it = set.find(key);
    if (it != set.end() && (!best || (*it)->seq > best->seq)) best = it->get();
  }
  return best ? best->ep : nullptr;
}

IpCacheStats IpCache::stats() const {
  std::lock_guard l(impl_->state_mu);
  IpCacheStats s;
  s.endpoints = impl_->live_count;
  s.ips = impl_->claims.size();
  s.lingering = impl_->lingering_count;
  s.updates = impl_->updates;
  return s;
}

void IpCache::for_each(const std::function<void(const EndpointPtr&)>& fn) const {
  std::vector<EndpointPtr> all;
  {
    std::lock_guard l(impl_->state_mu);
    all.reserve(impl_->live_count);
    for (const RecordSet& set : impl_->live)
      for (const auto& rec : set) all.push_back(rec->ep);
  }
  for (const EndpointPtr& ep : all) fn(ep);
}

}  // namespace retina
