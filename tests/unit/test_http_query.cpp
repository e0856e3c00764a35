#include <catch2/catch.hpp>

#include <string>

#include "engine/http_query.hpp"

using retina::Verdict;
using retina::http::parse_flow_query;
using retina::http::parse_query;

TEST_CASE("http query: decoding", "[api][query]") {
  auto p = parse_query("a=1&b=x%20y+z&&c&d=%2F%41");
  REQUIRE(p);
  REQUIRE(p->size() == 4);
  CHECK((*p)[0] == std::pair<std::string, std::string>{"a", "1"});
  CHECK((*p)[1] == std::pair<std::string, std::string>{"b", "x y z"});
  CHECK((*p)[2] == std::pair<std::string, std::string>{"c", ""});
  CHECK((*p)[3] == std::pair<std::string, std::string>{"d", "/A"});
  CHECK(parse_query("")->empty());

  CHECK(parse_query("a=%").error().message == "bad percent escape in the value of a \"%\"");
  CHECK(parse_query("a=%4").error().message == "bad percent escape in the value of a \"%4\"");
  CHECK(parse_query("%zz=1").error().message == "bad percent escape in parameter name \"%zz\"");
  CHECK(parse_query("a=%00").error().message.find("NUL byte") == 0);
  CHECK(parse_query("=1").error().message == "query parameter without a name");
  CHECK(parse_query("a=" + std::string(600, 'x')).error().message.find("longer than 512 bytes") != std::string::npos);
  std::string many;
  for (int i = 0; i < 65; ++i) many += "a=1&";
  CHECK(parse_query(many).error().message == "more than 64 query parameters");
}

TEST_CASE("http query: /flows parameters", "[api][query]") {
  auto q = parse_flow_query("");
  REQUIRE(q);
  CHECK_FALSE(q->follow);
  CHECK(q->max == retina::http::kDefaultFlowMax);

  q = parse_flow_query("follow=1");
  REQUIRE(q);
  CHECK(q->follow);
  CHECK(q->max == 0);  // unbounded stream
  CHECK(parse_flow_query("follow")->follow);
  CHECK(parse_flow_query("follow=true&max=5")->max == 5);
  CHECK_FALSE(parse_flow_query("follow=false")->follow);

  q = parse_flow_query(
      "namespace=default,kube-system&pod=default/web-0&pod=db&ip=10.0.0.1,fd00::1&port=53&port=8080"
      "&verdict=dropped,FORWARDED&verdict=DNS&origin=dns,packetparser");
  REQUIRE(q);
  CHECK(q->filter.namespaces == std::vector<std::string>{"default", "kube-system"});
  CHECK(q->filter.pod_names == std::vector<std::string>{"default/web-0", "db"});
  REQUIRE(q->filter.ips.size() == 2);
  CHECK(q->filter.ips[0] == *retina::IpAddr::parse("10.0.0.1"));
  CHECK(q->filter.ips[1] == *retina::IpAddr::parse("fd00::1"));
  CHECK(q->filter.ports == std::vector<uint16_t>{53, 8080});
  CHECK(q->filter.verdicts == std::vector<Verdict>{Verdict::DROPPED, Verdict::FORWARDED, Verdict::DNS});
  CHECK(q->filter.origins ==
        std::vector<retina::FlowSource>{retina::FlowSource::kDns, retina::FlowSource::kPacketParser});
}

TEST_CASE("http query: /flows errors name the parameter", "[api][query]") {
  const auto err = [](std::string_view q) {
    auto r = parse_flow_query(q);
    REQUIRE_FALSE(r);
    CHECK(r.error().kind == retina::Error::Kind::kInvalidArgument);
    return r.error().message;
  };
  CHECK(err("max=0") == "max: expected an integer from 1 to 1000000, got \"0\"");
  CHECK(err("max=1000001") == "max: expected an integer from 1 to 1000000, got \"1000001\"");
  CHECK(err("max=-3") == "max: expected an integer from 1 to 1000000, got \"-3\"");
  CHECK(err("max=10abc") == "max: expected an integer from 1 to 1000000, got \"10abc\"");
  CHECK(err("port=65536") == "port: expected an integer from 0 to 65535, got \"65536\"");
  CHECK(err("ip=300.1.1.1") == "ip: \"300.1.1.1\" is not an IPv4 or IPv6 address");
  CHECK(err("pod=/x") == "pod: expected \"namespace/name\" or \"name\", got \"/x\"");
  CHECK(err("pod=a/b/c") == "pod: expected \"namespace/name\" or \"name\", got \"a/b/c\"");
  CHECK(err("namespace=") == "namespace: empty value");
  CHECK(err("verdict=,") == "verdict: empty value");
  CHECK(err("follow=maybe") == "follow: expected 1, 0, true or false, got \"maybe\"");
  CHECK(err("origin=kernel") == "origin: expected packetparser, dropreason, dns or tcpretrans, got \"kernel\"");
  CHECK(err("x%0a=1") ==
        "unknown query parameter \"x\\x0a\" (known: follow, max, namespace, pod, ip, port, verdict, origin)");
}
