#include <catch2/catch.hpp>

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <simdjson.h>

#include "retina/api_server.hpp"
#include "retina/metrics/registry.hpp"
#include "support/http_client.hpp"
#include "support/prom_text.hpp"

using retina::ApiServer;
using retina::ApiServerBackend;
using retina::ApiServerOptions;
using retina::PluginState;
using retina::PluginStatus;
using retina::test::http_get;
using retina::test::http_raw;
using retina::test::http_request;

namespace {

struct Fixture {
  retina::metrics::Registry registry;
  std::vector<PluginStatus> plugins{{"packetparser", PluginState::kRunning, ""},
                                    {"dropreason", PluginState::kDisabled, "kernel lacks BTF"}};
  std::atomic<bool> ready{true};
  std::unique_ptr<ApiServer> server;

  explicit Fixture(ApiServerOptions opts = {}) {
    registry.counter("controlplane_networkobservability_parsed_packets_counter", "Packets parsed").with({}).add(42);
    registry.gauge("networkobservability_forward_count", "Forwarded packets", {"direction"})
        .with({"ingress"})
        .set(7);
    ApiServerBackend b;
    b.metrics = [this](std::string& out) { registry.expose(out); };
    b.plugins = [this] { return plugins; };
    b.ready = [this] { return ready.load(); };
    opts.host = "127.0.0.1";
    opts.port = 0;
    auto s = ApiServer::start(std::move(b), std::move(opts));
    REQUIRE(s.has_value());
    server = std::move(*s);
    REQUIRE(server->port() != 0);
  }
  uint16_t port() const { return server->port(); }
};

}  // namespace

TEST_CASE("api: /metrics serves Prometheus text", "[api]") {
  Fixture f;
  auto r = http_get(f.port(), "/metrics");
  REQUIRE(r.status == 200);
  CHECK(r.header("Content-Type") == "text/plain; version=0.0.4; charset=utf-8");
  CHECK(r.body.find("# HELP controlplane_networkobservability_parsed_packets_counter Packets parsed\n") !=
        std::string::npos);
  CHECK(r.body.find("# TYPE controlplane_networkobservability_parsed_packets_counter counter\n") !=
        std::string::npos);
  CHECK(r.body.find("controlplane_networkobservability_parsed_packets_counter 42\n") != std::string::npos);
  CHECK(r.body.find("# TYPE networkobservability_forward_count gauge\n") != std::string::npos);
  CHECK(r.body.find("networkobservability_forward_count{direction=\"ingress\"} 7\n") != std::string::npos);
  const auto prom = retina::test::parse_prom_text(r.body);  // strict: families, HELP/TYPE, contiguity
  REQUIRE(prom.error.empty());
  CHECK(prom.value("controlplane_networkobservability_parsed_packets_counter") == 42);

  // HEAD answers like GET, without a body.
  auto h = http_request(f.port(), "HEAD", "/metrics");
  CHECK(h.status == 200);
  CHECK(h.body.empty());
}

TEST_CASE("api: /healthz reports each plugin", "[api]") {
  Fixture f;
  auto r = http_get(f.port(), "/healthz");
  REQUIRE(r.status == 200);
  CHECK(r.header("Content-Type") == "application/json");
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  REQUIRE(parser.parse(r.body).get(doc) == simdjson::SUCCESS);
  CHECK(std::string_view(doc["status"]) == "ok");
  simdjson::dom::array plugins = doc["plugins"];
  REQUIRE(plugins.size() == 2);
  CHECK(std::string_view(plugins.at(0)["name"]) == "packetparser");
  CHECK(std::string_view(plugins.at(0)["state"]) == "running");
  CHECK(std::string_view(plugins.at(0)["reason"]).empty());
  CHECK(std::string_view(plugins.at(1)["state"]) == "disabled");
  CHECK(std::string_view(plugins.at(1)["reason"]) == "kernel lacks BTF");

  // A failed plugin turns health to 503; its reason is escaped JSON.
  f.plugins.push_back({"dns", PluginState::kFailed, "bpf_prog_load(\"dns\"): Permission denied\n"});
  r = http_get(f.port(), "/healthz");
  REQUIRE(r.status == 503);
  REQUIRE(parser.parse(r.body).get(doc) == simdjson::SUCCESS);
  CHECK(std::string_view(doc["status"]) == "failed");
  CHECK(std::string_view(doc["plugins"].at(2)["reason"]) == "bpf_prog_load(\"dns\"): Permission denied\n");
}

TEST_CASE("api: /readyz follows the engine", "[api]") {
  Fixture f;
  CHECK(http_get(f.port(), "/readyz").status == 200);
  f.ready = false;
  auto r = http_get(f.port(), "/readyz");
  CHECK(r.status == 503);
  CHECK(r.body == "not ready\n");
}

TEST_CASE("api: unknown paths, wrong methods, bad requests", "[api]") {
  Fixture f;
  CHECK(http_get(f.port(), "/nope").status == 404);
  CHECK(http_get(f.port(), "/").status == 404);
  CHECK(http_get(f.port(), "/metrics/extra").status == 404);

  auto r = http_request(f.port(), "POST", "/metrics");
  CHECK(r.status == 405);
  CHECK(r.header("Allow") == "GET, HEAD");
  CHECK(http_request(f.port(), "DELETE", "/healthz").status == 405);
  CHECK(http_request(f.port(), "PUT", "/flows").status == 405);
  CHECK(http_request(f.port(), "POST", "/unknown").status == 404);

  // Not HTTP at all.
  r = http_raw("127.0.0.1", f.port(), "\x01\x02garbage\r\n\r\n");
  CHECK((r.status == 400 || r.status == 0));

  // The server keeps serving afterwards.
  CHECK(http_get(f.port(), "/metrics").status == 200);
}

TEST_CASE("api: oversized requests are refused", "[api]") {
  ApiServerOptions opts;
  opts.max_header_bytes = 4096;
  Fixture f(opts);

  // A body beyond the limit.
  const std::string big(1 << 20, 'x');
  auto r = http_raw("127.0.0.1", f.port(),
                    fmt::format("POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
                                big.size(), big));
  CHECK(r.status == 413);

  // A request line beyond httplib's URI limit.
  r = http_get(f.port(), "/metrics?" + std::string(20000, 'a'));
  CHECK((r.status == 414 || r.status == 400));

  // Many header lines, each small, together beyond max_header_bytes.
  std::string req = "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n";
  for (int i = 0; i < 100; ++i) req += fmt::format("X-Filler-{}: {}\r\n", i, std::string(100, 'y'));
  req += "\r\n";
  r = http_raw("127.0.0.1", f.port(), req);
  CHECK(r.status == 431);

  CHECK(http_get(f.port(), "/metrics").status == 200);
}

TEST_CASE("api: bad /flows query parameters answer 400 with the reason", "[api]") {
  Fixture f;
  auto r = http_get(f.port(), "/flows?verdict=SOMETIMES");
  CHECK(r.status == 400);
  CHECK(r.body.find("verdict: expected FORWARDED, DROPPED, ERROR, RETRANSMISSION or DNS, got \"SOMETIMES\"") !=
        std::string::npos);
  r = http_get(f.port(), "/flows?max=0");
  CHECK(r.status == 400);
  r = http_get(f.port(), "/flows?ip=10.0.0.300");
  CHECK(r.status == 400);
  r = http_get(f.port(), "/flows?colour=blue");
  CHECK(r.status == 400);
  CHECK(r.body.find("unknown query parameter \"colour\"") != std::string::npos);
  r = http_get(f.port(), "/flows?port=%zz");
  CHECK(r.status == 400);
}

TEST_CASE("api: port 0 binds an ephemeral port, and stop is idempotent", "[api]") {
  Fixture a;
  Fixture b;
  CHECK(a.port() != b.port());
  const uint16_t port = a.port();
  a.server->stop();
  a.server->stop();
  auto r = http_get(port, "/metrics", std::chrono::milliseconds(500));
  CHECK(r.status == 0);
}

TEST_CASE("api: binding a port in use fails with the reason", "[api]") {
  Fixture a;
  ApiServerBackend b;
  b.metrics = [](std::string&) {};
  b.plugins = [] { return std::vector<PluginStatus>{}; };
  b.ready = [] { return true; };
  ApiServerOptions opts;
  opts.host = "127.0.0.1";
  opts.port = a.port();
  auto s = ApiServer::start(std::move(b), opts);
  REQUIRE_FALSE(s.has_value());
  CHECK(s.error().message.find(fmt::format("bind(127.0.0.1:{})", a.port())) == 0);
}

TEST_CASE("api: options are checked", "[api]") {
  ApiServerBackend empty;
  CHECK_FALSE(ApiServer::start(empty, {}).has_value());
  ApiServerBackend b;
  b.metrics = [](std::string&) {};
  b.plugins = [] { return std::vector<PluginStatus>{}; };
  b.ready = [] { return true; };
  ApiServerOptions opts;
  opts.port = 0;
  opts.threads = 1;  // a follower would leave no thread for /metrics
  CHECK_FALSE(ApiServer::start(b, opts).has_value());

  retina::Config c;
  c.api_server_host = "127.0.0.1";
  c.api_server_port = 1234;
  c.node_name = "n1";
  auto o = ApiServerOptions::from(c);
  CHECK(o.host == "127.0.0.1");
  CHECK(o.port == 1234);
  CHECK(o.node_name == "n1");
}
