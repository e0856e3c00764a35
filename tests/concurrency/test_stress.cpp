// Stress tests for the TSan build (retina_concurrency_tests): many threads
// on the engine, the pipeline and the HTTP server at once. Each still checks
// exact counts, so it fails on a lost flow as well as on a reported race.
#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "retina/abi/events.h"
#include "retina/api_server.hpp"
#include "retina/engine.hpp"
#include "retina/pipeline.hpp"
#include "support/fake_plugin.hpp"
#include "support/http_client.hpp"
#include "test_decoder_records.hpp"

using namespace std::chrono_literals;
using retina::OwnedFlow;
using retina::Pipeline;
using retina::Subscription;

namespace {

std::vector<std::byte> packet(uint8_t last_src_octet, uint16_t dport = 80) {
  retina_packet_event ev = retina::testing::packet_event();
  ev.tuple = retina::testing::tcp_tuple(fmt::format("10.0.0.{}", last_src_octet).c_str(), "10.0.0.2", 40000, dport);
  ev.obs_point = RETINA_OBS_TO_NETWORK;
  return retina::test::record_bytes(ev);
}

}  // namespace

TEST_CASE("stress: pipeline subscribers pop while the producer feeds and others churn",
          "[concurrency][pipeline]") {
  Pipeline p(nullptr, nullptr);
  constexpr int kBatches = 1500;
  constexpr int kPerBatch = 16;
  constexpr uint64_t kTotal = uint64_t{kBatches} * kPerBatch;
  std::vector<std::vector<std::byte>> recs;
  for (int i = 0; i < kPerBatch; ++i) recs.push_back(packet(i % 2 ? 1 : 7, static_cast<uint16_t>(80 + i % 3)));

  // Subscribed before the first batch: each sees every flow it matches,
  // delivered or dropped, and pops exactly what was delivered.
  struct Consumer {
    std::shared_ptr<Subscription> sub;
    uint64_t expected = 0;
    uint64_t popped = 0;
    uint64_t torn = 0;  // flows whose fields are not any flow that was sent
    std::thread thread;
  };
  std::vector<Consumer> consumers(3);
  consumers[0].sub = p.subscribe("all", 1 << 20);
  consumers[0].expected = kTotal;
  retina::FlowFilter from7;
  from7.ips = {*retina::IpAddr::parse("10.0.0.7")};
  consumers[1].sub = p.subscribe("from-7", 1 << 20, from7);
  consumers[1].expected = kTotal / 2;
  consumers[2].sub = p.subscribe("small", 8);  // falls behind: drops, counted
  consumers[2].expected = kTotal;

  std::atomic<bool> producing{true};
  for (auto& c : consumers) {
    c.thread = std::thread([&c, &producing] {
      std::vector<OwnedFlow> v;
      for (;;) {
        v.clear();
        const size_t n = c.sub->pop_batch(v, 64, 5ms);
        c.popped += n;
        for (const auto& f : v)
          if (f.flow().dst_port < 80 || f.flow().dst_port > 82 || f.flow().src_port != 40000) ++c.torn;
        if (n == 0 && !producing.load()) break;
      }
    });
  }
  std::thread churn([&] {
    while (producing.load()) {
      auto s = p.subscribe("churn", 64);
      std::vector<OwnedFlow> v;
      s->pop_batch(v, 64, 1ms);
      s->close();
    }
  });

  for (int b = 0; b < kBatches; ++b) {
    for (const auto& r : recs) p.process(r);
    p.end_batch();
  }
  producing = false;
  churn.join();
  for (auto& c : consumers) c.thread.join();

  CHECK(p.stats().records == kTotal);
  for (auto& c : consumers) {
    INFO(c.sub->name());
    std::vector<OwnedFlow> rest;
    c.popped += c.sub->pop_batch(rest, 1 << 20, 0ms);
    CHECK(c.sub->delivered() + c.sub->dropped() == c.expected);
    CHECK(c.popped == c.sub->delivered());
    CHECK(c.torn == 0);
  }
  CHECK(consumers[0].sub->dropped() == 0);
  CHECK(consumers[1].sub->dropped() == 0);
}

TEST_CASE("stress: engines start and stop under concurrent HTTP clients", "[concurrency][engine][api]") {
  for (int round = 0; round < 8; ++round) {
    INFO("round " << round);
    retina::Config cfg;
    cfg.enabled_plugins.clear();
    cfg.node_name = "node-s";
    retina::EngineOptions opts;
    opts.features = std::make_unique<retina::test::AllFeatures>();
    retina::test::FakePlugin::Behaviour b;
    b.pollable = round % 2 == 0;  // drained on readiness, or on the idle timer
    auto* feeder = new retina::test::FakePlugin("feeder", nullptr, b);
    opts.extra_plugins.emplace_back(feeder);
    auto e = retina::Engine::create(cfg, std::move(opts));
    REQUIRE(e);
    auto engine = std::move(*e);
    REQUIRE(engine->start());
    auto so = retina::ApiServerOptions::from(engine->config());
    so.host = "127.0.0.1";
    so.port = 0;
    so.flow_collect_window = 100ms;
    auto s = retina::ApiServer::start(retina::engine_backend(*engine), so);
    REQUIRE(s);
    auto server = std::move(*s);
    const uint16_t port = server->port();

    std::atomic<bool> running{true};
    std::atomic<uint64_t> pushed{0}, ok{0}, bad{0};
    std::thread feed([&] {
      while (running.load()) {
        feeder->source().push(packet(1));
        pushed.fetch_add(1);
        std::this_thread::sleep_for(100us);
      }
    });
    const char* targets[] = {"/metrics", "/healthz", "/readyz", "/flows?max=3", "/flows?follow=1&max=5"};
    std::vector<std::thread> clients;
    for (int c = 0; c < 5; ++c) {
      clients.emplace_back([&, c] {
        for (int i = 0; i < 6; ++i) {
          auto r = retina::test::http_get(port, targets[(c + i) % 5], 20s);
          (r.status == 200 ? ok : bad).fetch_add(1);
        }
      });
    }
    for (auto& t : clients) t.join();
    CHECK(bad.load() == 0);
    CHECK(ok.load() == 30);

    // Scrapes keep coming while the server and then the engine stop.
    std::thread late([&] {
      while (running.load()) (void)retina::test::http_get(port, "/metrics", 2s);
    });
    server->stop();
    running = false;
    feed.join();
    late.join();
    engine->stop();
    // stop() drains the sources: every record pushed reached the pipeline.
    CHECK(engine->pipeline().stats().records == pushed.load());
    CHECK(feeder->source().drained() == pushed.load());
  }
}
