// Interned immutable values: one shared, reference-counted copy per distinct
// value in a process-wide pool, held through an 8-byte handle. Endpoints
// repeat the same namespace, node, zone, service, workload and label set
// across many pods; interning keeps one copy of each (the Kubernetes
// watcher's 100k-pod cache halves in size).
//
// Reading is a pointer dereference: no lock, no atomic. Copying a handle is
// an atomic increment; interning a value (constructing or assigning a handle
// from a T) takes the pool's mutex. Equal values intern to the same entry,
// so comparing two handles compares pointers. The empty value needs no
// entry and costs nothing.
//
// Handles read like the value they hold (const T& conversion, and for
// strings a std::string_view conversion and the usual read-only members),
// so code written against std::string and std::vector fields keeps working.
#pragma once

#include <atomic>
#include <compare>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace retina {

namespace detail {

template <class T>
struct InternRep {
  mutable std::atomic<uint32_t> refs{1};
  bool immortal = false;  // the shared empty value
  size_t hash = 0;
  T value;
};

// Defined (and instantiated for the types Endpoint uses) in core/interned.cpp.
template <class T>
struct InternPool {
  static const InternRep<T>* intern(T&& value);
  static void release(const InternRep<T>* rep) noexcept;
  static const InternRep<T>* empty() noexcept;
  // Distinct values held (tests, memory reports).
  static size_t size() noexcept;
};

}  // namespace detail

template <class T>
class Interned {
 public:
  using value_type = T;

  Interned() noexcept : rep_(Pool::empty()) {}
  Interned(T value) : rep_(Pool::intern(std::move(value))) {}  // NOLINT(google-explicit-constructor)
  Interned(std::initializer_list<typename T::value_type> il) : Interned(T(il)) {}
  Interned(const Interned& o) noexcept : rep_(o.rep_) { retain(); }
  Interned(Interned&& o) noexcept : rep_(std::exchange(o.rep_, Pool::empty())) {}
  ~Interned() { Pool::release(rep_); }

  Interned& operator=(const Interned& o) noexcept {
    if (rep_ != o.rep_) {
      o.retain();
      Pool::release(std::exchange(rep_, o.rep_));
    }
    return *this;
  }
  Interned& operator=(Interned&& o) noexcept {
    if (this != &o) Pool::release(std::exchange(rep_, std::exchange(o.rep_, Pool::empty())));
    return *this;
  }
  Interned& operator=(T value) {
    Pool::release(std::exchange(rep_, Pool::intern(std::move(value))));
    return *this;
  }
  // `labels = {"a=b"}`: preferred over the other assignments for braced lists.
  Interned& operator=(std::initializer_list<typename T::value_type> il) { return *this = T(il); }

  const T& get() const noexcept { return rep_->value; }
  operator const T&() const noexcept { return rep_->value; }  // NOLINT(google-explicit-constructor)
  const T* operator->() const noexcept { return &rep_->value; }

  bool empty() const noexcept { return rep_->value.empty(); }
  size_t size() const noexcept { return rep_->value.size(); }
  auto begin() const noexcept { return rep_->value.begin(); }
  auto end() const noexcept { return rep_->value.end(); }
  auto data() const noexcept { return rep_->value.data(); }
  decltype(auto) operator[](size_t i) const noexcept { return rep_->value[i]; }
  decltype(auto) front() const noexcept { return rep_->value.front(); }
  decltype(auto) back() const noexcept { return rep_->value.back(); }

  // Same pool, so equal values share an entry: a pointer comparison.
  friend bool operator==(const Interned& a, const Interned& b) noexcept { return a.rep_ == b.rep_; }
  friend bool operator==(const Interned& a, const T& b) { return a.rep_->value == b; }

 private:
  using Pool = detail::InternPool<T>;
  void retain() const noexcept {
    if (!rep_->immortal) rep_->refs.fetch_add(1, std::memory_order_relaxed);
  }
  const detail::InternRep<T>* rep_;
};

// An interned string, read as a std::string or a std::string_view.
class IString {
 public:
  IString() noexcept = default;
  IString(std::string s) : v_(std::move(s)) {}               // NOLINT(google-explicit-constructor)
  IString(std::string_view s) : v_(std::string(s)) {}        // NOLINT(google-explicit-constructor)
  IString(const char* s) : v_(std::string(s ? s : "")) {}    // NOLINT(google-explicit-constructor)

  IString& operator=(std::string s) {
    v_ = std::move(s);
    return *this;
  }
  IString& operator=(std::string_view s) {
    v_ = std::string(s);
    return *this;
  }
  IString& operator=(const char* s) {
    v_ = std::string(s ? s : "");
    return *this;
  }

  const std::string& str() const noexcept { return v_.get(); }
  std::string_view view() const noexcept { return v_.get(); }
  operator const std::string&() const noexcept { return v_.get(); }  // NOLINT(google-explicit-constructor)
  operator std::string_view() const noexcept { return v_.get(); }    // NOLINT(google-explicit-constructor)

  bool empty() const noexcept { return v_.empty(); }
  size_t size() const noexcept { return v_.size(); }
  size_t length() const noexcept { return v_.size(); }
  const char* data() const noexcept { return v_.get().data(); }
  const char* c_str() const noexcept { return v_.get().c_str(); }
  auto begin() const noexcept { return v_.begin(); }
  auto end() const noexcept { return v_.end(); }
  char operator[](size_t i) const noexcept { return v_.get()[i]; }
  bool starts_with(std::string_view p) const noexcept { return view().starts_with(p); }
  bool ends_with(std::string_view p) const noexcept { return view().ends_with(p); }
  size_t find(std::string_view s, size_t pos = 0) const noexcept { return view().find(s, pos); }
  size_t find(char c, size_t pos = 0) const noexcept { return view().find(c, pos); }
  std::string_view substr(size_t pos, size_t n = std::string_view::npos) const { return view().substr(pos, n); }

  friend bool operator==(const IString& a, const IString& b) noexcept { return a.v_ == b.v_; }
  friend bool operator==(const IString& a, std::string_view b) noexcept { return a.view() == b; }
  friend bool operator==(const IString& a, const std::string& b) noexcept { return a.view() == b; }
  friend bool operator==(const IString& a, const char* b) noexcept { return a.view() == std::string_view(b ? b : ""); }
  friend std::strong_ordering operator<=>(const IString& a, const IString& b) noexcept {
    return a.view() <=> b.view();
  }
  friend std::strong_ordering operator<=>(const IString& a, std::string_view b) noexcept { return a.view() <=> b; }

  friend std::string operator+(const IString& a, std::string_view b) { return std::string(a.view()).append(b); }
  friend std::string operator+(std::string_view a, const IString& b) { return std::string(a).append(b.view()); }
  friend std::string operator+(const IString& a, const char* b) { return std::string(a.view()).append(b); }
  friend std::string operator+(const char* a, const IString& b) { return std::string(a).append(b.view()); }
  friend std::string operator+(const IString& a, char b) { return std::string(a.view()) + b; }

 private:
  Interned<std::string> v_;
};

inline std::string& operator+=(std::string& s, const IString& v) { return s.append(v.view()); }

}  // namespace retina
