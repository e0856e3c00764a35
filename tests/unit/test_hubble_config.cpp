#include <catch2/catch.hpp>

#include "retina/config.hpp"
#include "retina/hubble.hpp"

using namespace retina;

TEST_CASE("hubble config: keys, defaults and errors naming the key", "[hubble][config]") {
  const Config d;
  CHECK_FALSE(d.enable_hubble);
  CHECK(d.hubble_listen_address == ":4244");
  CHECK(d.hubble_metrics_server == ":9965");
  CHECK(d.hubble_event_buffer_capacity == 4096);
  CHECK(d.validate());

  auto c = load_config_yaml(
      "enableHubble: true\n"
      "hubbleListenAddress: 127.0.0.1:0\n"
      "hubbleMetricsServer: \"\"\n"
      "hubbleMetrics: [\"flow:sourceContext=pod;destinationContext=pod\", \"dns:query\", drop, tcp, port-distribution]\n"
      "hubbleEventBufferCapacity: 1024\n"
      "hubbleTLSCertFile: /tls/server.crt\n"
      "hubbleTLSKeyFile: /tls/server.key\n"
      "hubbleTLSClientCAFiles: [/tls/ca.crt]\n"
      "nodeName: n1\n");
  INFO((c ? std::string() : c.error().message));
  REQUIRE(c);
  CHECK(c->enable_hubble);
  CHECK(c->hubble_listen_address == "127.0.0.1:0");
  CHECK(c->hubble_metrics_server.empty());
  CHECK(c->hubble_metrics.size() == 5);
  CHECK(c->hubble_event_buffer_capacity == 1024);
  CHECK(c->hubble_tls_client_ca_files == std::vector<std::string>{"/tls/ca.crt"});
  const auto o = HubbleOptions::from(*c);
  CHECK(o.listen_address == "127.0.0.1:0");
  CHECK(o.buffer_capacity == 1024);
  CHECK(o.node_name == "n1");
  CHECK(o.metrics_address.empty());
  CHECK(o.tls_cert_file == "/tls/server.crt");

  const std::pair<const char*, const char*> bad[] = {
      {"hubbleListenAddress: 4244", "hubbleListenAddress"},
      {"hubbleListenAddress: \":99999\"", "hubbleListenAddress"},
      {"hubbleMetricsServer: \"a b:1\"", "hubbleMetricsServer"},
      {"hubbleMetrics: [flows]", "hubbleMetrics"},
      {"hubbleMetrics: [\"flow:sourceContext=identity\"]", "hubbleMetrics"},
      {"hubbleEventBufferCapacity: 0", "hubbleEventBufferCapacity"},
      {"hubbleEventBufferCapacity: 9999999", "hubbleEventBufferCapacity"},
      {"hubbleTLSCertFile: /a.crt", "hubbleTLSKeyFile"},
      {"hubbleTLSClientCAFiles: [/ca.crt]", "hubbleTLSClientCAFiles"},
      {"enableHubble: maybe", "enableHubble"},
  };
  for (const auto& [yaml, key] : bad) {
    INFO(yaml);
    auto r = load_config_yaml(yaml);
    REQUIRE_FALSE(r);
    CHECK(r.error().kind == Error::Kind::kInvalidArgument);
    CHECK_THAT(r.error().message, Catch::Contains(key));
  }
}

TEST_CASE("hubble server: unreadable TLS files are configuration errors", "[hubble][config]") {
  Pipeline p(nullptr, nullptr);
  HubbleOptions o;
  o.listen_address = "127.0.0.1:0";
  o.metrics_address = "";
  o.tls_cert_file = "/nonexistent/server.crt";
  o.tls_key_file = "/nonexistent/server.key";
  auto s = HubbleServer::start(p, o);
  REQUIRE_FALSE(s);
  CHECK(s.error().kind == Error::Kind::kInvalidArgument);
  CHECK_THAT(s.error().message, Catch::Contains("hubbleTLSCertFile"));
}
