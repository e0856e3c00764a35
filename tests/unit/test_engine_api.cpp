// The engine behind the API server: GET /flows streams what plugins feed.
#include <catch2/catch.hpp>

#include <sys/mount.h>
#include <unistd.h>

#include <filesystem>

#include <atomic>
#include <chrono>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <simdjson.h>

#include "retina/abi/events.h"
#include "retina/api_server.hpp"
#include "retina/engine.hpp"
#include "retina/metrics/registry.hpp"
#include "support/fake_apiserver.hpp"  // wait_until
#include "support/fake_plugin.hpp"
#include "support/http_client.hpp"
#include "support/privileged.hpp"
#include "support/prom_text.hpp"
#include "test_decoder_records.hpp"

using namespace std::chrono_literals;

namespace {

// A TCP SYN from 10.0.0.<last_src_octet> to 10.0.0.2:80, seen leaving the node.
std::vector<std::byte> packet(uint8_t last_src_octet) {
  retina_packet_event ev = retina::testing::packet_event();
  ev.tuple = retina::testing::tcp_tuple(fmt::format("10.0.0.{}", last_src_octet).c_str(), "10.0.0.2");
  ev.obs_point = RETINA_OBS_TO_NETWORK;
  return retina::test::record_bytes(ev);
}

// A plugin whose source has no fd: the engine drains it on its idle timer.
retina::test::FakePlugin* make_feeder() {
  retina::test::FakePlugin::Behaviour b;
  b.pollable = false;
  return new retina::test::FakePlugin("feeder", nullptr, b);
}

struct Rig {
  retina::test::FakePlugin* feeder = nullptr;
  std::unique_ptr<retina::Engine> engine;
  std::unique_ptr<retina::ApiServer> server;
  std::atomic<bool> feeding{true};
  std::thread feed;

  explicit Rig(size_t max_flow_streams = 256) {
    retina::Config cfg;
    cfg.enabled_plugins.clear();
    cfg.node_name = "node-a";
    retina::EngineOptions opts;
    opts.features = std::make_unique<retina::test::AllFeatures>();
    feeder = make_feeder();
    opts.extra_plugins.emplace_back(feeder);
    auto e = retina::Engine::create(cfg, std::move(opts));
    REQUIRE(e);
    engine = std::move(*e);
    REQUIRE(engine->start());
    auto so = retina::ApiServerOptions::from(engine->config());
    so.host = "127.0.0.1";
    so.port = 0;
    so.max_flow_streams = max_flow_streams;
    auto s = retina::ApiServer::start(retina::engine_backend(*engine), so);
    REQUIRE(s);
    server = std::move(*s);
    // A steady trickle of flows from 10.0.0.1, with one from 10.0.0.7 in ten.
    feed = std::thread([this] {
      for (uint64_t i = 0; feeding.load(); ++i) {
        feeder->source().push(packet(i % 10 == 0 ? 7 : 1));
        std::this_thread::sleep_for(200us);
      }
    });
  }
  ~Rig() {
    feeding = false;
    feed.join();
    server->stop();
    engine->stop();
  }
  uint16_t port() const { return server->port(); }
};

std::vector<std::string> lines_of(const std::string& body) {
  std::vector<std::string> out;
  std::istringstream in(body);
  for (std::string l; std::getline(in, l);)
    if (!l.empty()) out.push_back(l);
  return out;
}

}  // namespace

TEST_CASE("engine api: GET /flows returns Hubble JSON lines", "[engine][api]") {
  Rig rig;
  auto r = retina::test::http_get(rig.port(), "/flows?max=5");
  REQUIRE(r.status == 200);
  CHECK(r.header("Content-Type") == "application/x-ndjson");
  const auto lines = lines_of(r.body);
  REQUIRE(lines.size() == 5);
  simdjson::dom::parser parser;
  for (const auto& l : lines) {
    simdjson::dom::element doc;
    REQUIRE(parser.parse(l).get(doc) == simdjson::SUCCESS);
    CHECK(std::string_view(doc["flow"]["verdict"]) == "FORWARDED");
    CHECK(std::string_view(doc["flow"]["IP"]["destination"]) == "10.0.0.2");
    CHECK(std::string_view(doc["node_name"]) == "node-a");
  }
}

TEST_CASE("engine api: /flows filters and follows", "[engine][api]") {
  Rig rig;
  auto r = retina::test::http_get(rig.port(), "/flows?ip=10.0.0.7&max=3");
  REQUIRE(r.status == 200);
  auto lines = lines_of(r.body);
  REQUIRE(lines.size() == 3);
  for (const auto& l : lines) CHECK(l.find("\"source\":\"10.0.0.7\"") != std::string::npos);

  r = retina::test::http_get(rig.port(), "/flows?follow=1&max=4");
  REQUIRE(r.status == 200);
  CHECK(r.header("Transfer-Encoding") == "chunked");
  CHECK(lines_of(r.body).size() == 4);

  // Nothing matches: the collection window ends with an empty answer.
  r = retina::test::http_get(rig.port(), "/flows?port=9");
  REQUIRE(r.status == 200);
  CHECK(r.body.empty());
}

TEST_CASE("engine api: many followers at once, /metrics still served", "[engine][api]") {
  constexpr int kFollowers = 8;
  Rig rig(kFollowers);
  std::atomic<int> done{0};
  std::vector<retina::test::HttpResponse> got(kFollowers);
  std::vector<std::thread> followers;
  for (int i = 0; i < kFollowers; ++i) {
    followers.emplace_back([&, i] {
      // The probes below may hold a slot for a moment: retry until served.
      do {
        got[i] = retina::test::http_get(rig.port(), "/flows?follow=1&max=3000", 60s);
      } while (got[i].status == 503);
      ++done;
    });
  }
  // While they stream, one more is turned away, and scrapes work.
  bool refused = false;
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  while (!refused && done.load() == 0 && std::chrono::steady_clock::now() < deadline) {
    auto extra = retina::test::http_get(rig.port(), "/flows?follow=1&max=1");
    if (extra.status == 503) {
      refused = true;
      CHECK(extra.body.find("too many flow streams") != std::string::npos);
      CHECK(retina::test::http_get(rig.port(), "/metrics", 5s).status == 200);
    }
  }
  CHECK((refused || done.load() > 0));
  CHECK(retina::test::http_get(rig.port(), "/metrics").status == 200);
  for (auto& t : followers) t.join();
  for (const auto& r : got) {
    CHECK(r.status == 200);
    CHECK(lines_of(r.body).size() == 3000);
  }
  // The slots are free again.
  CHECK(retina::test::http_get(rig.port(), "/flows?follow=1&max=1").status == 200);
}

namespace {

struct FlowLogRun {
  std::string text;
  uint64_t pipeline_records = 0;
  std::string metrics;
};

// Runs an engine with flowLogPath = `path`, feeds `n` records, stops it.
FlowLogRun run_flow_log(const std::string& path, int n, uint32_t max_size_mb = 0, uint32_t max_files = 5) {
  retina::Config cfg;
  cfg.enabled_plugins.clear();
  cfg.node_name = "node-b";
  cfg.flow_log_path = path;
  cfg.flow_log_max_size_mb = max_size_mb;
  cfg.flow_log_max_files = max_files;
  retina::EngineOptions opts;
  opts.features = std::make_unique<retina::test::AllFeatures>();
  auto* feeder = make_feeder();
  opts.extra_plugins.emplace_back(feeder);
  auto e = retina::Engine::create(cfg, std::move(opts));
  REQUIRE(e);
  auto& engine = *e;
  REQUIRE(engine->start());
  for (int i = 0; i < n; ++i) feeder->source().push(packet(1));
  engine->stop();  // drains the sources, then the flow log's queue
  FlowLogRun r;
  r.pipeline_records = engine->pipeline().stats().records;
  r.metrics = engine->metrics().expose();
  return r;
}

}  // namespace

TEST_CASE("engine api: flowLogPath gets every flow as a JSON line", "[engine][flowlog]") {
  char tmpl[] = "/tmp/retina-flowlog-XXXXXX";
  const int fd = ::mkstemp(tmpl);
  REQUIRE(fd >= 0);
  ::close(fd);
  const std::string path = tmpl;
  auto run = run_flow_log(path, 5000);
  CHECK(run.pipeline_records == 5000);
  std::ifstream in(path);
  std::string line;
  size_t lines = 0;
  simdjson::dom::parser parser;
  while (std::getline(in, line)) {
    simdjson::dom::element doc;
    REQUIRE(parser.parse(line).get(doc) == simdjson::SUCCESS);
    CHECK(std::string_view(doc["node_name"]) == "node-b");
    ++lines;
  }
  CHECK(lines == 5000);
  ::unlink(path.c_str());
}

TEST_CASE("engine api: flows the flow log cannot write are counted as lost", "[engine][flowlog]") {
  auto run = run_flow_log("/dev/full", 300);  // every write fails with ENOSPC
  CHECK(run.pipeline_records == 300);
  const auto prom = retina::test::parse_prom_text(run.metrics);
  REQUIRE(prom.error.empty());
  CHECK(prom.value("controlplane_networkobservability_lost_events_counter",
                   {{"type", "external_channel"}, {"reason", "flowlog"}}) == 300);
}

namespace {

// Whole JSON lines in a file: their count, or -1 when one does not parse.
long json_lines(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  long n = 0;
  simdjson::dom::parser parser;
  while (std::getline(in, line)) {
    simdjson::dom::element doc;
    if (parser.parse(line).get(doc) != simdjson::SUCCESS) return -1;
    ++n;
  }
  return n;
}

std::string scratch_dir() {
  char tmpl[] = "/tmp/retina-flowlog-dir-XXXXXX";
  REQUIRE(::mkdtemp(tmpl) != nullptr);
  return tmpl;
}

}  // namespace

TEST_CASE("engine api: the flow log rotates by size and keeps flowLogMaxFiles files", "[engine][flowlog]") {
  const std::string dir = scratch_dir();
  const std::string path = dir + "/flows.jsonl";
  // About 2.4 MB of lines against a 1 MB limit: two rotations.
  auto run = run_flow_log(path, 6000, 1, 10);
  CHECK(run.pipeline_records == 6000);
  long total = 0;
  size_t files = 0;
  for (const auto& name : {path, path + ".1", path + ".2", path + ".3"}) {
    if (!std::filesystem::exists(name)) continue;
    ++files;
    CHECK(std::filesystem::file_size(name) <= (1u << 20));
    const long n = json_lines(name);
    REQUIRE(n > 0);
    total += n;
  }
  CHECK(total == 6000);
  const auto prom = retina::test::parse_prom_text(run.metrics);
  REQUIRE(prom.error.empty());
  const auto rotations = prom.value("retina_flow_log_rotations_total");
  REQUIRE(rotations.has_value());
  CHECK(*rotations == static_cast<double>(files - 1));
  CHECK(files >= 3);

  // With one rotated file kept, the oldest lines go and no .2 appears.
  std::filesystem::remove_all(dir);
  std::filesystem::create_directory(dir);
  run = run_flow_log(path, 6000, 1, 1);
  CHECK(std::filesystem::exists(path + ".1"));
  CHECK_FALSE(std::filesystem::exists(path + ".2"));
  CHECK(json_lines(path) > 0);
  CHECK(json_lines(path + ".1") > 0);
  std::filesystem::remove_all(dir);
}

TEST_CASE("engine api: a flow log cut inside a line is repaired when opened", "[engine][flowlog]") {
  const std::string dir = scratch_dir();
  const std::string path = dir + "/flows.jsonl";
  {
    std::ofstream out(path);
    out << "{\"flow\":{}}\n{\"flow\":{\"verdict\":\"FORW";  // a write cut short by a kill
  }
  run_flow_log(path, 10);
  CHECK(json_lines(path) == 11);
  std::filesystem::remove_all(dir);
}

TEST_CASE("engine api: a full disk is reported, not fatal, and writing resumes", "[engine][flowlog][privileged]") {
  RETINA_REQUIRE_PRIVILEGED();
  const std::string dir = scratch_dir();
  REQUIRE(::mount("tmpfs", dir.c_str(), "tmpfs", 0, "size=256k") == 0);
  struct Unmount {
    std::string dir;
    ~Unmount() {
      ::umount2(dir.c_str(), MNT_DETACH);
      ::rmdir(dir.c_str());
    }
  } unmount{dir};
  const std::string path = dir + "/flows.jsonl";
  {
    // Fill the file system to the last byte.
    std::ofstream filler(dir + "/filler", std::ios::binary);
    const std::string block(4096, 'f');
    while (filler.write(block.data(), block.size())) {
    }
  }
  retina::Config cfg;
  cfg.enabled_plugins.clear();
  cfg.flow_log_path = path;
  retina::EngineOptions opts;
  opts.features = std::make_unique<retina::test::AllFeatures>();
  auto* feeder = make_feeder();
  opts.extra_plugins.emplace_back(feeder);
  auto e = retina::Engine::create(cfg, std::move(opts));
  REQUIRE(e);
  auto& engine = *e;
  REQUIRE(engine->start());
  const auto lost = [&] {
    const auto prom = retina::test::parse_prom_text(engine->metrics().expose());
    return prom.value("controlplane_networkobservability_lost_events_counter",
                      {{"type", "external_channel"}, {"reason", "flowlog"}})
        .value_or(0);
  };
  const auto failing = [&] {
    return retina::test::parse_prom_text(engine->metrics().expose()).value("retina_flow_log_failing").value_or(-1);
  };

  for (int i = 0; i < 300; ++i) feeder->source().push(packet(1));
  REQUIRE(retina::test::wait_until([&] { return lost() == 300; }, 10s));
  auto h = engine->flow_log_health();
  CHECK(h.state == "failing");
  CHECK(h.last_error.find("No space left on device") != std::string::npos);
  CHECK(h.written == 0);
  CHECK(failing() == 1);
  CHECK(engine->ready());  // the engine runs on
  CHECK(json_lines(path) == 0);

  std::filesystem::remove(dir + "/filler");
  for (int i = 0; i < 300; ++i) feeder->source().push(packet(2));
  REQUIRE(retina::test::wait_until([&] { return engine->flow_log_health().written == 300; }, 10s));
  h = engine->flow_log_health();
  CHECK(h.state == "writing");
  CHECK(failing() == 0);
  CHECK(lost() == 300);
  engine->stop();
  CHECK(json_lines(path) == 300);
}
