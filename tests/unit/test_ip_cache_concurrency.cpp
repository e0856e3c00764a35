// Readers race a writer that churns the cache. Every endpoint a reader gets
// must be alive (ASan/TSan builds check that) and must claim the address it
// was found under. Runs for a fixed amount of work, not a duration.
#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "retina/ip_cache.hpp"

using namespace retina;
using namespace std::chrono_literals;

namespace {

constexpr uint32_t kPods = 512;
constexpr uint32_t kAddrs = 1024;  // half of them unused at any time: misses too

IpAddr addr(uint32_t i) {
  if (i % 3 == 0) {
    uint8_t b[16] = {0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, static_cast<uint8_t>(i >> 8),
                     static_cast<uint8_t>(i)};
    return IpAddr::from_v6_bytes(b);
  }
  return IpAddr::from_v4(0x0a000000u + i);
}

EndpointPtr make_pod(uint32_t id, std::vector<uint32_t> addrs, uint32_t gen) {
  auto ep = std::make_shared<Endpoint>();
  ep->kind = EndpointKind::kPod;
  ep->namespace_ = "ns-" + std::to_string(id % 7);
  ep->name = "pod-" + std::to_string(id) + "-a-name-long-enough-to-live-on-the-heap";
  ep->labels = {"app=app-" + std::to_string(id % 13), "gen=" + std::to_string(gen)};
  ep->workloads = {{"Deployment", "app-" + std::to_string(id % 13)}};
  ep->node_name = "node-" + std::to_string(id % 5);
  for (uint32_t a : addrs) ep->ips.push_back(addr(a));
  return ep;
}

}  // namespace

TEST_CASE("IpCache readers stay consistent while a writer churns", "[ip_cache][concurrency]") {
  IpCache cache;
  {
    std::vector<EndpointPtr> initial;
    for (uint32_t i = 0; i < kPods; ++i) initial.push_back(make_pod(i, {i}, 0));
    cache.replace_source(EndpointSource::kKubernetes, std::move(initial));
  }

  std::atomic<bool> done{false};
  std::atomic<uint64_t> bad{0};
  std::atomic<uint64_t> hits{0}, lookups{0};

  auto reader = [&](uint32_t seed) {
    std::mt19937 rng(seed);
    uint64_t local_hits = 0, local_lookups = 0;
    while (!done.load(std::memory_order_relaxed)) {
      auto guard = cache.read();
      for (int k = 0; k < 64; ++k) {
        const IpAddr ip = addr(rng() % kAddrs);
        const Endpoint* ep = guard.lookup(ip);
        ++local_lookups;
        if (!ep) continue;
        ++local_hits;
        // Touch the strings: a freed endpoint shows up here under ASan/TSan.
        size_t sz = ep->name.size() + ep->namespace_.size() + ep->node_name.size();
        for (const auto& l : ep->labels) sz += l.size();
        if (sz == 0 || std::find(ep->ips.begin(), ep->ips.end(), ip) == ep->ips.end())
          bad.fetch_add(1, std::memory_order_relaxed);
        // The same guard gives the same answer within the section.
        if (guard.lookup(ip) != ep) bad.fetch_add(1, std::memory_order_relaxed);
      }
      // This machine may have fewer cores than threads here: give up the
      // CPU outside a read section, or the writer mostly waits for readers
      // preempted inside one.
      std::this_thread::yield();
    }
    hits += local_hits;
    lookups += local_lookups;
  };

  // An off-hot-path reader using the owning lookups.
  auto owner_reader = [&] {
    std::mt19937 rng(99);
    while (!done.load(std::memory_order_relaxed)) {
      EndpointPtr ep = cache.find(addr(rng() % kAddrs));
      if (ep && ep->name.empty()) bad.fetch_add(1);
      (void)cache.stats();
      if (rng() % 64 == 0) cache.for_each([&](const EndpointPtr& e) { if (e->ips.size() > 8) bad.fetch_add(1); });
      // Off the hot path in real use: leave the state lock to the writer.
      std::this_thread::yield();
    }
  };

  std::vector<std::thread> threads;
  threads.emplace_back(reader, 1);
  threads.emplace_back(reader, 2);
  threads.emplace_back(owner_reader);

  std::mt19937 rng(7);
  const auto t0 = std::chrono::steady_clock::now();
  for (uint32_t gen = 1; gen <= 2000; ++gen) {
    const uint32_t id = rng() % kPods;
    const uint32_t op = rng() % 100;
    const auto src = static_cast<EndpointSource>(rng() % 3);
    if (op < 50) {
      // Move the pod to fresh addresses, sometimes reusing another pod's.
      std::vector<uint32_t> a = {static_cast<uint32_t>(rng() % kAddrs)};
      if (rng() % 4 == 0) a.push_back(static_cast<uint32_t>(rng() % kAddrs));
      cache.upsert(make_pod(id, a, gen), src);
    } else if (op < 80) {
      auto ep = make_pod(id, {}, 0);
      cache.remove(ep->key(), src, rng() % 2 ? 0ns : std::chrono::nanoseconds(1h));
    } else if (op < 90) {
      std::vector<EndpointPtr> eps;
      for (uint32_t k = 0; k < 32; ++k) eps.push_back(make_pod((id + k) % kPods, {static_cast<uint32_t>(rng() % kAddrs)}, gen));
      cache.replace_source(src, std::move(eps), rng() % 2 ? 0ns : std::chrono::nanoseconds(1h));
    } else {
      // Expire everything removed with grace so far.
      cache.expire(t0 + 2h);
    }
  }
  done = true;
  for (auto& t : threads) t.join();

  CHECK(bad.load() == 0);
  CHECK(lookups.load() > 0);
  INFO("hits " << hits.load() << " of " << lookups.load());

  // Quiescent: the reader index equals the writer-side answer everywhere.
  auto g = cache.read();
  uint64_t resolving = 0;
  for (uint32_t i = 0; i < kAddrs; ++i) {
    const Endpoint* ep = g.lookup(addr(i));
    REQUIRE(ep == cache.find(addr(i)).get());
    resolving += ep != nullptr;
  }
  CHECK(cache.stats().ips == resolving);
}

TEST_CASE("IpCache writers from several threads serialize", "[ip_cache][concurrency]") {
  IpCache cache;
  std::vector<std::thread> writers;
  for (uint32_t w = 0; w < 3; ++w) {
    writers.emplace_back([&cache, w] {
      for (uint32_t i = 0; i < 300; ++i) {
        const uint32_t id = w * 1000 + i;
        cache.upsert(make_pod(id, {id}, 1), static_cast<EndpointSource>(w));
        {
          // Readers interleave with other writers. (A thread must not write
          // while it holds a guard: the writer would wait for itself.)
          auto guard = cache.read();
          (void)guard.lookup(addr(id));
        }
        if (i % 3 == 0) cache.remove(make_pod(id, {}, 0)->key(), static_cast<EndpointSource>(w));
      }
    });
  }
  for (auto& t : writers) t.join();
  CHECK(cache.stats().endpoints == 3 * 200);
  CHECK(cache.stats().updates == 3 * 400);
  auto g = cache.read();
  for (uint32_t w = 0; w < 3; ++w)
    for (uint32_t i = 1; i < 300; ++i) {
      const uint32_t id = w * 1000 + i;
      const Endpoint* ep = g.lookup(addr(id));
      if (i % 3 == 0) {
        CHECK(ep == nullptr);
      } else {
        REQUIRE(ep);
        CHECK(ep->name.rfind("pod-" + std::to_string(id) + "-", 0) == 0);
      }
    }
}
