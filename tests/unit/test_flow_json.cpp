#include <catch2/catch.hpp>

#include <simdjson.h>

#include <string>

#include "core/flow_json.hpp"
#include "retina/decoder.hpp"
#include "retina/flow_json.hpp"
#include "test_decoder_records.hpp"
#include "test_dns_builder.hpp"

using namespace retina;

namespace {

// Parses `text` strictly; fails the test on invalid JSON.
simdjson::dom::element parse(simdjson::dom::parser& p, const std::string& text) {
  simdjson::dom::element doc;
  auto err = p.parse(text).get(doc);
  INFO(text);
  REQUIRE(err == simdjson::SUCCESS);
  return doc;
}

std::string ts(uint64_t ns) {
  std::string s;
  json::append_rfc3339(s, ns);
  return s;
}

std::string json_quoted(std::string_view v) {
  std::string s;
  json::append_string(s, v);
  return s;
}

Flow packet_flow() {
  Flow f;
  f.time_ns = 1'767'323'045'123'000'000ull;  // 2026-01-02T03:04:05.123Z
  f.verdict = Verdict::FORWARDED;
  f.src = *IpAddr::parse("10.0.0.1");
  f.dst = *IpAddr::parse("10.0.0.2");
  f.ip_version = IpVersion::IPv4;
  f.proto = L4Protocol::kTCP;
  f.src_port = 40000;
  f.dst_port = 80;
  f.tcp_flags = kSYN | kACK;
  f.observation_point = TraceObservationPoint::TO_STACK;
  f.direction = TrafficDirection::EGRESS;
  f.is_reply_known = true;
  f.event_type = 4;
  f.event_sub_type = 3;
  f.bytes = 60;
  return f;
}

}  // namespace

TEST_CASE("flow json: timestamps as protojson writes them", "[flow_json]") {
  CHECK(ts(0) == "\"1970-01-01T00:00:00Z\"");
  CHECK(ts(1'709'210'096'000'000'000ull) == "\"2024-02-29T12:34:56Z\"");
  CHECK(ts(1'709'210'096'789'000'000ull) == "\"2024-02-29T12:34:56.789Z\"");
  CHECK(ts(1'709'210'096'789'012'000ull) == "\"2024-02-29T12:34:56.789012Z\"");
  CHECK(ts(1'709'210'096'000'000'001ull) == "\"2024-02-29T12:34:56.000000001Z\"");
  CHECK(ts(4'107'542'400'000'000'000ull) == "\"2100-03-01T00:00:00Z\"");
  CHECK(ts(951'782'400'000'000'000ull) == "\"2000-02-29T00:00:00Z\"");
  CHECK(ts(UINT64_MAX) == "\"2554-07-21T23:34:33.709551615Z\"");
}

TEST_CASE("flow json: string escaping keeps the output valid", "[flow_json]") {
  CHECK(json_quoted("plain") == "\"plain\"");
  CHECK(json_quoted("a\"b\\c") == "\"a\\\"b\\\\c\"");
  CHECK(json_quoted(std::string_view("\n\r\t\b\f\x01\x1f", 7)) == "\"\\n\\r\\t\\b\\f\\u0001\\u001f\"");
  CHECK(json_quoted(std::string_view("\0", 1)) == "\"\\u0000\"");
  CHECK(json_quoted("h\xC3\xA9llo \xE2\x82\xAC \xF0\x9F\x98\x80") == "\"h\xC3\xA9llo \xE2\x82\xAC \xF0\x9F\x98\x80\"");
  // Invalid: stray continuation, truncated sequence, overlong, surrogate, > U+10FFFF.
  CHECK(json_quoted("\x80") == "\"\xEF\xBF\xBD\"");
  CHECK(json_quoted("a\xC3") == "\"a\xEF\xBF\xBD\"");
  CHECK(json_quoted("\xC0\xAF") == "\"\xEF\xBF\xBD\xEF\xBF\xBD\"");
  CHECK(json_quoted("\xED\xA0\x80") == "\"\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\"");
  CHECK(json_quoted("\xF4\x90\x80\x80") == "\"\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\"");
  simdjson::dom::parser p;
  std::string all;
  for (int c = 0; c < 256; ++c) all.push_back(static_cast<char>(c));
  parse(p, json_quoted(all));
}

TEST_CASE("flow json: a packet flow, field by field", "[flow_json]") {
  Flow f = packet_flow();
  CHECK(flow_to_json(f, {.node_name = "node-1"}) ==
        R"({"flow":{"time":"2026-01-02T03:04:05.123Z","verdict":"FORWARDED",)"
        R"("IP":{"source":"10.0.0.1","destination":"10.0.0.2","ipVersion":"IPv4"},)"
        R"("l4":{"TCP":{"source_port":40000,"destination_port":80,"flags":{"SYN":true,"ACK":true}}},)"
        R"("Type":"L3_L4","node_name":"node-1","event_type":{"type":4,"sub_type":3},)"
        R"("traffic_direction":"EGRESS","trace_observation_point":"TO_STACK","is_reply":false,)"
        R"("extensions":{"@type":"type.googleapis.com/google.protobuf.Struct","value":{"bytes":60}}},)"
        R"("node_name":"node-1","time":"2026-01-02T03:04:05.123Z"})");
}

TEST_CASE("flow json: endpoints, services, counts and zones", "[flow_json]") {
  Endpoint src;
  src.kind = EndpointKind::kPod;
  src.namespace_ = "default";
  src.name = "web-7d9f\"x";
  src.labels = {"app=web", "tier=front\nend"};
  src.workloads = {{"Deployment", "web"}};
  src.zone = "zone-a";
  src.service = "web-svc";
  Endpoint dst;
  dst.kind = EndpointKind::kService;
  dst.namespace_ = "kube-system";
  dst.name = "kube-dns";
  dst.zone = "zone-b";

  Flow f = packet_flow();
  f.source = &src;
  f.destination = &dst;
  f.is_reply = true;
  f.prev_packets = 3;
  f.prev_bytes = 180;
  f.prev_flag_counts = {1, 2, 0, 0, 5, 0, 0, 0, 0};  // FIN SYN RST PSH ACK ...
  f.tcp_id = 77;
  f.ifindex = 9;
  f.src = *IpAddr::parse("fd00::1");
  f.dst = *IpAddr::parse("fd00::a");
  f.ip_version = IpVersion::IPv6;

  const std::string text = flow_to_json(f);
  simdjson::dom::parser p;
  auto doc = parse(p, text);
  auto flow = doc["flow"];
  CHECK(std::string_view(flow["IP"]["ipVersion"]) == "IPv6");
  CHECK(std::string_view(flow["IP"]["destination"]) == "fd00::a");
  CHECK(std::string_view(flow["source"]["namespace"]) == "default");
  CHECK(std::string_view(flow["source"]["pod_name"]) == "web-7d9f\"x");
  CHECK(std::string_view(flow["source"]["labels"].at(1)) == "tier=front\nend");
  CHECK(std::string_view(flow["source"]["workloads"].at(0)["kind"]) == "Deployment");
  CHECK(std::string_view(flow["source"]["workloads"].at(0)["name"]) == "web");
  CHECK(flow["destination"]["pod_name"].error() == simdjson::NO_SUCH_FIELD);  // a service, not a pod
  CHECK(std::string_view(flow["source_service"]["name"]) == "web-svc");
  CHECK(std::string_view(flow["destination_service"]["name"]) == "kube-dns");
  CHECK(std::string_view(flow["destination_service"]["namespace"]) == "kube-system");
  CHECK(bool(flow["is_reply"]) == true);
  CHECK(uint64_t(flow["interface"]["index"]) == 9);
  CHECK(flow["node_name"].error() == simdjson::NO_SUCH_FIELD);
  auto ext = flow["extensions"];
  CHECK(std::string_view(ext["@type"]) == "type.googleapis.com/google.protobuf.Struct");
  auto v = ext["value"];
  CHECK(uint64_t(v["bytes"]) == 60);
  CHECK(uint64_t(v["previously_observed_packets"]) == 3);
  CHECK(uint64_t(v["previously_observed_bytes"]) == 180);
  CHECK(uint64_t(v["tcp_id"]) == 77);
  CHECK(std::string_view(v["source_zone"]) == "zone-a");
  CHECK(std::string_view(v["destination_zone"]) == "zone-b");
  auto flags = v["previously_observed_tcp_flags"];
  CHECK(uint64_t(flags["FIN"]) == 1);
  CHECK(uint64_t(flags["SYN"]) == 2);
  CHECK(uint64_t(flags["ACK"]) == 5);
  CHECK(uint64_t(flags["NS"]) == 0);
  // Struct keys are sorted.
  CHECK(text.find("\"bytes\"") < text.find("\"destination_zone\""));
  CHECK(text.find("\"previously_observed_tcp_flags\"") < text.find("\"source_zone\""));
  CHECK(text.find("{\"ACK\":5,\"CWR\":0,\"ECE\":0,\"FIN\":1,\"NS\":0,\"PSH\":0,\"RST\":0,\"SYN\":2,\"URG\":0}") !=
        std::string::npos);
}

TEST_CASE("flow json: zero values are omitted", "[flow_json]") {
  Flow f;
  f.time_ns = 0;
  f.event_type = 4;
  CHECK(flow_to_json(f) ==
        R"({"flow":{"time":"1970-01-01T00:00:00Z","Type":"L3_L4","event_type":{"type":4}},)"
        R"("time":"1970-01-01T00:00:00Z"})");
  f.proto = L4Protocol::kICMPv4;
  f.ip_version = IpVersion::IPv4;
  CHECK(flow_to_json(f).find(R"("l4":{"ICMPv4":{}})") != std::string::npos);
}

TEST_CASE("flow json: DNS flows from the decoder", "[flow_json]") {
  DnsInfo scratch;
  DecodeContext ctx;
  ctx.dns_scratch = &scratch;
  auto msg = testing::example_response();
  Flow f;
  REQUIRE(decode(testing::dns_record(msg.span()), ctx, f));
  const std::string text = flow_to_json(f, {.node_name = "n"});
  simdjson::dom::parser p;
  auto flow = parse(p, text)["flow"];
  CHECK(uint64_t(flow["verdict"]) == 16);  // Retina's DNS verdict, not in Hubble's enum
  CHECK(std::string_view(flow["Type"]) == "L7");
  CHECK(uint64_t(flow["event_type"]["type"]) == 129);
  CHECK(std::string_view(flow["l7"]["type"]) == "RESPONSE");
  auto dns = flow["l7"]["dns"];
  CHECK(std::string_view(dns["query"]) == "example.com.");
  CHECK(std::string_view(dns["qtypes"].at(0)) == "A");
  CHECK(dns["rcode"].error() == simdjson::NO_SUCH_FIELD);  // NOERROR is zero
  CHECK(std::string_view(dns["ips"].at(0)) == "10.0.0.1");
  CHECK(std::string_view(dns["ips"].at(2)) == "fd00::1");
  CHECK(bool(flow["is_reply"]) == true);
  auto v = flow["extensions"]["value"];
  CHECK(std::string_view(v["dns_type"]) == "RESPONSE");
  CHECK(uint64_t(v["num_responses"]) == 4);
  CHECK(uint64_t(flow["l4"]["UDP"]["destination_port"]) == 53);
  CHECK(flow["l4"]["UDP"]["flags"].error() == simdjson::NO_SUCH_FIELD);
}

TEST_CASE("flow json: drops and retransmissions", "[flow_json]") {
  std::vector<std::string> names(7);
  names[6] = "NETFILTER_DROP";
  DecodeContext ctx;
  ctx.drop_reason_names = &names;
  Flow f;
  REQUIRE(decode(testing::record_of(testing::drop_event()), ctx, f));
  simdjson::dom::parser p;
  const std::string text = flow_to_json(f);
  auto flow = parse(p, text)["flow"];
  CHECK(std::string_view(flow["verdict"]) == "DROPPED");
  CHECK(std::string_view(flow["drop_reason_desc"]) == "POLICY_DENIED");  // Hubble's enum; the kernel name below
  CHECK(std::string_view(flow["extensions"]["value"]["drop_reason"]) == "NETFILTER_DROP");
  CHECK(uint64_t(flow["event_type"]["type"]) == 1);
  CHECK(std::string_view(flow["traffic_direction"]) == "INGRESS");
  CHECK(flow["is_reply"].error() == simdjson::NO_SUCH_FIELD);

  REQUIRE(decode(testing::record_of(testing::tcpretrans_event()), ctx, f));
  auto rt = parse(p, flow_to_json(f))["flow"];
  CHECK(uint64_t(rt["verdict"]) == 15);
  CHECK(bool(rt["l4"]["TCP"]["flags"]["PSH"]) == true);
  CHECK(bool(rt["l4"]["TCP"]["flags"]["ACK"]) == true);
}

TEST_CASE("flow json: enum names are Hubble's", "[flow_json]") {
  CHECK(std::string(to_string(Verdict::FORWARDED)) == "FORWARDED");
  CHECK(std::string(to_string(Verdict::RETRANSMISSION)) == "RETRANSMISSION");
  CHECK(std::string(to_string(Verdict::DNS)) == "DNS");
  CHECK(std::string(to_string(static_cast<Verdict>(99))) == "VERDICT_UNKNOWN");
  CHECK(std::string(to_string(TraceObservationPoint::TO_STACK)) == "TO_STACK");
  CHECK(std::string(to_string(TraceObservationPoint::TO_ENDPOINT)) == "TO_ENDPOINT");
  CHECK(std::string(to_string(TraceObservationPoint::FROM_NETWORK)) == "FROM_NETWORK");
  CHECK(std::string(to_string(TrafficDirection::INGRESS)) == "INGRESS");
  CHECK(std::string(to_string(IpVersion::IPv6)) == "IPv6");
  CHECK(std::string(to_string(L4Protocol::kICMPv6)) == "ICMPv6");
  CHECK(std::string(to_string(L4Protocol::kTCP)) == "TCP");
}
