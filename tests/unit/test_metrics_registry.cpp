#include <catch2/catch.hpp>

#include <thread>

#include "retina/metrics/registry.hpp"
#include "support/prom_text.hpp"

using namespace retina::metrics;
using retina::test::parse_prom_text;

TEST_CASE("exposition has HELP and TYPE for every family, including empty ones", "[metrics]") {
  Registry r;
  auto& c = r.counter("test_requests", "Requests served", {"code"});
  r.gauge("test_temperature", "Current temperature");
  c.with({"200"}).add(3);
  c.with({"500"}).add();
  const std::string text = r.expose();
  CHECK(text ==
        "# HELP test_requests Requests served\n"
        "# TYPE test_requests counter\n"
        "test_requests{code=\"200\"} 3\n"
        "test_requests{code=\"500\"} 1\n"
        "# HELP test_temperature Current temperature\n"
        "# TYPE test_temperature gauge\n");
  auto parsed = parse_prom_text(text);
  REQUIRE(parsed.error.empty());
  CHECK(parsed.value("test_requests", {{"code", "200"}}) == 3.0);
}

TEST_CASE("label values and help text are escaped", "[metrics]") {
  Registry r;
  r.counter("esc_total", "line one\nback\\slash", {"v"}).with({"a\"b\\c\nd"}).add(1);
  const std::string text = r.expose();
  CHECK(text.find("# HELP esc_total line one\\nback\\\\slash\n") != std::string::npos);
  CHECK(text.find("esc_total{v=\"a\\\"b\\\\c\\nd\"} 1\n") != std::string::npos);
  auto parsed = parse_prom_text(text);
  REQUIRE(parsed.error.empty());
  CHECK(parsed.value("esc_total", {{"v", "a\"b\\c\nd"}}) == 1.0);
}

TEST_CASE("the same name returns the same family and series have stable addresses", "[metrics]") {
  Registry r;
  auto& a = r.counter("dup_total", "x", {"k"});
  auto& b = r.counter("dup_total", "ignored", {"k"});
  CHECK(&a == &b);
  Counter* first = &a.with({"v0"});
  for (int i = 1; i < 5000; ++i) a.with({std::to_string(i)});
  CHECK(first == &a.with({"v0"}));
}

TEST_CASE("gauges render doubles, infinities and NaN", "[metrics]") {
  Registry r;
  auto& g = r.gauge("g", "gauge", {"k"});
  g.with({"half"}).set(0.5);
  g.with({"inf"}).set(1.0 / 0.0);
  g.with({"neg"}).add(-2.25);
  const std::string text = r.expose();
  CHECK(text.find("g{k=\"half\"} 0.5\n") != std::string::npos);
  CHECK(text.find("g{k=\"inf\"} +Inf\n") != std::string::npos);
  CHECK(text.find("g{k=\"neg\"} -2.25\n") != std::string::npos);
  CHECK(parse_prom_text(text).error.empty());
}

namespace {
struct MirrorCollector : Collector {
  Counter* mirrored;
  int refreshed = 0;
  explicit MirrorCollector(Registry& r) : mirrored(&r.counter("mirror_total", "mirrored").with({})) {}
  void refresh() override { mirrored->set(static_cast<uint64_t>(++refreshed) * 10); }
  void collect(TextWriter& w) override {
    w.family("collected_value", "written by a collector", MetricType::kGauge);
    w.sample("collected_value", {{"src", "proc"}}, uint64_t{7});
  }
};
}  // namespace

TEST_CASE("collectors refresh before families are written and collect after", "[metrics]") {
  Registry r;
  auto c = std::make_shared<MirrorCollector>(r);
  const uint64_t id = r.add_collector(c);
  auto parsed = parse_prom_text(r.expose());
  REQUIRE(parsed.error.empty());
  CHECK(parsed.value("mirror_total") == 10.0);
  CHECK(parsed.value("collected_value", {{"src", "proc"}}) == 7.0);
  r.remove_collector(id);
  parsed = parse_prom_text(r.expose());
  REQUIRE(parsed.error.empty());
  CHECK(parsed.family("collected_value") == nullptr);
}

TEST_CASE("counters are exact under concurrent writers and scrapes", "[metrics]") {
  Registry r;
  auto& fam = r.counter("conc_total", "x", {"t"});
  constexpr int kThreads = 4, kAdds = 100000;
  std::vector<std::thread> ts;
  std::atomic<bool> stop{false};
  std::thread scraper([&] {
    while (!stop.load()) {
      auto p = parse_prom_text(r.expose());
      REQUIRE(p.error.empty());
    }
  });
  for (int t = 0; t < kThreads; ++t)
    ts.emplace_back([&, t] {
      Counter& c = fam.with({t % 2 ? "odd" : "even"});
      for (int i = 0; i < kAdds; ++i) c.add();
    });
  for (auto& t : ts) t.join();
  stop = true;
  scraper.join();
  auto p = parse_prom_text(r.expose());
  CHECK(p.value("conc_total", {{"t", "odd"}}) == 2.0 * kAdds);
  CHECK(p.value("conc_total", {{"t", "even"}}) == 2.0 * kAdds);
}

TEST_CASE("the test parser rejects malformed exposition", "[metrics]") {
  CHECK_FALSE(parse_prom_text("x 1\n").error.empty());  // no HELP/TYPE
  CHECK_FALSE(parse_prom_text("# HELP a h\n# TYPE a counter\na{b=\"1\"} 1\na{b=\"1\"} 2\n").error.empty());
  CHECK_FALSE(parse_prom_text("# HELP a h\n# TYPE a counter\n# HELP b h\n# TYPE b gauge\na 1\n").error.empty());
  CHECK_FALSE(parse_prom_text("# HELP a h\n# TYPE a counter\na{b=1} 1\n").error.empty());
  CHECK_FALSE(parse_prom_text("# HELP a h\n# TYPE a counter\na x\n").error.empty());
}
