// The intern pools behind retina::Interned. An entry's count reaches zero
// only under the pool's mutex, and interning takes a reference only under
// it, so a lookup never revives an entry that is being freed; references
// above one are dropped without the lock.
#include "retina/interned.hpp"

#include <mutex>

#include <absl/container/flat_hash_set.h>
#include <xxhash.h>

#include "retina/endpoint.hpp"

namespace retina::detail {
namespace {

size_t hash_value(const std::string& s) { return XXH3_64bits(s.data(), s.size()); }

// Chained with the running hash as seed; lengths keep ["ab","c"] and ["a","bc"] apart.
uint64_t chain(uint64_t h, const std::string& s) {
  const uint64_t n = s.size();
  h = XXH3_64bits_withSeed(&n, sizeof n, h);
  return XXH3_64bits_withSeed(s.data(), s.size(), h);
}

size_t hash_value(const std::vector<std::string>& v) {
  uint64_t h = 0;
  for (const auto& s : v) h = chain(h, s);
  return h;
}

size_t hash_value(const std::vector<Workload>& v) {
  uint64_t h = 0;
  for (const auto& w : v) h = chain(chain(h, w.kind), w.name);
  return h;
}

template <class T>
struct Probe {
  size_t hash;
  const T* value;
};

template <class T>
struct RepHash {
  using is_transparent = void;
  size_t operator()(const InternRep<T>* r) const noexcept { return r->hash; }
  size_t operator()(const Probe<T>& p) const noexcept { return p.hash; }
};

template <class T>
struct RepEq {
  using is_transparent = void;
  bool operator()(const InternRep<T>* a, const InternRep<T>* b) const noexcept { return a == b; }
  bool operator()(const InternRep<T>* a, const Probe<T>& p) const noexcept {
    return a->hash == p.hash && a->value == *p.value;
  }
  bool operator()(const Probe<T>& p, const InternRep<T>* a) const noexcept { return (*this)(a, p); }
};

template <class T>
struct State {
  std::mutex mu;
  absl::flat_hash_set<InternRep<T>*, RepHash<T>, RepEq<T>> set;
};

// Never destroyed: handles in other static objects may outlive any order.
template <class T>
State<T>& state() {
  static auto* s = new State<T>();
  return *s;
}

}  // namespace

template <class T>
const InternRep<T>* InternPool<T>::empty() noexcept {
  static const InternRep<T>* e = [] {
    auto* r = new InternRep<T>();
    r->immortal = true;
    return r;
  }();
  return e;
}

template <class T>
const InternRep<T>* InternPool<T>::intern(T&& value) {
  if (value.empty()) return empty();
  const size_t h = hash_value(value);
  State<T>& s = state<T>();
  std::lock_guard l(s.mu);
  if (auto it = s.set.find(Probe<T>{h, &value}); it != s.set.end()) {
    (*it)->refs.fetch_add(1, std::memory_order_relaxed);
    return *it;
  }
  auto* r = new InternRep<T>();
  r->hash = h;
  r->value = std::move(value);
  s.set.insert(r);
  return r;
}

template <class T>
void InternPool<T>::release(const InternRep<T>* rep) noexcept {
  if (rep->immortal) return;
  auto* r = const_cast<InternRep<T>*>(rep);
  uint32_t cur = r->refs.load(std::memory_order_relaxed);
  while (cur > 1) {
    if (r->refs.compare_exchange_weak(cur, cur - 1, std::memory_order_acq_rel, std::memory_order_relaxed)) return;
  }
  State<T>& s = state<T>();
  std::lock_guard l(s.mu);
  if (r->refs.fetch_sub(1, std::memory_order_acq_rel) == 1) {
    s.set.erase(r);
    delete r;
  }
}

template <class T>
size_t InternPool<T>::size() noexcept {
  State<T>& s = state<T>();
  std::lock_guard l(s.mu);
  return s.set.size();
}

template struct InternPool<std::string>;
template struct InternPool<std::vector<std::string>>;
template struct InternPool<std::vector<Workload>>;

}  // namespace retina::detail
