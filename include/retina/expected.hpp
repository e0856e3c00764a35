// retina::expected / retina::unexpected.
//
// With a standard library that has std::expected (g++ 12, -std=c++23) these
// are std::expected and std::unexpected. clang 14 cannot compile
// libstdc++'s <expected> (it lacks P0848 conditionally trivial destructors),
// yet the libFuzzer builds need clang; for that case a minimal equivalent
// with the same interface subset is provided below. Code inside retina
// writes `expected` and `unexpected` unqualified, never std::.
#pragma once

#include <version>

#if defined(__cpp_lib_expected)
#include <expected>
namespace retina {
using std::expected;
using std::unexpected;
}  // namespace retina
#else
#include <new>
#include <type_traits>
#include <utility>

namespace retina {

template <class E>
class unexpected {
 public:
  constexpr explicit unexpected(E e) : e_(std::move(e)) {}
  constexpr const E& error() const& noexcept { return e_; }
  constexpr E& error() & noexcept { return e_; }
  constexpr E&& error() && noexcept { return std::move(e_); }

 private:
  E e_;
};
template <class E>
unexpected(E) -> unexpected<E>;

template <class T, class E>
class expected {
 public:
  using value_type = T;
  using error_type = E;

  expected() requires std::is_default_constructible_v<T> : has_(true) { new (&v_) T(); }
  template <class U = T>
    requires(std::is_constructible_v<T, U &&> && !std::is_same_v<std::remove_cvref_t<U>, expected> &&
             !std::is_same_v<std::remove_cvref_t<U>, unexpected<E>>)
  expected(U&& v) : has_(true) {  // NOLINT(google-explicit-constructor)
    new (&v_) T(std::forward<U>(v));
  }
  template <class G>
  expected(const unexpected<G>& u) : has_(false) {  // NOLINT
    new (&e_) E(u.error());
  }
  template <class G>
  expected(unexpected<G>&& u) : has_(false) {  // NOLINT
    new (&e_) E(std::move(u.error()));
  }
  expected(const expected& o) : has_(o.has_) {
    if (has_) new (&v_) T(o.v_);
    else new (&e_) E(o.e_);
  }
  expected(expected&& o) noexcept : has_(o.has_) {
    if (has_) new (&v_) T(std::move(o.v_));
    else new (&e_) E(std::move(o.e_));
  }
  expected& operator=(const expected& o) {
    if (this != &o) {
      destroy();
      has_ = o.has_;
      if (has_) new (&v_) T(o.v_);
      else new (&e_) E(o.e_);
    }
    return *this;
  }
  expected& operator=(expected&& o) noexcept {
    if (this != &o) {
      destroy();
      has_ = o.has_;
      if (has_) new (&v_) T(std::move(o.v_));
      else new (&e_) E(std::move(o.e_));
    }
    return *this;
  }
  ~expected() { destroy(); }

  constexpr bool has_value() const noexcept { return has_; }
  constexpr explicit operator bool() const noexcept { return has_; }
  T& value() & { return v_; }
  const T& value() const& { return v_; }
  T&& value() && { return std::move(v_); }
  T& operator*() & { return v_; }
  const T& operator*() const& { return v_; }
  T&& operator*() && { return std::move(v_); }
  T* operator->() { return &v_; }
  const T* operator->() const { return &v_; }
  E& error() & { return e_; }
  const E& error() const& { return e_; }
  E&& error() && { return std::move(e_); }
  template <class U>
  T value_or(U&& d) const& {
    return has_ ? v_ : static_cast<T>(std::forward<U>(d));
  }

 private:
  void destroy() {
    if (has_) v_.~T();
    else e_.~E();
  }
  bool has_;
  union {
    T v_;
    E e_;
  };
};

template <class E>
class expected<void, E> {
 public:
  using value_type = void;
  using error_type = E;

  expected() : has_(true) {}
  template <class G>
  expected(const unexpected<G>& u) : has_(false) {  // NOLINT
    new (&e_) E(u.error());
  }
  template <class G>
  expected(unexpected<G>&& u) : has_(false) {  // NOLINT
    new (&e_) E(std::move(u.error()));
  }
  expected(const expected& o) : has_(o.has_) {
    if (!has_) new (&e_) E(o.e_);
  }
  expected(expected&& o) noexcept : has_(o.has_) {
    if (!has_) new (&e_) E(std::move(o.e_));
  }
  expected& operator=(const expected& o) {
    if (this != &o) {
      destroy();
      has_ = o.has_;
      if (!has_) new (&e_) E(o.e_);
    }
    return *this;
  }
  expected& operator=(expected&& o) noexcept {
    if (this != &o) {
      destroy();
      has_ = o.has_;
      if (!has_) new (&e_) E(std::move(o.e_));
    }
    return *this;
  }
  ~expected() { destroy(); }

  constexpr bool has_value() const noexcept { return has_; }
  constexpr explicit operator bool() const noexcept { return has_; }
  void value() const {}
  void operator*() const noexcept {}
  E& error() & { return e_; }
  const E& error() const& { return e_; }
  E&& error() && { return std::move(e_); }

 private:
  void destroy() {
    if (!has_) e_.~E();
  }
  bool has_;
  union {
    E e_;
  };
};

}  // namespace retina
#endif
