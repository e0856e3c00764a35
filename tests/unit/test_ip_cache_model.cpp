// Randomized operations on IpCache checked against a brute-force model of
// its documented semantics, after every operation and for every address.
#include <catch2/catch.hpp>

#include <algorithm>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "retina/ip_cache.hpp"

using namespace retina;
using namespace std::chrono_literals;

namespace {

constexpr int kIps = 24;
constexpr int kNames = 12;
constexpr int kSources = 3;

IpAddr addr(int i) { return i % 2 ? IpAddr::from_v4(0x0a000000u + i) : *IpAddr::parse("fd00::" + std::to_string(i + 1)); }

struct ModelRec {
  int source;
  std::string key;
  EndpointPtr ep;
  uint64_t seq;
  bool lingering = false;
  int grace_class = 0;     // 1: 1h, 2: 3h
  std::set<int> claimed;   // lingering: addresses still claimed
};

bool has_ip(const EndpointPtr& ep, int i) {
  return std::find(ep->ips.begin(), ep->ips.end(), addr(i)) != ep->ips.end();
}

bool same_content(const Endpoint& a, const Endpoint& b) {
  return a.kind == b.kind && a.namespace_ == b.namespace_ && a.name == b.name && a.labels == b.labels &&
         a.workloads == b.workloads && a.node_name == b.node_name && a.zone == b.zone && a.service == b.service &&
         a.ips == b.ips && a.observe == b.observe;
}

class Model {
 public:
  void upsert(EndpointPtr ep, int src) {
    const std::string key = ep->key();
    erase_if([&](const ModelRec& r) { return r.lingering && r.source == src && r.key == key; });
    ModelRec* live = find_live(src, key);
    if (live) {
      live->ep = ep;
      live->seq = ++seq_;
    } else {
      recs_.push_back({src, key, ep, ++seq_});
    }
    // A live claim ends lingering claims on the same addresses.
    for (auto& r : recs_)
      if (r.lingering)
        for (int i = 0; i < kIps; ++i)
          if (has_ip(ep, i)) r.claimed.erase(i);
    erase_if([](const ModelRec& r) { return r.lingering && r.claimed.empty(); });
  }

  void remove_set(int src, const std::vector<std::string>& keys, int grace_class) {
    std::vector<ModelRec*> gone;
    for (auto& r : recs_)
      if (!r.lingering && r.source == src && std::find(keys.begin(), keys.end(), r.key) != keys.end())
        gone.push_back(&r);
    if (grace_class == 0) {
      // Ends the live record and any earlier grace of the same key.
      erase_if([&](const ModelRec& r) {
        return r.source == src && std::find(keys.begin(), keys.end(), r.key) != keys.end();
      });
      return;
    }
    for (ModelRec* g : gone) {
      g->lingering = true;
      g->grace_class = grace_class;
    }
    for (ModelRec* g : gone) {
      for (int i = 0; i < kIps; ++i)
        if (has_ip(g->ep, i) && !live_claims(i)) g->claimed.insert(i);
    }
    erase_if([](const ModelRec& r) { return r.lingering && r.claimed.empty(); });
  }

  void replace_source(int src, const std::vector<EndpointPtr>& eps, int grace_class) {
    std::map<std::string, size_t> wanted;
    for (size_t i = 0; i < eps.size(); ++i) wanted[eps[i]->key()] = i;
    std::vector<std::string> gone;
    for (auto& r : recs_)
      if (!r.lingering && r.source == src && !wanted.count(r.key)) gone.push_back(r.key);
    remove_set(src, gone, grace_class);
    for (size_t i = 0; i < eps.size(); ++i) {
      if (wanted[eps[i]->key()] != i) continue;
      ModelRec* cur = find_live(src, eps[i]->key());
      if (cur && same_content(*cur->ep, *eps[i])) continue;
      upsert(eps[i], src);
    }
  }

  void expire(int up_to_class) {
    erase_if([&](const ModelRec& r) { return r.lingering && r.grace_class <= up_to_class; });
  }

  const Endpoint* winner(int i) const {
    const ModelRec* best = nullptr;
    for (const auto& r : recs_)
      if (!r.lingering && has_ip(r.ep, i) && (!best || r.seq > best->seq)) best = &r;
    if (best) return best->ep.get();
    for (const auto& r : recs_)
      if (r.lingering && r.claimed.count(i) && (!best || r.seq > best->seq)) best = &r;
    return best ? best->ep.get() : nullptr;
  }

  uint64_t live_count() const {
    return std::count_if(recs_.begin(), recs_.end(), [](const ModelRec& r) { return !r.lingering; });
  }
  uint64_t lingering_count() const { return recs_.size() - live_count(); }
  uint64_t ip_count() const {
    uint64_t n = 0;
    for (int i = 0; i < kIps; ++i) n += winner(i) != nullptr;
    return n;
  }
  std::vector<EndpointPtr> live_eps(int src) const {
    std::vector<EndpointPtr> out;
    for (const auto& r : recs_)
      if (!r.lingering && r.source == src) out.push_back(r.ep);
    return out;
  }
  std::vector<std::string> live_keys(int src) const {
    std::vector<std::string> out;
    for (const auto& r : recs_)
      if (!r.lingering && r.source == src) out.push_back(r.key);
    return out;
  }

 private:
  ModelRec* find_live(int src, const std::string& key) {
    for (auto& r : recs_)
      if (!r.lingering && r.source == src && r.key == key) return &r;
    return nullptr;
  }
  bool live_claims(int i) const {
    return std::any_of(recs_.begin(), recs_.end(), [&](const ModelRec& r) { return !r.lingering && has_ip(r.ep, i); });
  }
  template <class P>
  void erase_if(P pred) {
    recs_.erase(std::remove_if(recs_.begin(), recs_.end(), pred), recs_.end());
  }

  std::vector<ModelRec> recs_;  // std::vector: pointers above are short-lived
  uint64_t seq_ = 0;
};

std::chrono::nanoseconds grace_of(int cls) { return cls == 0 ? 0ns : cls == 1 ? 1h : 3h; }

}  // namespace

TEST_CASE("IpCache matches a brute-force model under random operations", "[ip_cache]") {
  for (uint32_t seed : {1u, 2u, 3u, 4u, 5u, 6u, 7u, 8u}) {
    INFO("seed " << seed);
    std::mt19937 rng(seed);
    auto pick = [&](int n) { return static_cast<int>(rng() % static_cast<uint32_t>(n)); };
    auto make = [&]() {
      auto ep = std::make_shared<Endpoint>();
      ep->kind = pick(4) ? EndpointKind::kPod : EndpointKind::kService;
      ep->namespace_ = "ns";
      ep->name = "n" + std::to_string(pick(kNames));
      ep->node_name = "node-" + std::to_string(pick(3));
      int nips = pick(4);  // 0..3 addresses, occasionally repeated
      for (int k = 0; k < nips; ++k) ep->ips.push_back(addr(pick(kIps)));
      return EndpointPtr(ep);
    };

    IpCache cache;
    Model model;
    for (int step = 0; step < 1500; ++step) {
      const int src = pick(kSources);
      const int op = pick(100);
      std::string what;
      if (op < 45) {
        auto ep = make();
        what = "upsert " + ep->key();
        cache.upsert(ep, static_cast<EndpointSource>(src));
        model.upsert(ep, src);
      } else if (op < 75) {
        auto keys = model.live_keys(src);
        std::string key = keys.empty() || pick(5) == 0 ? "pod/ns/n" + std::to_string(pick(kNames))
                                                       : keys[static_cast<size_t>(pick(static_cast<int>(keys.size())))];
        const int cls = pick(3);
        what = "remove " + key + " grace class " + std::to_string(cls);
        cache.remove(key, static_cast<EndpointSource>(src), grace_of(cls));
        model.remove_set(src, {key}, cls);
      } else if (op < 88) {
        std::vector<EndpointPtr> eps;
        // Mostly re-list current endpoints (unchanged content), plus changes.
        for (const auto& cur : model.live_eps(src)) {
          if (pick(4) == 0) continue;
          // The same object, or a new object with the same content.
          eps.push_back(pick(2) ? cur : std::make_shared<const Endpoint>(*cur));
        }
        int n = pick(6);
        for (int k = 0; k < n; ++k) eps.push_back(make());
        const int cls = pick(3);
        what = "replace_source " + std::to_string(src) + " with " + std::to_string(eps.size());
        cache.replace_source(static_cast<EndpointSource>(src), eps, grace_of(cls));
        model.replace_source(src, eps, cls);
      } else if (op < 94) {
        what = "expire 1h";
        cache.expire(std::chrono::steady_clock::now() + 2h);
        model.expire(1);
      } else {
        what = "expire all";
        cache.expire(std::chrono::steady_clock::now() + 4h);
        model.expire(2);
      }
      INFO("step " << step << ": " << what);
      auto g = cache.read();
      for (int i = 0; i < kIps; ++i) {
        INFO("address " << addr(i).to_string());
        const Endpoint* want = model.winner(i);
        REQUIRE(g.lookup(addr(i)) == want);
        REQUIRE(cache.find(addr(i)).get() == want);
      }
      const IpCacheStats st = cache.stats();
      REQUIRE(st.endpoints == model.live_count());
      REQUIRE(st.lingering == model.lingering_count());
      REQUIRE(st.ips == model.ip_count());
    }
  }
}
