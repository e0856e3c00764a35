// The protobuf flow (gRPC) and the JSON line (/flows, the flow log) must say
// the same thing: every flow here is converted both ways, the protobuf one
// is rendered by protobuf's own JSON printer, and the two documents must be
// equal member by member.
#include <catch2/catch.hpp>

#include <google/protobuf/util/json_util.h>
#include <simdjson.h>

#include <cmath>

#include <fmt/format.h>
#include <string>

#include "hubble/flow_proto.hpp"
#include "retina/decoder.hpp"
#include "retina/flow_json.hpp"
#include "test_decoder_records.hpp"
#include "test_dns_builder.hpp"

using namespace retina;

namespace {

// Structural equality; numbers compare by value (protojson writes Struct
// numbers as doubles), objects regardless of member order.
bool same(simdjson::dom::element a, simdjson::dom::element b, const std::string& path, std::string& why) {
  using T = simdjson::dom::element_type;
  const auto num = [](simdjson::dom::element e, double& out) {
    switch (e.type()) {
      case T::INT64: out = double(int64_t(e)); return true;
      case T::UINT64: out = double(uint64_t(e)); return true;
      case T::DOUBLE: out = double(e); return true;
      default: return false;
    }
  };
  double x = 0, y = 0;
  if (num(a, x) && num(b, y)) {
    if (x == y) return true;
    why = path + ": " + std::to_string(x) + " vs " + std::to_string(y);
    return false;
  }
  if (a.type() != b.type()) {
    why = path + ": different types";
    return false;
  }
  switch (a.type()) {
    case T::OBJECT: {
      simdjson::dom::object oa = a, ob = b;
      if (oa.size() != ob.size()) {
        why = path + ": " + simdjson::minify(a) + " vs " + simdjson::minify(b);
        return false;
      }
      for (auto [k, v] : oa) {
        simdjson::dom::element w;
        if (ob[k].get(w) != simdjson::SUCCESS) {
          why = path + "." + std::string(k) + ": missing";
          return false;
        }
        if (!same(v, w, path + "." + std::string(k), why)) return false;
      }
      return true;
    }
    case T::ARRAY: {
      simdjson::dom::array aa = a, ab = b;
      if (aa.size() != ab.size()) {
        why = path + ": array sizes differ";
        return false;
      }
      for (size_t i = 0; i < aa.size(); ++i)
        if (!same(aa.at(i), ab.at(i), path + "[" + std::to_string(i) + "]", why)) return false;
      return true;
    }
    case T::STRING:
      if (std::string_view(a) == std::string_view(b)) return true;
      why = path + ": \"" + std::string(std::string_view(a)) + "\" vs \"" + std::string(std::string_view(b)) + "\"";
      return false;
    case T::BOOL:
      if (bool(a) == bool(b)) return true;
      why = path + ": booleans differ";
      return false;
    default: return true;
  }
}

void check_same(const Flow& f, std::string_view node = "node-1") {
  const std::string line = flow_to_json(f, {.node_name = node});
  ::flow::Flow pb;
  hubble::to_proto(f, node, pb);
  std::string pj;
  google::protobuf::util::JsonPrintOptions o;
  o.preserve_proto_field_names = true;
  REQUIRE(google::protobuf::util::MessageToJsonString(pb, &pj, o).ok());
  // The bytes are canonical: protobuf serializes what it parsed from them
  // to the same bytes (fields in order, defaults left out, lengths minimal).
  std::string wire;
  hubble::append_flow_wire(f, node, wire);
  CHECK(pb.SerializeAsString() == wire);
  // Round trip through the wire format, as a client sees it.
  ::flow::Flow back;
  REQUIRE(back.ParseFromString(pb.SerializeAsString()));
  std::string pj2;
  REQUIRE(google::protobuf::util::MessageToJsonString(back, &pj2, o).ok());
  CHECK(pj == pj2);

  simdjson::dom::parser p1, p2;
  simdjson::dom::element a, b;
  REQUIRE(p1.parse(line).get(a) == simdjson::SUCCESS);
  REQUIRE(p2.parse(pj).get(b) == simdjson::SUCCESS);
  std::string why;
  INFO("json:     " << line);
  INFO("protobuf: " << pj);
  CHECK(same(a["flow"], b, "flow", why));
  INFO(why);
  CHECK(why.empty());
}

Flow tcp_flow() {
  Flow f;
  f.time_ns = 1'767'323'045'123'456'789ull;
  f.verdict = Verdict::FORWARDED;
  f.src = *IpAddr::parse("10.0.0.1");
  f.dst = *IpAddr::parse("10.0.0.2");
  f.ip_version = IpVersion::IPv4;
  f.proto = L4Protocol::kTCP;
  f.src_port = 40000;
  f.dst_port = 80;
  f.tcp_flags = kSYN | kACK | kNS;
  f.observation_point = TraceObservationPoint::TO_ENDPOINT;
  f.direction = TrafficDirection::INGRESS;
  f.is_reply_known = true;
  f.is_reply = true;
  f.event_type = 4;
  f.event_sub_type = 3;
  f.bytes = 60;
  f.ifindex = 12;
  return f;
}

}  // namespace

TEST_CASE("hubble conversion: packet flows agree with the JSON writer", "[hubble]") {
  Flow f = tcp_flow();
  check_same(f);

  Endpoint src;
  src.kind = EndpointKind::kPod;
  src.namespace_ = "default";
  src.name = "web-7d9f\"x";
  src.labels = {"app=web", "tier=front"};
  src.workloads = {{"Deployment", "web"}};
  src.zone = "zone-a";
  src.service = "web-svc";
  Endpoint dst;
  dst.kind = EndpointKind::kService;
  dst.namespace_ = "kube-system";
  dst.name = "kube-dns";
  dst.zone = "zone-b";
  f.source = &src;
  f.destination = &dst;
  f.prev_packets = 3;
  f.prev_bytes = 180;
  f.prev_flag_counts = {1, 2, 0, 0, 5, 0, 0, 0, 0};
  f.tcp_id = 77;
  f.src = *IpAddr::parse("fd00::1");
  f.dst = *IpAddr::parse("fd00::a");
  f.ip_version = IpVersion::IPv6;
  check_same(f);
  check_same(f, "");  // no node name

  // Sub-messages longer than 127 bytes (lengths of two and three bytes).
  Endpoint big = src;
  std::vector<std::string> many;
  for (int i = 0; i < 600; ++i) many.push_back(fmt::format("label-{:03}=value-of-label-{:03}", i, i));
  big.labels = many;
  f.source = &big;
  check_same(f);
  big.labels = std::vector<std::string>(many.begin(), many.begin() + 5);
  check_same(f);
  f.source = &src;

  f.proto = L4Protocol::kUDP;
  f.is_reply_known = false;
  f.time_ns = 1'767'323'045'000'000'000ull;  // whole seconds
  check_same(f);
  f.proto = L4Protocol::kICMPv6;
  check_same(f);
  f.proto = L4Protocol::kNone;
  f.ip_version = IpVersion::IP_NOT_USED;
  check_same(f);
}

TEST_CASE("hubble conversion: drops, retransmissions and DNS agree", "[hubble]") {
  std::vector<std::string> names(7);
  names[6] = "NETFILTER_DROP";
  DecodeContext ctx;
  ctx.drop_reason_names = &names;
  DnsInfo scratch;
  ctx.dns_scratch = &scratch;
  Flow f;
  REQUIRE(decode(testing::record_of(testing::drop_event()), ctx, f));
  check_same(f);
  ::flow::Flow pb;
  hubble::to_proto(f, "n", pb);
  CHECK(pb.drop_reason_desc() == ::flow::POLICY_DENIED);
  CHECK(pb.verdict() == ::flow::DROPPED);

  names[6] = "SOME_KERNEL_ONLY_REASON";
  REQUIRE(decode(testing::record_of(testing::drop_event()), ctx, f));
  check_same(f);
  hubble::to_proto(f, "n", pb);
  CHECK(pb.drop_reason_desc() == ::flow::DROP_REASON_UNKNOWN);

  REQUIRE(decode(testing::record_of(testing::tcpretrans_event()), ctx, f));
  check_same(f);
  hubble::to_proto(f, "n", pb);
  CHECK(static_cast<int>(pb.verdict()) == 15);  // Retina's RETRANSMISSION survives the open enum

  auto resp = testing::example_response();
  REQUIRE(decode(testing::dns_record(resp.span()), ctx, f));
  check_same(f);
  hubble::to_proto(f, "n", pb);
  CHECK(pb.type() == ::flow::L7);
  CHECK(pb.l7().dns().query() == "example.com.");
  CHECK(pb.l7().dns().qtypes(0) == "A");
  auto q = testing::example_query(28);
  REQUIRE(decode(testing::dns_record(q.span()), ctx, f));
  check_same(f);
}

TEST_CASE("hubble conversion: reusing one message leaves nothing behind", "[hubble]") {
  Flow a = tcp_flow();
  Endpoint ep;
  ep.kind = EndpointKind::kPod;
  ep.namespace_ = "ns";
  ep.name = "p";
  a.source = &ep;
  a.prev_packets = 5;
  Flow b;
  b.time_ns = 1;
  ::flow::Flow reused, fresh;
  hubble::to_proto(a, "n", reused);
  hubble::to_proto(b, "", reused);
  hubble::to_proto(b, "", fresh);
  CHECK(reused.SerializeAsString() == fresh.SerializeAsString());
  CHECK_FALSE(reused.has_extensions());
  CHECK_FALSE(reused.has_source());
}
