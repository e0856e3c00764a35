// Series storage of the advanced aggregator.
//
// A series is one heap block: the values (atomics, written by the feeding
// thread only, read by scrapes), the time of its last update, and its key,
// the label values each prefixed with a 16-bit length. A table maps keys to
// series for the feeding thread and lists the series scrapes may see.
//
// Ownership and threads: the feeding thread owns `index`, `pending`,
// `touched` times and every structural change. `published` is changed only
// under the aggregator's exclusive lock and read by scrapes under its shared
// lock; a series leaves `published` (under that lock) before it is freed.
#pragma once

#include <atomic>
#include <cstdint>
#include <cstring>
#include <new>
#include <string_view>
#include <vector>

#include <absl/container/flat_hash_map.h>
#include <xxhash.h>

#include "metrics/adv_plan.hpp"

namespace retina::metrics::adv {

struct Series {
  std::atomic<uint64_t> value[2];
  int64_t touched_ns = 0;      // steady clock of the last update; feeding thread only
  uint32_t published_at = 0;   // index in Table::published, when published
  uint32_t key_len = 0;
  bool published = false;

  std::string_view key() const { return {reinterpret_cast<const char*>(this + 1), key_len}; }

  static Series* make(std::string_view key, int64_t now_ns) {
    void* mem = ::operator new(sizeof(Series) + key.size());
    auto* s = new (mem) Series();
    s->value[0].store(0, std::memory_order_relaxed);
    s->value[1].store(0, std::memory_order_relaxed);
    s->touched_ns = now_ns;
    s->key_len = static_cast<uint32_t>(key.size());
    std::memcpy(reinterpret_cast<char*>(mem) + sizeof(Series), key.data(), key.size());
    return s;
  }
  static void destroy(Series* s) noexcept {
    s->~Series();
    ::operator delete(s);
  }

  // Only the feeding thread writes: a plain read-modify-write, published relaxed.
  void add(int slot, uint64_t n) noexcept {
    auto& v = value[slot];
    v.store(v.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
};

struct KeyHash {
  size_t operator()(std::string_view k) const noexcept { return XXH3_64bits(k.data(), k.size()); }
};

struct Table {
  explicit Table(TableSpec s) : spec(std::move(s)) {}
  ~Table() {
    for (auto& [k, s] : index) Series::destroy(s);
    if (overflow) Series::destroy(overflow);
  }
  Table(const Table&) = delete;
  Table& operator=(const Table&) = delete;

  TableSpec spec;
  absl::flat_hash_map<std::string_view, Series*, KeyHash> index;  // keys point into the series
  Series* overflow = nullptr;      // all labels "overflow"; not in `index`, not counted against the cap
  std::vector<Series*> pending;    // created, not yet published
  std::vector<Series*> published;  // what scrapes see

  size_t live() const { return index.size() + (overflow ? 1 : 0); }
};

}  // namespace retina::metrics::adv
