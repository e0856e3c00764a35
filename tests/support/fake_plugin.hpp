// A scriptable plugin with an in-memory event source, for engine tests:
// records pushed into the source reach the engine's reader like ring-buffer
// records do, and every lifecycle call is logged.
#pragma once

#include <sys/eventfd.h>
#include <unistd.h>

#include <atomic>
#include <cstddef>
#include <cstring>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

#include "retina/features.hpp"
#include "retina/plugin.hpp"

namespace retina::test {

// The bytes of an ABI struct, as a ring buffer would hand them over.
template <class T>
std::vector<std::byte> record_bytes(const T& ev) {
  std::vector<std::byte> out(sizeof ev);
  std::memcpy(out.data(), &ev, sizeof ev);
  return out;
}

// An in-memory ring. With `pollable` it signals pending records through an
// eventfd, as a BPF ring buffer does; otherwise fd() is -1 and the engine
// drains it on its idle timer.
class FakeSource final : public EventSource {
 public:
  FakeSource(std::string name, bool pollable) : name_(std::move(name)) {
    if (pollable) efd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  }
  ~FakeSource() override {
    if (efd_ >= 0) ::close(efd_);
  }
  std::string_view name() const override { return name_; }
  int fd() const override { return efd_; }
  size_t drain(RecordFn fn, void* user, size_t max) override {
    std::vector<std::vector<std::byte>> batch;
    {
      std::lock_guard lock(mu_);
      while (!q_.empty() && batch.size() < max) {
        batch.push_back(std::move(q_.front()));
        q_.pop_front();
      }
      if (q_.empty() && efd_ >= 0) {
        uint64_t v;
        (void)!::read(efd_, &v, sizeof v);
      }
    }
    for (const auto& r : batch) fn(user, r);
    drained_ += batch.size();
    return batch.size();
  }
  void push(std::vector<std::byte> rec) {
    {
      std::lock_guard lock(mu_);
      q_.push_back(std::move(rec));
    }
    if (efd_ >= 0) {
      const uint64_t one = 1;
      (void)!::write(efd_, &one, sizeof one);
    }
  }
  uint64_t drained() const { return drained_.load(); }

 private:
  std::string name_;
  int efd_ = -1;
  std::mutex mu_;
  std::deque<std::vector<std::byte>> q_;
  std::atomic<uint64_t> drained_{0};
};

// Lifecycle calls in order: "init:a", "start:a", "stop:a", ...
class CallLog {
 public:
  void add(std::string s) {
    std::lock_guard lock(mu_);
    log_.push_back(std::move(s));
  }
  std::vector<std::string> get() const {
    std::lock_guard lock(mu_);
    return log_;
  }

 private:
  mutable std::mutex mu_;
  std::vector<std::string> log_;
};

class FakePlugin final : public Plugin {
 public:
  struct Behaviour {
    std::function<Status()> init = [] { return ok(); };
    std::function<Status()> start = [] { return ok(); };
    std::function<Status()> reconcile = [] { return ok(); };
    bool pollable = true;
    // Pushed into the source while stopping, like a final conntrack flush.
    std::function<std::vector<std::byte>()> record_on_stop;
    size_t records_on_stop = 0;
  };
  FakePlugin(std::string name, CallLog* calls, Behaviour b)
      : name_(std::move(name)), calls_(calls), b_(std::move(b)), source_(name_, b_.pollable) {}
  FakePlugin(std::string name, CallLog* calls = nullptr) : FakePlugin(std::move(name), calls, Behaviour()) {}

  std::string_view name() const override { return name_; }
  Status init(PluginContext& ctx) override {
    note("init");
    ctx_complete = ctx.config && ctx.registry && ctx.pipeline && ctx.cache && ctx.features && ctx.request_interfaces;
    return b_.init();
  }
  Status start() override {
    note("start");
    return b_.start();
  }
  void stop() noexcept override {
    note("stop");
    for (size_t i = 0; i < b_.records_on_stop; ++i) source_.push(b_.record_on_stop());
  }
  Status reconcile() override {
    ++reconciles;
    return b_.reconcile();
  }
  std::vector<EventSource*> event_sources() override { return {&source_}; }

  FakeSource& source() { return source_; }
  std::atomic<int> reconciles{0};
  bool ctx_complete = false;  // init() got every pointer and the interface hook

 private:
  void note(const char* what) {
    if (calls_) calls_->add(std::string(what) + ":" + name_);
  }
  std::string name_;
  CallLog* calls_;
  Behaviour b_;
  FakeSource source_;
};

// Reports every kernel feature present.
class AllFeatures final : public FeatureDetector {
 public:
  Status probe(KernelFeature) override { return ok(); }
};

}  // namespace retina::test
