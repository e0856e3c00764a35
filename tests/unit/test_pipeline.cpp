#include <catch2/catch.hpp>

#include <fmt/format.h>

#include <atomic>
#include <thread>
#include <vector>

#include "retina/metrics/names.hpp"
#include "retina/metrics/registry.hpp"
#include "retina/pipeline.hpp"
#include "support/prom_text.hpp"
#include "test_decoder_records.hpp"
#include "test_dns_builder.hpp"

using namespace retina;
using namespace retina::testing;
using retina::test::parse_prom_text;
using namespace std::chrono_literals;

namespace {

struct CountingSink : FlowSink {
  std::atomic<uint64_t> flows{0}, batches{0};
  std::vector<std::string> src_pods;  // when record_names
  bool record_names = false;
  void on_flow(const Flow& f) noexcept override {
    flows.fetch_add(1, std::memory_order_relaxed);
    if (record_names) src_pods.push_back(f.source ? f.source->name : "");
  }
  void on_batch_end() noexcept override { batches.fetch_add(1, std::memory_order_relaxed); }
};

EndpointPtr pod(const char* ns, const char* name, const char* ip, std::string zone = "") {
  auto ep = std::make_shared<Endpoint>();
  ep->kind = EndpointKind::kPod;
  ep->namespace_ = ns;
  ep->name = name;
  ep->ips = {*IpAddr::parse(ip)};
  ep->labels = {"app=" + std::string(name)};
  ep->zone = std::move(zone);
  return ep;
}

// Packet records 10.0.<i>.1 -> 10.0.0.2 with source port 1000 + i.
std::vector<std::vector<std::byte>> packet_records(size_t n) {
  std::vector<std::vector<std::byte>> out;
  for (size_t i = 0; i < n; ++i) {
    auto ev = packet_event(i);
    std::string src = "10.0." + std::to_string(i % 250) + ".1";
    ev.tuple = tcp_tuple(src.c_str(), "10.0.0.2", static_cast<uint16_t>(1000 + i), 80);
    out.push_back(record_of(ev));
  }
  return out;
}

std::optional<double> metric(metrics::Registry& r, std::string_view name,
                             const std::map<std::string, std::string>& labels = {}) {
  auto p = parse_prom_text(r.expose());
  REQUIRE(p.error.empty());
  return p.value(name, labels);
}

}  // namespace

TEST_CASE("pipeline: every sink sees every flow, once per batch end", "[pipeline]") {
  Pipeline p(nullptr, nullptr);
  auto a = std::make_shared<CountingSink>();
  auto b = std::make_shared<CountingSink>();
  p.add_sink(a);
  p.add_sink(b);
  CHECK(p.add_sink(nullptr) == 0);
  auto recs = packet_records(100);
  for (int batch = 0; batch < 3; ++batch) {
    for (const auto& r : recs) p.process(r);
    p.end_batch();
  }
  p.end_batch();  // an empty batch is not a batch
  CHECK(a->flows == 300);
  CHECK(b->flows == 300);
  CHECK(a->batches == 3);
  CHECK(b->batches == 3);
  auto s = p.stats();
  CHECK(s.records == 300);
  CHECK(s.decoded == 300);
}

TEST_CASE("pipeline: enrichment from the IP cache, hits and misses", "[pipeline]") {
  auto cache = std::make_shared<IpCache>();
  cache->upsert(pod("default", "client", "10.0.0.1"));
  cache->upsert(pod("default", "server", "10.0.0.2"));
  Pipeline p(cache, nullptr);
  auto sink = std::make_shared<CountingSink>();
  sink->record_names = true;
  p.add_sink(sink);

  auto ev = packet_event();
  p.process(record_of(ev));
  ev.tuple = tcp_tuple("192.0.2.9", "10.0.0.2");
  p.process(record_of(ev));
  auto drop = drop_event();
  drop.tuple = retina_tuple{};  // non-IP: no lookups
  p.process(record_of(drop));
  p.end_batch();

  REQUIRE(sink->src_pods.size() == 3);
  CHECK(sink->src_pods[0] == "client");
  CHECK(sink->src_pods[1] == "");
  CHECK(sink->src_pods[2] == "");
  auto s = p.stats();
  CHECK(s.enrich_hits == 3);
  CHECK(s.enrich_misses == 1);

  SECTION("disabled enrichment looks nothing up") {
    p.set_enrich(false);
    p.process(record_of(packet_event()));
    p.end_batch();
    CHECK(sink->src_pods.back() == "");
    CHECK(p.stats().enrich_hits == 3);
  }
}

TEST_CASE("pipeline: rejects are counted per error and per plugin", "[pipeline]") {
  metrics::Registry reg;
  Pipeline p(nullptr, &reg);
  auto sink = std::make_shared<CountingSink>();
  p.add_sink(sink);

  std::vector<std::byte> tiny(4);
  auto unknown = packet_event();
  unknown.hdr.type = 99;
  auto newer = packet_event();
  newer.hdr.version = 7;
  auto bad = packet_event();
  bad.tuple.family = 3;
  for (int i = 0; i < 3; ++i) p.process(tiny, "packetparser");
  for (int i = 0; i < 2; ++i) p.process(record_of(unknown), "packetparser");
  p.process(record_of(newer), "dropreason");
  p.process(record_of(bad), "dropreason");
  p.process(record_of(bad), "dns");
  p.process(dns_record(example_query().span()), "dns");  // valid
  p.process(record_of(packet_event()), "packetparser");  // valid
  p.end_batch();

  auto s = p.stats();
  CHECK(s.records == 10);
  CHECK(s.decoded == 2);
  CHECK(s.rejected[static_cast<size_t>(DecodeError::kTooShort)] == 3);
  CHECK(s.rejected[static_cast<size_t>(DecodeError::kUnknownType)] == 2);
  CHECK(s.rejected[static_cast<size_t>(DecodeError::kUnsupportedVersion)] == 1);
  CHECK(s.rejected[static_cast<size_t>(DecodeError::kBadField)] == 2);
  CHECK(s.rejected[static_cast<size_t>(DecodeError::kDnsMalformed)] == 0);
  CHECK(sink->flows == 2);

  const auto lost = metrics::names::kLostEvents;
  CHECK(metric(reg, lost, {{"type", "decoder"}, {"reason", "packetparser"}}) == 5);
  CHECK(metric(reg, lost, {{"type", "decoder"}, {"reason", "dropreason"}}) == 2);
  CHECK(metric(reg, lost, {{"type", "decoder"}, {"reason", "dns"}}) == 1);
  // Only packetparser flows are parsed packets.
  CHECK(metric(reg, metrics::names::kParsedPackets) == 1);
}

TEST_CASE("pipeline: parsed packets count every decoded packetparser record", "[pipeline]") {
  metrics::Registry reg;
  Pipeline p(nullptr, &reg);
  for (const auto& r : packet_records(40)) p.process(r);
  p.process(record_of(drop_event()), "dropreason");
  p.process(record_of(tcpretrans_event()), "tcpretrans");
  CHECK(metric(reg, metrics::names::kParsedPackets).value_or(0) == 0);  // published per batch
  p.end_batch();
  CHECK(metric(reg, metrics::names::kParsedPackets) == 40);
}

TEST_CASE("pipeline: a batch record counts and dispatches each record it holds", "[pipeline]") {
  metrics::Registry reg;
  Pipeline p(nullptr, &reg);
  auto sink = std::make_shared<CountingSink>();
  p.add_sink(sink);
  std::vector<retina_packet_event> evs;
  for (int i = 0; i < RETINA_BATCH_MAX; ++i) evs.push_back(packet_event(i));
  auto bad_inner = evs;
  bad_inner[3].obs_point = 99;
  auto broken = batch_record(evs);
  broken[offsetof(retina_batch_hdr, stride)] = std::byte{3};  // not a multiple of 8

  // process() and process_ahead() alike, with or without a source name.
  p.process(batch_record(evs), "packetparser");
  p.process(batch_record(std::span(evs).first(1)));
  p.process_ahead(batch_record(std::span(evs).first(5)), "packetparser");
  p.process_ahead(batch_record(bad_inner), "packetparser");
  p.process(broken);
  p.end_batch();

  auto s = p.stats();
  CHECK(s.records == RETINA_BATCH_MAX + 1 + 5 + RETINA_BATCH_MAX + 1);
  CHECK(s.decoded == RETINA_BATCH_MAX + 1 + 5 + RETINA_BATCH_MAX - 1);
  CHECK(s.rejected[static_cast<size_t>(DecodeError::kBadField)] == 2);  // one record, one batch
  CHECK(sink->flows == s.decoded);
  CHECK(metric(reg, metrics::names::kParsedPackets) == static_cast<double>(s.decoded));
  CHECK(metric(reg, metrics::names::kLostEvents, {{"type", "decoder"}, {"reason", "packetparser"}}) == 2);
}

TEST_CASE("pipeline: drop reason names reach the decoder at the next batch", "[pipeline]") {
  Pipeline p(nullptr, nullptr);
  struct DescSink : FlowSink {
    std::string last;
    void on_flow(const Flow& f) noexcept override { last.assign(f.drop_reason_desc); }
  };
  auto sink = std::make_shared<DescSink>();
  p.add_sink(sink);
  p.process(record_of(drop_event()));
  p.end_batch();
  CHECK(sink->last == "UNKNOWN");
  auto names = std::make_shared<std::vector<std::string>>(7);
  (*names)[6] = "NETFILTER_DROP";
  p.set_drop_reason_names(names);
  p.process(record_of(drop_event()));
  p.end_batch();
  CHECK(sink->last == "NETFILTER_DROP");
}

TEST_CASE("pipeline: a slow subscriber drops and counts only its own flows", "[pipeline]") {
  metrics::Registry reg;
  Pipeline p(nullptr, &reg);
  auto sink = std::make_shared<CountingSink>();
  p.add_sink(sink);
  auto slow = p.subscribe("slow-client", 10);
  auto fast = p.subscribe("fast-client", 1000);
  auto recs = packet_records(100);
  for (const auto& r : recs) p.process(r);
  p.end_batch();

  CHECK(sink->flows == 100);
  CHECK(slow->delivered() == 10);
  CHECK(slow->dropped() == 90);
  CHECK(slow->queued() == 10);
  CHECK(fast->delivered() == 100);
  CHECK(fast->dropped() == 0);

  std::vector<OwnedFlow> got;
  CHECK(fast->pop_batch(got, 1000, 0ms) == 100);
  for (size_t i = 0; i < got.size(); ++i) CHECK(got[i].flow().src_port == 1000 + i);  // FIFO
  got.clear();
  CHECK(slow->pop_batch(got, 1000, 0ms) == 10);
  CHECK(got.back().flow().src_port == 1009);

  const auto lost = metrics::names::kLostEvents;
  CHECK(metric(reg, lost, {{"type", "external_channel"}, {"reason", "slow-client"}}) == 90);
  CHECK(metric(reg, lost, {{"type", "external_channel"}, {"reason", "fast-client"}}).value_or(0) == 0);

  // Room again after popping: the next flows are accepted.
  for (int i = 0; i < 5; ++i) p.process(recs[0]);
  p.end_batch();
  CHECK(slow->delivered() == 15);
  CHECK(slow->dropped() == 90);
}

TEST_CASE("pipeline: flow filters", "[pipeline]") {
  Endpoint web;
  web.namespace_ = "shop";
  web.name = "web-1";
  Endpoint db;
  db.namespace_ = "data";
  db.name = "db-0";
  Flow f;
  f.verdict = Verdict::FORWARDED;
  f.origin = FlowSource::kPacketParser;
  f.src = *IpAddr::parse("10.0.0.1");
  f.dst = *IpAddr::parse("10.0.0.2");
  f.src_port = 4000;
  f.dst_port = 5432;
  f.source = &web;
  f.destination = &db;

  CHECK(FlowFilter{}.matches(f));
  CHECK(FlowFilter{.verdicts = {Verdict::DROPPED, Verdict::FORWARDED}}.matches(f));
  CHECK_FALSE(FlowFilter{.verdicts = {Verdict::DROPPED}}.matches(f));
  CHECK(FlowFilter{.origins = {FlowSource::kPacketParser}}.matches(f));
  CHECK_FALSE(FlowFilter{.origins = {FlowSource::kDns}}.matches(f));
  CHECK(FlowFilter{.namespaces = {"data"}}.matches(f));
  CHECK(FlowFilter{.namespaces = {"shop"}}.matches(f));
  CHECK_FALSE(FlowFilter{.namespaces = {"kube-system"}}.matches(f));
  CHECK(FlowFilter{.pod_names = {"db-0"}}.matches(f));
  CHECK(FlowFilter{.pod_names = {"shop/web-1"}}.matches(f));
  CHECK_FALSE(FlowFilter{.pod_names = {"data/web-1"}}.matches(f));
  CHECK_FALSE(FlowFilter{.pod_names = {"web"}}.matches(f));
  CHECK(FlowFilter{.ips = {*IpAddr::parse("10.0.0.2")}}.matches(f));
  CHECK_FALSE(FlowFilter{.ips = {*IpAddr::parse("10.0.0.3")}}.matches(f));
  CHECK(FlowFilter{.ports = {5432}}.matches(f));
  CHECK_FALSE(FlowFilter{.ports = {53}}.matches(f));
  // Every non-empty field must match.
  CHECK_FALSE(FlowFilter{.verdicts = {Verdict::FORWARDED}, .ports = {53}}.matches(f));
  CHECK(FlowFilter{.verdicts = {Verdict::FORWARDED}, .namespaces = {"data"}, .ports = {4000}}.matches(f));
  // Unknown endpoints match no namespace or pod filter.
  f.source = f.destination = nullptr;
  CHECK_FALSE(FlowFilter{.namespaces = {"data"}}.matches(f));
  CHECK_FALSE(FlowFilter{.pod_names = {"db-0"}}.matches(f));

  SECTION("through a subscription") {
    Pipeline p(nullptr, nullptr);
    auto drops = p.subscribe("drops", 100, FlowFilter{.verdicts = {Verdict::DROPPED}});
    auto https = p.subscribe("https", 100, FlowFilter{.ports = {443}});
    p.process(record_of(packet_event()));  // port 80
    p.process(record_of(drop_event()));    // port 443
    p.end_batch();
    CHECK(drops->delivered() == 1);
    CHECK(https->delivered() == 1);
    OwnedFlow of;
    REQUIRE(drops->try_pop(of));
    CHECK(of.flow().verdict == Verdict::DROPPED);
    CHECK_FALSE(drops->try_pop(of));
  }
}

TEST_CASE("pipeline: owned flows keep their endpoints, DNS data and drop reason", "[pipeline]") {
  auto cache = std::make_shared<IpCache>();
  cache->upsert(pod("default", "client", "10.0.0.5", "zone-a"));
  Pipeline p(cache, nullptr);
  auto names = std::make_shared<std::vector<std::string>>(7);
  (*names)[6] = "A_VERY_LONG_DROP_REASON_NAME_BEYOND_SSO";
  p.set_drop_reason_names(names);
  auto sub = p.subscribe("keep", 100);
  p.process(dns_record(example_response().span()));
  auto drop = drop_event();
  drop.tuple = tcp_tuple("10.0.0.5", "10.0.0.6");
  p.process(record_of(drop));
  p.end_batch();
  // The cache forgets the endpoint; the names table goes away too.
  cache->remove(pod("default", "client", "10.0.0.5")->key());
  names.reset();
  p.set_drop_reason_names(nullptr);

  std::vector<OwnedFlow> got;
  REQUIRE(sub->pop_batch(got, 10, 0ms) == 2);
  const Flow& dns = got[0].flow();
  REQUIRE(dns.source);
  CHECK(dns.source->name == "client");
  CHECK(dns.source == got[0].source().get());
  REQUIRE(dns.dns);
  CHECK(dns.dns->query == "example.com.");
  CHECK(dns.dns->ips.size() == 3);
  const Flow& d = got[1].flow();
  CHECK(d.drop_reason_desc == "A_VERY_LONG_DROP_REASON_NAME_BEYOND_SSO");
  CHECK(d.source->zone == "zone-a");

  SECTION("copies and moves repoint at their own data") {
    OwnedFlow copy = got[0];
    CHECK(copy.flow().dns != got[0].flow().dns);
    CHECK(copy.flow().dns->query == "example.com.");
    OwnedFlow moved = std::move(copy);
    CHECK(moved.flow().dns->query == "example.com.");
    CHECK(copy.flow().dns == nullptr);
    OwnedFlow d2;
    d2 = got[1];
    CHECK(d2.flow().drop_reason_desc.data() != got[1].flow().drop_reason_desc.data());
    CHECK(d2.flow().drop_reason_desc == got[1].flow().drop_reason_desc);
  }
  SECTION("an owned flow from a bare view copies the endpoints") {
    Endpoint ep;
    ep.name = "x";
    Flow v;
    v.source = &ep;
    OwnedFlow o(v);
    ep.name = "changed";
    CHECK(o.flow().source->name == "x");
  }
}

TEST_CASE("pipeline: pop_batch waits, wakes on a flow, on close, or times out", "[pipeline]") {
  Pipeline p(nullptr, nullptr);
  auto sub = p.subscribe("waiter", 16);
  std::vector<OwnedFlow> out;
  CHECK(sub->pop_batch(out, 8, 1ms) == 0);  // nothing: times out

  std::atomic<size_t> got{0};
  std::thread consumer([&] {
    std::vector<OwnedFlow> v;
    got = sub->pop_batch(v, 8, 30s);
  });
  // The consumer may or may not be waiting yet; either way it gets the flow.
  p.process(record_of(packet_event()));
  p.end_batch();
  consumer.join();
  CHECK(got == 1);

  std::atomic<bool> returned{false};
  std::thread closer_waiter([&] {
    std::vector<OwnedFlow> v;
    sub->pop_batch(v, 8, 30s);
    returned = true;
  });
  sub->close();
  closer_waiter.join();
  CHECK(returned);
  CHECK(sub->closed());
  // Closed subscriptions receive nothing more.
  p.process(record_of(packet_event()));
  p.end_batch();
  CHECK(sub->delivered() == 1);
}

TEST_CASE("pipeline: dropping the last handle closes the subscription", "[pipeline]") {
  metrics::Registry reg;
  Pipeline p(nullptr, &reg);
  auto sub = p.subscribe("gone", 1);
  sub.reset();
  for (int i = 0; i < 10; ++i) p.process(record_of(packet_event()));
  p.end_batch();
  // Not counted as drops: the subscriber left.
  CHECK(metric(reg, metrics::names::kLostEvents, {{"type", "external_channel"}, {"reason", "gone"}}) == 0);
}

TEST_CASE("pipeline: process_flow enriches and dispatches a flow built elsewhere", "[pipeline]") {
  auto cache = std::make_shared<IpCache>();
  cache->upsert(pod("default", "server", "10.0.0.2"));
  Pipeline p(cache, nullptr);
  auto sink = std::make_shared<CountingSink>();
  p.add_sink(sink);
  auto sub = p.subscribe("s", 4);
  Flow f;
  f.ip_version = IpVersion::IPv4;
  f.src = *IpAddr::parse("10.0.0.1");
  f.dst = *IpAddr::parse("10.0.0.2");
  p.process_flow(f);
  p.end_batch();
  CHECK(sink->flows == 1);
  CHECK(f.destination != nullptr);
  OwnedFlow of;
  REQUIRE(sub->try_pop(of));
  CHECK(of.flow().destination->name == "server");
  CHECK(of.destination() == cache->find(f.dst));  // shared with the cache, not copied
}

TEST_CASE("pipeline: sinks come and go while another thread processes", "[pipeline]") {
  Pipeline p(nullptr, nullptr);
  auto permanent = std::make_shared<CountingSink>();
  p.add_sink(permanent);
  constexpr int kBatches = 2000;
  constexpr uint64_t kPerBatch = 16;
  auto recs = packet_records(kPerBatch);
  std::atomic<bool> done{false};

  std::vector<std::shared_ptr<CountingSink>> transient;
  std::thread churn([&] {
    while (!done.load()) {
      auto s = std::make_shared<CountingSink>();
      transient.push_back(s);
      uint64_t id = p.add_sink(s);
      std::this_thread::yield();
      p.remove_sink(id);
    }
  });
  for (int b = 0; b < kBatches; ++b) {
    for (const auto& r : recs) p.process(r);
    p.end_batch();
  }
  done = true;
  churn.join();

  CHECK(permanent->flows == kBatches * kPerBatch);
  CHECK(permanent->batches == kBatches);
  // A sink joins and leaves at batch boundaries: it sees whole batches.
  uint64_t seen = 0;
  for (const auto& s : transient) {
    CHECK(s->flows == s->batches * kPerBatch);
    seen += s->batches;
  }
  INFO("transient sinks " << transient.size() << " saw " << seen << " batches");
  CHECK(p.stats().records == kBatches * kPerBatch);
}

TEST_CASE("pipeline: subscribers come and go while another thread processes", "[pipeline]") {
  Pipeline p(nullptr, nullptr);
  auto recs = packet_records(8);
  std::atomic<bool> done{false};
  std::vector<std::shared_ptr<Subscription>> subs;
  uint64_t popped = 0;
  std::thread churn([&] {
    std::vector<OwnedFlow> v;
    while (!done.load()) {
      auto s = p.subscribe("churn", 1 << 20);
      std::this_thread::yield();
      s->close();
      v.clear();
      popped += s->pop_batch(v, 1 << 20, 0ms);
      subs.push_back(s);
    }
  });
  for (int b = 0; b < 2000; ++b) {
    for (const auto& r : recs) p.process(r);
    p.end_batch();
  }
  done = true;
  churn.join();
  // A flow already on its way when close() ran may still land; once the
  // producer is done, everything accepted into a queue can be popped.
  uint64_t delivered = 0;
  std::vector<OwnedFlow> v;
  for (const auto& s : subs) {
    popped += s->pop_batch(v, 1 << 20, 0ms);
    delivered += s->delivered();
    CHECK(s->dropped() == 0);
  }
  CHECK(popped == delivered);
}

TEST_CASE("pipeline: process_ahead dispatches what process would, in order, by the batch end", "[pipeline]") {
  auto cache = std::make_shared<IpCache>();
  for (int i = 0; i < 250; i += 3) {
    const std::string ip = "10.0." + std::to_string(i) + ".1";
    cache->upsert(pod("default", ("client-" + std::to_string(i)).c_str(), ip.c_str()));
  }
  // Packets from 40 clients (a third cached), DNS queries for distinct names
  // (each flow must keep its own DNS data) and malformed records, mixed.
  std::vector<std::vector<std::byte>> recs;
  auto packets = packet_records(40);
  for (size_t i = 0; i < packets.size(); ++i) {
    recs.push_back(packets[i]);
    if (i % 3 == 0) {
      DnsMsg m;
      m.header(static_cast<uint16_t>(i), kFlagsQuery, 1, 0).question("host" + std::to_string(i) + ".example", 1);
      recs.push_back(dns_record(m.span()));
    }
    if (i % 7 == 0) recs.push_back(std::vector<std::byte>(3));  // shorter than any header
  }

  struct Seen : FlowSink {
    std::vector<std::string> flows;
    void on_flow(const Flow& f) noexcept override {
      flows.push_back(fmt::format("{} {} {} {}", f.source ? f.source->name : "-", f.src.to_string(), f.src_port,
                                  f.dns ? f.dns->query : "-"));
    }
  };
  auto run = [&](bool ahead, size_t& before_end) {
    Pipeline p(cache, nullptr);
    auto seen = std::make_shared<Seen>();
    p.add_sink(seen);
    for (const auto& r : recs) {
      if (ahead) {
        p.process_ahead(r, "test");
      } else {
        p.process(r, "test");
      }
    }
    before_end = seen->flows.size();
    p.end_batch();
    auto s = p.stats();
    CHECK(s.records == recs.size());
    return std::make_pair(seen->flows, s);
  };
  size_t direct_before = 0, ahead_before = 0;
  auto [direct, direct_stats] = run(false, direct_before);
  auto [ahead, ahead_stats] = run(true, ahead_before);
  REQUIRE(direct.size() == 40 + 14);
  CHECK(direct_before == direct.size());
  CHECK(ahead_before + Pipeline::kLookahead >= direct.size());  // at most kLookahead wait for the batch end
  CHECK(ahead_before < direct.size());
  CHECK(ahead == direct);
  CHECK(ahead_stats.decoded == direct_stats.decoded);
  CHECK(ahead_stats.enrich_hits == direct_stats.enrich_hits);
  CHECK(ahead_stats.enrich_misses == direct_stats.enrich_misses);
  for (size_t i = 0; i < std::size(direct_stats.rejected); ++i) CHECK(ahead_stats.rejected[i] == direct_stats.rejected[i]);
  CHECK(direct_stats.enrich_hits > 0);

  SECTION("process() and process_flow() first dispatch what is pending") {
    Pipeline p(cache, nullptr);
    auto seen = std::make_shared<Seen>();
    p.add_sink(seen);
    p.process_ahead(packets[0], "test");
    p.process_ahead(packets[3], "test");
    CHECK(seen->flows.empty());
    p.process(packets[6], "test");
    REQUIRE(seen->flows.size() == 3);
    CHECK(seen->flows[0].starts_with("client-0 "));
    CHECK(seen->flows[1].starts_with("client-3 "));
    CHECK(seen->flows[2].starts_with("client-6 "));
    p.process_ahead(packets[1], "test");
    Flow f;
    f.ip_version = IpVersion::IPv4;
    f.src = *IpAddr::parse("10.0.9.1");
    f.dst = *IpAddr::parse("10.0.0.2");
    p.process_flow(f);
    REQUIRE(seen->flows.size() == 5);
    CHECK(seen->flows[3].starts_with("- 10.0.1.1 "));
    CHECK(seen->flows[4].starts_with("client-9 "));
    p.end_batch();
  }
}
