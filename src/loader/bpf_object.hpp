// A move-only owner of a libbpf skeleton (bpftool gen skeleton). The
// skeleton's functions are passed in, so any <name>.skel.h fits:
//
//   auto obj = BpfObject<packetparser>::open("packetparser", packetparser__open_opts,
//                                            packetparser__load, packetparser__destroy);
//   obj->get()->rodata->cfg_x = 1;   // configure between open and load
//   obj->load();
#pragma once

#include <bpf/libbpf.h>

#include <cerrno>
#include <string>
#include <utility>

#include <fmt/format.h>

#include "loader/libbpf_log.hpp"
#include "retina/error.hpp"

namespace retina::loader {

template <class Skel>
class BpfObject {
 public:
  using OpenFn = Skel* (*)(const bpf_object_open_opts*);
  using LoadFn = int (*)(Skel*);
  using DestroyFn = void (*)(Skel*);

  static Result<BpfObject> open(std::string name, OpenFn open_fn, LoadFn load_fn, DestroyFn destroy_fn) {
    install_libbpf_logging();
    errno = 0;
    Skel* s = open_fn(nullptr);
    if (!s) return unexpected(Error::system(fmt::format("{}__open_opts", name), errno ? errno : EINVAL));
    return BpfObject(std::move(name), s, load_fn, destroy_fn);
  }

  BpfObject() = default;
  BpfObject(const BpfObject&) = delete;
  BpfObject& operator=(const BpfObject&) = delete;
  BpfObject(BpfObject&& o) noexcept
      : name_(std::move(o.name_)), skel_(std::exchange(o.skel_, nullptr)), load_(o.load_), destroy_(o.destroy_),
        loaded_(o.loaded_) {}
  BpfObject& operator=(BpfObject&& o) noexcept {
    if (this != &o) {
      reset();
      name_ = std::move(o.name_);
      skel_ = std::exchange(o.skel_, nullptr);
      load_ = o.load_;
      destroy_ = o.destroy_;
      loaded_ = o.loaded_;
    }
    return *this;
  }
  ~BpfObject() { reset(); }

  // Verifies and loads every program whose autoload is on, creates maps.
  Status load() {
    if (!skel_) return unexpected(Error::internal(fmt::format("{}: load on an empty object", name_)));
    int err = load_(skel_);
    if (err) return unexpected(Error::system(fmt::format("{}__load", name_), err));
    loaded_ = true;
    return ok();
  }

  Skel* get() const { return skel_; }
  Skel* operator->() const { return skel_; }
  explicit operator bool() const { return skel_ != nullptr; }
  bool loaded() const { return loaded_; }
  const std::string& name() const { return name_; }

  void reset() noexcept {
    if (skel_ && destroy_) destroy_(skel_);
    skel_ = nullptr;
    loaded_ = false;
  }

 private:
  BpfObject(std::string name, Skel* s, LoadFn load_fn, DestroyFn destroy_fn)
      : name_(std::move(name)), skel_(s), load_(load_fn), destroy_(destroy_fn) {}

  std::string name_;
  Skel* skel_ = nullptr;
  LoadFn load_ = nullptr;
  DestroyFn destroy_ = nullptr;
  bool loaded_ = false;
};

}  // namespace retina::loader
