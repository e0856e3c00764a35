// Writer-side bookkeeping of the IpCache: who contributed which endpoint
// (records, found by key) and who claims which address (claimant lists).
// Readers never see these. Kept compact: at 100k pods every byte per
// record or per address is 100 kB.
#pragma once

#include <absl/container/flat_hash_set.h>

#include <chrono>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string_view>
#include <utility>
#include <vector>

#include "retina/endpoint.hpp"
#include "retina/ip_cache.hpp"

#ifndef XXH_INLINE_ALL
#define XXH_INLINE_ALL
#endif
#include <xxhash.h>

namespace retina::cache {

// One endpoint contributed by one source, live or lingering after removal.
// Its key is the endpoint's own key(); it is not stored a second time.
struct Record {
  EndpointPtr ep;
  uint64_t seq = 0;  // write order; the most recent live claimant of an IP wins
  std::chrono::steady_clock::time_point deadline{};  // end of the grace, when lingering
  uint32_t claims = 0;  // addresses whose claimant list holds this record
  EndpointSource source = EndpointSource::kApi;
  bool lingering = false;
};

// Hash of "<kind>/<namespace>/<name>" computed from the parts, equal to the
// hash of the joined string, so records are found by a key string without
// storing one.
inline size_t key_hash(std::string_view key) noexcept { return XXH3_64bits(key.data(), key.size()); }

inline size_t key_hash(const Endpoint& e) noexcept {
  const std::string_view kind = to_string(e.kind);
  const size_t len = kind.size() + e.namespace_.size() + e.name.size() + 2;
  char buf[256];
  if (len <= sizeof buf) {
    char* p = buf;
    std::memcpy(p, kind.data(), kind.size());
    p += kind.size();
    *p++ = '/';
    std::memcpy(p, e.namespace_.data(), e.namespace_.size());
    p += e.namespace_.size();
    *p++ = '/';
    std::memcpy(p, e.name.data(), e.name.size());
    return XXH3_64bits(buf, len);
  }
  XXH3_state_t st;
  XXH3_64bits_reset(&st);
  XXH3_64bits_update(&st, kind.data(), kind.size());
  XXH3_64bits_update(&st, "/", 1);
  XXH3_64bits_update(&st, e.namespace_.data(), e.namespace_.size());
  XXH3_64bits_update(&st, "/", 1);
  XXH3_64bits_update(&st, e.name.data(), e.name.size());
  return XXH3_64bits_digest(&st);
}

inline bool key_matches(std::string_view key, const Endpoint& e) noexcept {
  const std::string_view kind = to_string(e.kind);
  const std::string_view ns = e.namespace_, name = e.name;
  if (key.size() != kind.size() + ns.size() + name.size() + 2) return false;
  return key.substr(0, kind.size()) == kind && key[kind.size()] == '/' &&
         key.substr(kind.size() + 1, ns.size()) == ns && key[kind.size() + 1 + ns.size()] == '/' &&
         key.substr(kind.size() + ns.size() + 2) == name;
}

// Set of records looked up by key string or by record address.
struct RecordHash {
  using is_transparent = void;
  size_t operator()(std::string_view key) const noexcept { return key_hash(key); }
  size_t operator()(const Record* r) const noexcept { return key_hash(*r->ep); }
  size_t operator()(const std::unique_ptr<Record>& r) const noexcept { return key_hash(*r->ep); }
};

struct RecordEq {
  using is_transparent = void;
  bool operator()(const std::unique_ptr<Record>& a, const std::unique_ptr<Record>& b) const {
    return a == b || key_matches(a->ep->key(), *b->ep);  // only on insert, after a hash match
  }
  bool operator()(const std::unique_ptr<Record>& a, std::string_view key) const noexcept {
    return key_matches(key, *a->ep);
  }
  bool operator()(std::string_view key, const std::unique_ptr<Record>& a) const noexcept {
    return key_matches(key, *a->ep);
  }
  bool operator()(const std::unique_ptr<Record>& a, const Record* r) const noexcept { return a.get() == r; }
  bool operator()(const Record* r, const std::unique_ptr<Record>& a) const noexcept { return a.get() == r; }
};

// A record's ep must stay set while it is in a RecordSet (hashing reads it).
using RecordSet = absl::flat_hash_set<std::unique_ptr<Record>, RecordHash, RecordEq>;

// The records claiming one address, in one word: nearly every address has
// a single claimant, stored inline; a second one (sources overlapping, an
// address reused, a removed endpoint lingering) moves the list to the heap.
class ClaimList {
 public:
  ClaimList() = default;
  ClaimList(ClaimList&& o) noexcept : bits_(std::exchange(o.bits_, 0)) {}
  ClaimList& operator=(ClaimList&& o) noexcept {
    if (this != &o) {
      reset();
      bits_ = std::exchange(o.bits_, 0);
    }
    return *this;
  }
  ClaimList(const ClaimList&) = delete;
  ClaimList& operator=(const ClaimList&) = delete;
  ~ClaimList() { reset(); }

  bool empty() const noexcept { return bits_ == 0; }
  size_t size() const noexcept { return is_many() ? many()->size() : (bits_ != 0); }
  Record* operator[](size_t i) const noexcept {
    return is_many() ? (*many())[i] : reinterpret_cast<Record*>(bits_);
  }
  bool contains(const Record* r) const noexcept {
    for (size_t i = 0, n = size(); i < n; ++i)
      if ((*this)[i] == r) return true;
    return false;
  }

  void push_back(Record* r) {
    if (bits_ == 0) {
      bits_ = reinterpret_cast<uintptr_t>(r);
    } else if (!is_many()) {
      auto* v = new std::vector<Record*>{reinterpret_cast<Record*>(bits_), r};
      bits_ = reinterpret_cast<uintptr_t>(v) | kMany;
    } else {
      many()->push_back(r);
    }
  }

  void erase_at(size_t i) {
    if (!is_many()) {
      bits_ = 0;
      return;
    }
    std::vector<Record*>* v = many();
    v->erase(v->begin() + static_cast<std::ptrdiff_t>(i));
    if (v->size() == 1) {
      Record* last = v->front();
      delete v;
      bits_ = reinterpret_cast<uintptr_t>(last);
    }
  }

  bool erase(const Record* r) {
    for (size_t i = 0, n = size(); i < n; ++i) {
      if ((*this)[i] == r) {
        erase_at(i);
        return true;
      }
    }
    return false;
  }

 private:
  static constexpr uintptr_t kMany = 1;  // Record and vector pointers are 8-aligned
  bool is_many() const noexcept { return bits_ & kMany; }
  std::vector<Record*>* many() const noexcept { return reinterpret_cast<std::vector<Record*>*>(bits_ & ~kMany); }
  void reset() noexcept {
    if (is_many()) delete many();
    bits_ = 0;
  }
  uintptr_t bits_ = 0;
};

}  // namespace retina::cache
