// The Hubble flow store: a ring of blocks written by the pipeline thread
// and read by cursor.
#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "hubble/flow_store.hpp"
#include "retina/ip_cache.hpp"
#include "retina/pipeline.hpp"

using namespace retina;
using hubble::FlowStore;
using namespace std::chrono_literals;

namespace {

// Flow number `seq`: its time and ports say which one it is.
Flow numbered(uint64_t seq) {
  Flow f;
  f.time_ns = 1'000'000 + seq;
  f.src = *IpAddr::parse("10.0.0.1");
  f.dst = *IpAddr::parse("10.0.0.2");
  f.ip_version = IpVersion::IPv4;
  f.proto = L4Protocol::kUDP;
  f.src_port = static_cast<uint16_t>(seq);
  f.dst_port = static_cast<uint16_t>(seq >> 16);
  return f;
}

// A pod in namespace "default" with one address.
EndpointPtr pod(std::string name, const char* ip) {
  auto ep = std::make_shared<Endpoint>();
  ep->kind = EndpointKind::kPod;
  ep->namespace_ = "default";
  ep->name = std::move(name);
  ep->ips = {*IpAddr::parse(ip)};
  return ep;
}

bool is_flow(const Flow& f, uint64_t seq) {
  return f.time_ns == 1'000'000 + seq && f.src_port == static_cast<uint16_t>(seq) &&
         f.dst_port == static_cast<uint16_t>(seq >> 16);
}

// Writes flows [from, to) in batches of `batch`, as the pipeline does.
void write(FlowStore& s, uint64_t from, uint64_t to, uint64_t batch = 256) {
  for (uint64_t i = from; i < to; ++i) {
    s.on_kept_flow(numbered(i), nullptr, nullptr);
    if ((i + 1) % batch == 0) s.on_batch_end();
  }
  s.on_batch_end();
}

// Reads everything from `cursor` on; returns the flows' sequence numbers
// and adds the lost count to `lost`.
std::vector<uint64_t> read_all(const FlowStore& s, uint64_t* cursor, uint64_t* lost) {
  std::vector<uint64_t> seqs;
  for (;;) {
    const size_t before = seqs.size();
    *lost += s.read(cursor, ~uint64_t{0}, 100, [&](uint64_t seq, const Flow& f) {
      REQUIRE(is_flow(f, seq));
      seqs.push_back(seq);
      return true;
    });
    if (seqs.size() == before) return seqs;
  }
}

}  // namespace

TEST_CASE("flow store: publishes per batch, the ring wraps and keeps the last `capacity` flows", "[hubble][store]") {
  FlowStore s(1000);
  CHECK(s.capacity() == 1000);
  CHECK(s.head() == 0);
  CHECK(s.size() == 0);

  // Written but not published: invisible.
  for (uint64_t i = 0; i < 10; ++i) s.on_kept_flow(numbered(i), nullptr, nullptr);
  CHECK(s.head() == 0);
  CHECK_FALSE(s.wait(0, 10ms));
  s.on_batch_end();
  CHECK(s.head() == 10);
  CHECK(s.wait(0, 10ms));

  // Several times around the whole ring (the capacity plus the slack).
  const uint64_t total = 3 * FlowStore::kMinRingFlows + 123;
  write(s, 10, total);
  CHECK(s.seen() == total);
  CHECK(s.size() == 1000);
  CHECK(s.oldest() == total - 1000);
  uint64_t cursor = s.oldest(), lost = 0;
  const auto seqs = read_all(s, &cursor, &lost);
  CHECK(lost == 0);
  REQUIRE(seqs.size() == 1000);
  for (size_t i = 0; i < seqs.size(); ++i) REQUIRE(seqs[i] == total - 1000 + i);
  CHECK(cursor == total);
  // No reader was inside a block being rewritten: no block beyond the ring's.
  CHECK(s.blocks_allocated() == (FlowStore::kMinRingFlows / FlowStore::kBlockFlows + 1));
}

TEST_CASE("flow store: a slow follower counts exactly the flows it lost", "[hubble][store]") {
  FlowStore s(500);
  uint64_t cursor = 0, lost = 0;
  std::vector<uint64_t> got;
  write(s, 0, 300);
  auto part = read_all(s, &cursor, &lost);
  got.insert(got.end(), part.begin(), part.end());
  CHECK(lost == 0);
  // Falls behind by far more than the ring.
  const uint64_t total = 300 + 2 * FlowStore::kMinRingFlows + 77;
  write(s, 300, total);
  part = read_all(s, &cursor, &lost);
  got.insert(got.end(), part.begin(), part.end());
  CHECK(lost == total - 300 - 500);
  CHECK(got.size() + lost == total);
  CHECK(got.size() == 800);
  CHECK(got.back() == total - 1);
  // Stopping early leaves the cursor at the flow that stopped it.
  uint64_t c2 = s.oldest(), seen = 0;
  s.read(&c2, ~uint64_t{0}, 1000, [&](uint64_t seq, const Flow&) { return seq < total - 10 && ++seen; });
  CHECK(c2 == total - 10);
  CHECK(seen == 490);
  // `end` bounds a read.
  uint64_t c3 = total - 100;
  size_t n = 0;
  s.read(&c3, total - 40, 1000, [&](uint64_t, const Flow&) { return ++n != 0; });
  CHECK(n == 60);
  CHECK(c3 == total - 40);
}

TEST_CASE("flow store: a reader inside a block never stalls the writer, its block stays intact", "[hubble][store]") {
  FlowStore s(128);
  write(s, 0, 1000);
  std::atomic<bool> inside{false}, written{false};
  std::atomic<uint64_t> mismatches{0}, read_count{0};
  std::thread reader([&] {
    uint64_t cursor = 900, lost = 0;
    lost += s.read(&cursor, ~uint64_t{0}, 10, [&](uint64_t seq, const Flow& f) {
      if (!inside.exchange(true)) {
        // Hold the pin while the writer laps the ring several times.
        while (!written.load()) std::this_thread::sleep_for(1ms);
      }
      if (!is_flow(f, seq)) ++mismatches;
      ++read_count;
      return true;
    });
    CHECK(lost == 0);
  });
  while (!inside.load()) std::this_thread::sleep_for(1ms);
  const auto t0 = std::chrono::steady_clock::now();
  const uint64_t total = 1000 + 4 * FlowStore::kMinRingFlows;
  write(s, 1000, total);  // returns although the reader holds a block
  written = true;
  reader.join();
  CHECK(std::chrono::steady_clock::now() - t0 < 30s);
  CHECK(mismatches == 0);
  CHECK(read_count == 10);  // all within the pinned block (896..959)
  // The pinned block was set aside and a new one took its place.
  const size_t ring_blocks = (FlowStore::kMinRingFlows / FlowStore::kBlockFlows + 1);
  CHECK(s.blocks_allocated() == ring_blocks + 1);
  // Once unpinned it is reused: lapping the ring again with a reader
  // pinned elsewhere allocates nothing more.
  std::atomic<bool> inside2{false}, written2{false};
  std::thread reader2([&] {
    uint64_t cursor = s.oldest();
    s.read(&cursor, ~uint64_t{0}, 1, [&](uint64_t, const Flow&) {
      inside2 = true;
      while (!written2.load()) std::this_thread::sleep_for(1ms);
      return true;
    });
  });
  while (!inside2.load()) std::this_thread::sleep_for(1ms);
  write(s, total, total + 2 * FlowStore::kMinRingFlows);
  written2 = true;
  reader2.join();
  CHECK(s.blocks_allocated() == ring_blocks + 1);
  uint64_t cursor = s.oldest(), lost = 0;
  CHECK(read_all(s, &cursor, &lost).size() == 128);
}

TEST_CASE("flow store: concurrent followers see every flow in order or count it lost", "[hubble][store]") {
  FlowStore s(256);
  constexpr uint64_t kTotal = 400'000;
  constexpr int kFollowers = 4;
  std::vector<std::thread> threads;
  std::vector<uint64_t> got(kFollowers), lost(kFollowers), bad(kFollowers);
  std::atomic<bool> done{false};
  for (int i = 0; i < kFollowers; ++i) {
    threads.emplace_back([&, i] {
      uint64_t cursor = 0, next = 0;
      for (;;) {
        const bool finished = done.load();
        lost[i] += s.read(&cursor, ~uint64_t{0}, 64, [&](uint64_t seq, const Flow& f) {
          if (!is_flow(f, seq) || seq < next) ++bad[i];
          next = seq + 1;
          ++got[i];
          if (i == 0) std::this_thread::yield();  // one slow follower
          return true;
        });
        if (finished && cursor == s.head()) break;
        if (cursor == s.head()) s.wait(cursor, 10ms);
      }
    });
  }
  write(s, 0, kTotal, 64);
  done = true;
  for (auto& t : threads) t.join();
  for (int i = 0; i < kFollowers; ++i) {
    INFO("follower " << i);
    CHECK(bad[i] == 0);
    CHECK(got[i] + lost[i] == kTotal);
  }
}

TEST_CASE("flow store: as a pipeline sink it owns its flows' endpoints", "[hubble][store]") {
  auto cache = std::make_shared<IpCache>();
  EndpointPtr ep = pod("web-1", "10.0.0.1");
  cache->upsert(ep);
  std::weak_ptr<const Endpoint> weak = ep;
  ep.reset();

  Pipeline p(cache, nullptr);
  auto store = std::make_shared<FlowStore>(16);
  FlowStore::attach(store, p);
  Flow f = numbered(0);
  p.process_flow(f);
  p.end_batch();
  REQUIRE(store->head() == 1);

  // The cache lets go of the endpoint; the stored flow still holds it.
  cache->remove("pod/default/web-1");
  p.process_flow(f);  // a new batch: the pipeline's memo is not what keeps it
  p.end_batch();
  CHECK_FALSE(weak.expired());
  uint64_t cursor = 0;
  std::vector<std::string> names;
  store->read(&cursor, ~uint64_t{0}, 10, [&](uint64_t, const Flow& g) {
    names.push_back(g.source ? g.source->name : std::string("-"));
    return true;
  });
  CHECK(names == std::vector<std::string>{"web-1", "-"});
  store->detach();
  p.process_flow(f);
  p.end_batch();
  CHECK(store->head() == 2);  // detached: no more flows
}

TEST_CASE("flow store: a block holds one reference per endpoint and lets go when rewritten", "[hubble][store]") {
  auto cache = std::make_shared<IpCache>();
  for (const char* ip : {"10.0.0.1", "10.0.0.2"}) cache->upsert(pod(std::string("pod-") + ip, ip));
  const EndpointPtr src = cache->find(*IpAddr::parse("10.0.0.1"));
  const EndpointPtr dst = cache->find(*IpAddr::parse("10.0.0.2"));
  REQUIRE(src);
  REQUIRE(dst);
  const long src_refs = src.use_count(), dst_refs = dst.use_count();

  Pipeline p(cache, nullptr);
  auto store = std::make_shared<FlowStore>(16);
  FlowStore::attach(store, p);
  // Three blocks' worth of flows between the same two pods.
  for (uint64_t i = 0; i < 3 * FlowStore::kBlockFlows; ++i) {
    Flow f = numbered(i);
    p.process_flow(f);
  }
  p.end_batch();
  CHECK(src.use_count() == src_refs + 3);
  CHECK(dst.use_count() == dst_refs + 3);
  uint64_t cursor = 0;
  size_t named = 0;
  store->read(&cursor, ~uint64_t{0}, 1000, [&](uint64_t, const Flow& g) {
    named += g.source == src.get() && g.destination == dst.get();
    return true;
  });
  CHECK(named == store->capacity());  // what history requests see

  // Flows of unknown addresses go round the whole ring: the blocks let go.
  const size_t ring = FlowStore::kMinRingFlows + 2 * FlowStore::kBlockFlows;
  for (uint64_t i = 0; i < ring; ++i) {
    Flow f = numbered(i);
    f.src = *IpAddr::parse("192.0.2.1");
    f.dst = *IpAddr::parse("192.0.2.2");
    p.process_flow(f);
    if (i % 256 == 255) p.end_batch();
  }
  p.end_batch();
  CHECK(src.use_count() == src_refs);
  CHECK(dst.use_count() == dst_refs);
  store->detach();
}

TEST_CASE("flow store: its own follower sees every flow, a waiter wakes at most once per batch", "[hubble][store]") {
  Pipeline p(nullptr, nullptr);
  auto store = std::make_shared<FlowStore>(16);
  std::atomic<uint64_t> observed{0};
  FlowStore::attach(store, p, [&](const Flow&) { ++observed; });
  std::atomic<int> wakes{0};
  std::thread waiter([&] {
    uint64_t cursor = 0;
    while (cursor < 1000) {
      if (store->wait(cursor, 5s)) ++wakes;
      cursor = store->head();
    }
  });
  for (int b = 0; b < 10; ++b) {
    for (int i = 0; i < 100; ++i) {
      Flow f = numbered(static_cast<uint64_t>(b * 100 + i));
      p.process_flow(f);
    }
    p.end_batch();
    std::this_thread::sleep_for(20ms);
  }
  waiter.join();
  CHECK(wakes <= 10);
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (observed < 1000 && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(5ms);
  CHECK(observed == 1000);
  CHECK(store->lost_by_observer() == 0);
  store->detach();
}

TEST_CASE("flow store: a wake put off between close batches is made by the idle call", "[hubble][store]") {
  Pipeline p(nullptr, nullptr);
  auto store = std::make_shared<FlowStore>(16);
  FlowStore::attach(store, p);
  auto batch = [&](uint64_t first) {
    for (uint64_t i = first; i < first + 10; ++i) {
      Flow f = numbered(i);
      p.process_flow(f);
    }
    p.end_batch();
  };
  batch(0);
  std::atomic<bool> done{false};
  std::atomic<uint64_t> at{0};
  std::thread waiter([&] {
    uint64_t cursor = store->head();
    while (cursor < 30) {
      store->wait(cursor, 30s);
      cursor = store->head();
      at = cursor;
    }
    done = true;
  });
  std::this_thread::sleep_for(50ms);  // the waiter sleeps by now
  const auto t0 = std::chrono::steady_clock::now();
  batch(10);  // wakes it
  while (at < 20) std::this_thread::yield();
  std::this_thread::sleep_for(200us);  // back asleep
  batch(20);  // within kWakeEvery of that wake: put off
  std::this_thread::sleep_for(FlowStore::kWakeEvery * 2);
  p.idle();
  waiter.join();
  // Woken by the idle call, not by its 30 s timeout.
  CHECK(std::chrono::steady_clock::now() - t0 < 10s);
  CHECK(done);
  store->detach();
}
