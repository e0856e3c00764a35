#include <catch2/catch.hpp>

#include "retina/ip.hpp"

using retina::IpAddr;

TEST_CASE("IpAddr parses and prints IPv4 and IPv6", "[ip]") {
  auto v4 = IpAddr::parse("10.1.2.3");
  REQUIRE(v4);
  CHECK(v4->is_v4());
  CHECK(v4->v4_host_order() == 0x0a010203u);
  CHECK(v4->to_string() == "10.1.2.3");
  CHECK(*v4 == IpAddr::from_v4(0x0a010203u));

  auto v6 = IpAddr::parse("fd00::1:2");
  REQUIRE(v6);
  CHECK_FALSE(v6->is_v4());
  CHECK(v6->to_string() == "fd00::1:2");

  CHECK(IpAddr::parse("0.0.0.0")->is_unspecified());
  CHECK(IpAddr::parse("::")->is_unspecified());
}

TEST_CASE("IpAddr rejects malformed text", "[ip]") {
  for (const char* bad : {"", "10.0.0", "10.0.0.256", "fd00:::1", "abc", "1.2.3.4 ", " ::1",
                          "1.2.3.4/24", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff:1"}) {
    INFO(bad);
    CHECK_FALSE(IpAddr::parse(bad));
  }
  CHECK_FALSE(IpAddr::parse(std::string(200, '1')));
}

TEST_CASE("IpAddr hash spreads v4 and v6 keys", "[ip]") {
  retina::IpAddrHash h;
  CHECK(h(*IpAddr::parse("10.0.0.1")) != h(*IpAddr::parse("10.0.0.2")));
  CHECK(h(*IpAddr::parse("10.0.0.1")) == h(IpAddr::from_v4(0x0a000001u)));
}

TEST_CASE("ip: IPv4 text form, every digit count", "[ip]") {
  for (const char* s : {"0.0.0.0", "255.255.255.255", "1.20.100.9", "10.0.0.1", "192.168.1.254", "9.99.199.200"}) {
    INFO(s);
    CHECK(retina::IpAddr::parse(s)->to_string() == s);
  }
  std::string out = "x";
  retina::IpAddr::parse("100.64.0.10")->append_to(out);
  CHECK(out == "x100.64.0.10");
}
