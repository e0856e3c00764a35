// The one-table-per-concept registries: plugins, event sources, advanced
// metrics; what reads them; and the services plugins declare.
#include <catch2/catch.hpp>

#include <set>
#include <string>

#include "metrics/adv_metrics.hpp"
#include "plugins/services.hpp"
#include "retina/abi/events.h"
#include "retina/config.hpp"
#include "retina/flow_sources.hpp"
#include "retina/metrics/advanced.hpp"
#include "retina/metrics/names.hpp"
#include "retina/metrics/registry.hpp"
#include "retina/pipeline.hpp"
#include "retina/plugin.hpp"
#include "test_decoder_records.hpp"

using namespace retina;
using namespace retina::testing;

TEST_CASE("registries: every flow source has one row, found by name, enum and event type", "[registry]") {
  const auto sources = flow_sources();
  REQUIRE(sources.size() == static_cast<size_t>(FlowSource::kCount));
  std::set<std::string_view> names;
  std::set<uint16_t> types;
  for (size_t i = 0; i < sources.size(); ++i) {
    CHECK(static_cast<size_t>(sources[i].source) == i);
    CHECK(names.insert(sources[i].name).second);
    CHECK(types.insert(sources[i].event_type).second);
    CHECK(to_string(sources[i].source) == sources[i].name);
    CHECK(flow_source_from(sources[i].name) == sources[i].source);
    REQUIRE(flow_source_of_event(sources[i].event_type));
    CHECK(flow_source_of_event(sources[i].event_type)->source == sources[i].source);
  }
  CHECK(flow_source_of_event(RETINA_EV_DNS)->name == "dns");
  CHECK_FALSE(flow_source_of_event(RETINA_EV_MAX));
  CHECK_FALSE(flow_source_from("kernel"));
  CHECK(to_string(FlowSource::kCount) == "unknown");
  CHECK(flow_source_names() == "packetparser, dropreason, dns or tcpretrans");
}

TEST_CASE("registries: each flow source is emitted by the plugin of its name", "[registry]") {
  std::set<FlowSource> emitted;
  for (const PluginInfo& p : builtin_plugins()) {
    REQUIRE(p.factory);
    auto plugin = p.factory();
    REQUIRE(plugin);
    CHECK(plugin->name() == p.name);
    CHECK(find_builtin_plugin(p.name) == &p);
    for (FlowSource s : p.emits) {
      CHECK(to_string(s) == p.name);
      CHECK(emitted.insert(s).second);
    }
  }
  CHECK(emitted.size() == static_cast<size_t>(FlowSource::kCount));
  CHECK_FALSE(find_builtin_plugin("nosuch"));
  CHECK_FALSE(make_builtin_plugin("nosuch"));
  CHECK(builtin_plugin_names().size() == builtin_plugins().size());
}

TEST_CASE("registries: enabledPlugin is validated against the plugin table", "[registry][config]") {
  Config c;
  c.enabled_plugins.clear();
  for (const PluginInfo& p : builtin_plugins()) c.enabled_plugins.emplace_back(p.name);
  CHECK(c.validate());
  c.enabled_plugins.push_back("nosuch");
  auto st = c.validate();
  REQUIRE_FALSE(st);
  REQUIRE(st.error().problems.size() == 1);
  CHECK(st.error().problems[0].path == "enabledPlugin");
  CHECK(st.error().problems[0].message.starts_with("unknown plugin \"nosuch\""));
}

TEST_CASE("registries: config.yaml errors carry each problem with its key path", "[registry][config]") {
  auto r = load_config_yaml("enabledPlugin: [nosuch]\nenablePodLevel: maybe\nfilterMapMaxEntries: 0\n");
  REQUIRE_FALSE(r);
  const auto& problems = r.error().problems;
  REQUIRE(problems.size() == 3);
  CHECK(problems[0] == Problem{"enablePodLevel", "expected a boolean (true or false), got \"maybe\""});
  CHECK(problems[1].path == "enabledPlugin");
  CHECK(problems[2] == Problem{"filterMapMaxEntries", "must be from 1 to 16777216, got 0"});
  // The message is the same lines joined.
  CHECK(r.error().message.find("enablePodLevel: expected a boolean") == 0);
}

TEST_CASE("registries: advanced metrics come from one table", "[registry][advanced]") {
  const auto table = metrics::adv::metric_table();
  REQUIRE(table.size() == metrics::kAdvMetricCount);
  for (size_t i = 0; i < table.size(); ++i) {
    CHECK(static_cast<size_t>(table[i].metric) == i);
    CHECK(metrics::adv_metric_name(table[i].metric) == table[i].name);
    CHECK(metrics::adv_metric_short_name(table[i].metric) == table[i].short_name);
    CHECK(table[i].name.starts_with("networkobservability_adv_"));
  }
  CHECK(metrics::adv_metric_name(metrics::AdvMetric::kTcpRetrans) == metrics::names::kAdvTcpRetransCount);
  const auto names = metrics::adv::configuration_names();
  CHECK(names == std::vector<std::string_view>{"forward", "forward_count", "forward_bytes", "drop", "drop_count",
                                               "drop_bytes", "tcpflags", "tcp_flag_gauges", "tcpretrans",
                                               "tcp_retransmission_count", "dns", "dns_request_count",
                                               "dns_response_count", "node_apiserver_latency",
                                               "node_apiserver_tcp_handshake_latency", "node_apiserver_no_response"});
  // Paths below the configuration, for config.yaml and the CRD alike.
  MetricsContextOption bad;
  bad.metric_name = "forwrd";
  bad.source_labels = {"ip", "ip"};
  auto problems = metrics::adv::configuration_problems({bad}, {{"a"}, {"b"}});
  REQUIRE(problems.size() == 3);
  CHECK(problems[0].path == "contextOptions[0].metricName");
  CHECK(problems[1] == Problem{"contextOptions[0].sourceLabels", "label \"ip\" listed twice"});
  CHECK(problems[2] == Problem{"namespaces", "include and exclude are mutually exclusive"});
}

TEST_CASE("registries: an unnamed record's rejects are labelled by its header's source", "[registry][pipeline]") {
  metrics::Registry reg;
  Pipeline p(nullptr, &reg);
  auto cut = drop_event();
  p.process(record_of(cut, 24));       // a drop header, too short for a drop event
  p.process(std::vector<std::byte>(4));  // no header at all
  p.end_batch();
  const std::string text = reg.expose();
  CHECK(text.find("type=\"decoder\",reason=\"dropreason\"} 1") != std::string::npos);
  CHECK(text.find("type=\"decoder\",reason=\"unknown\"} 1") != std::string::npos);
}

TEST_CASE("registries: a plugin's context lacks nothing it declared", "[registry][plugin]") {
  PluginContext ctx;
  auto st = check_context("x", PluginNeeds{.features = true}, ctx);
  REQUIRE_FALSE(st);
  CHECK(st.error().kind == Error::Kind::kInternal);
  CHECK(st.error().message.find("feature detector") != std::string::npos);
  CHECK(check_context("x", PluginNeeds{}, ctx));

  PluginServices services;
  REQUIRE(services.provide(PluginNeeds{.features = true, .ip_cache = true}, ctx));
  CHECK(ctx.features == &services.features());
  CHECK(ctx.cache);
  CHECK(check_context("x", PluginNeeds{.features = true, .ip_cache = true}, ctx));
  // A detector the caller set is kept.
  PluginContext own;
  own.features = &services.features();
  FeatureDetector* mine = own.features;
  REQUIRE(services.provide(PluginNeeds{.features = true}, own));
  CHECK(own.features == mine);

  auto k = services.provide(PluginNeeds{.kubernetes = true}, ctx);
  REQUIRE_FALSE(k);
  CHECK(k.error().kind == Error::Kind::kUnsupported);
}
