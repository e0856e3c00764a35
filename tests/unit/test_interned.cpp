// Interned endpoint fields: one shared entry per distinct value, freed with
// the last handle, safe across threads, and read like the std types they replace.
#include <catch2/catch.hpp>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "retina/endpoint.hpp"
#include "retina/interned.hpp"

using retina::Endpoint;
using retina::Interned;
using retina::IString;
using retina::Workload;
using StringPool = retina::detail::InternPool<std::string>;
using LabelPool = retina::detail::InternPool<std::vector<std::string>>;

TEST_CASE("interned: equal values share one entry, freed with the last handle", "[interned]") {
  const size_t before = StringPool::size();
  {
    IString a = std::string("interned-test-ns");
    IString b = "interned-test-ns";
    IString c = std::string_view("interned-test-other");
    CHECK(a == b);
    CHECK(a.data() == b.data());  // the same entry
    CHECK_FALSE(a == c);
    CHECK(StringPool::size() == before + 2);
    IString d = a;  // a copy holds a reference
    a = "interned-test-third";
    CHECK(d == b);
    CHECK(StringPool::size() == before + 3);
    IString moved = std::move(d);
    CHECK(d.empty());  // NOLINT(bugprone-use-after-move): a moved-from handle is empty
    CHECK(moved == "interned-test-ns");
  }
  CHECK(StringPool::size() == before);
  // The empty value needs no entry.
  IString e = "";
  CHECK(e.empty());
  CHECK(StringPool::size() == before);
}

TEST_CASE("interned: handles read like std::string and std::vector", "[interned]") {
  IString s = "shop";
  const std::string& ref = s;
  std::string_view view = s;
  std::string copy = s;
  CHECK(ref == "shop");
  CHECK(view == "shop");
  CHECK(copy == "shop");
  CHECK(s == std::string("shop"));
  CHECK(std::string("shop") == s);
  CHECK(s != "pay");
  CHECK(s + "/web" == "shop/web");
  CHECK("ns:" + s == "ns:shop");
  std::string acc = "x=";
  acc += s;
  CHECK(acc == "x=shop");
  CHECK(fmt::format("{}", s.str()) == "shop");
  CHECK(std::string(s.c_str()) == "shop");
  CHECK(s.starts_with("sh"));
  CHECK(IString("a") < IString("b"));

  Endpoint ep;
  ep.labels = {"app=web", "tier=front"};
  ep.workloads = {{"Deployment", "web"}};
  const std::vector<std::string>& labels = ep.labels;
  CHECK(labels.size() == 2);
  CHECK(ep.labels[1] == "tier=front");
  CHECK(ep.labels == std::vector<std::string>{"app=web", "tier=front"});
  REQUIRE(ep.workload());
  CHECK(ep.workload()->name == "web");
  Endpoint other = ep;
  CHECK(other.labels == ep.labels);
  CHECK(&other.labels.front() == &ep.labels.front());  // shared
  std::vector<std::string> v{"app=web", "tier=front"};
  other.labels = std::move(v);
  CHECK(&other.labels.front() == &ep.labels.front());  // interned to the same entry
  // Designated initialisation, as tests and embedders write endpoints.
  Endpoint d{.kind = retina::EndpointKind::kPod, .namespace_ = "k8s", .name = "api"};
  CHECK(d.namespace_ == "k8s");
  CHECK(d.key() == "pod/k8s/api");
}

TEST_CASE("interned: concurrent interning and release", "[interned]") {
  const size_t before = LabelPool::size();
  std::vector<std::thread> threads;
  std::atomic<int> mismatches{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      std::vector<Interned<std::vector<std::string>>> held;
      for (int i = 0; i < 20000; ++i) {
        std::vector<std::string> v{"app=svc" + std::to_string(i % 37), "team=" + std::to_string((i + t) % 5)};
        Interned<std::vector<std::string>> h(v);
        if (h.get() != v) ++mismatches;
        if (i % 3 == 0) held.push_back(h);
        if (held.size() > 50) held.erase(held.begin(), held.begin() + 25);
      }
    });
  }
  for (auto& th : threads) th.join();
  CHECK(mismatches == 0);
  CHECK(LabelPool::size() == before);
}

TEST_CASE("interned: the endpoint is compact", "[interned]") {
  // kind + observe, 4 interned strings, 2 interned lists, the name and the addresses.
  CHECK(sizeof(Endpoint) <= 8 + 6 * 8 + sizeof(std::string) + sizeof(std::vector<retina::IpAddr>));
}
