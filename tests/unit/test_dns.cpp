#include <catch2/catch.hpp>

#include <string>

#include "decoder/dns_parse.hpp"
#include "retina/dns.hpp"
#include "test_dns_builder.hpp"

using namespace retina;
using retina::testing::DnsMsg;

namespace {

DnsError parse_error(const DnsMsg& m) {
  DnsInfo info;
  auto r = parse_dns(m.span(), info);
  REQUIRE_FALSE(r);
  return r.error();
}

}  // namespace

TEST_CASE("dns: query header and question", "[dns]") {
  auto m = retina::testing::example_query(28);
  DnsInfo info;
  REQUIRE(parse_dns(m.span(), info));
  CHECK(info.id == 0x1234);
  CHECK_FALSE(info.is_response);
  CHECK(info.query == "example.com.");
  CHECK(info.qtype == 28);
  CHECK(info.rcode == 0);
  CHECK(info.answer_count == 0);
  CHECK(info.ips.empty());
}

TEST_CASE("dns: response with CNAME, A and AAAA answers behind compressed names", "[dns]") {
  auto m = retina::testing::example_response();
  DnsInfo info;
  REQUIRE(parse_dns(m.span(), info));
  CHECK(info.is_response);
  CHECK(info.rcode == 0);
  CHECK(info.answer_count == 4);
  CHECK(info.query == "example.com.");
  REQUIRE(info.ips.size() == 3);
  CHECK(info.ips[0] == *IpAddr::parse("10.0.0.1"));
  CHECK(info.ips[1] == *IpAddr::parse("10.0.0.2"));
  CHECK(info.ips[2] == *IpAddr::parse("fd00::1"));
}

TEST_CASE("dns: rcode of a response", "[dns]") {
  DnsMsg m;
  m.header(7, 0x8183, 1, 0).question("svc.cluster.local", 1);  // NXDOMAIN
  DnsInfo info;
  REQUIRE(parse_dns(m.span(), info));
  CHECK(info.rcode == 3);
  CHECK(info.query == "svc.cluster.local.");
}

TEST_CASE("dns: root name and escaped label bytes", "[dns]") {
  DnsMsg root;
  root.header(1, 0, 1, 0).u8(0).u16(2).u16(1);
  DnsInfo info;
  REQUIRE(parse_dns(root.span(), info));
  CHECK(info.query == ".");
  CHECK(info.qtype == 2);

  DnsMsg odd;
  odd.header(1, 0, 1, 0).u8(5).raw({'a', '.', 'b', '\\', ' '}).u8(2).raw({0x00, 0xff}).u8(0).u16(1).u16(1);
  REQUIRE(parse_dns(odd.span(), info));
  CHECK(info.query == "a\\.b\\\\\\032.\\000\\255.");
}

TEST_CASE("dns: header errors", "[dns]") {
  DnsMsg shortm;
  shortm.raw({0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10});
  CHECK(parse_error(shortm) == DnsError::kTooShort);
  DnsInfo info;
  CHECK(parse_dns({}, info).error() == DnsError::kTooShort);

  DnsMsg noq;
  noq.header(1, 0, 0, 0);
  CHECK(parse_error(noq) == DnsError::kNoQuestion);
}

TEST_CASE("dns: compression pointer loops and bad targets are rejected", "[dns]") {
  SECTION("pointer to itself") {
    DnsMsg m;
    m.header(1, 0, 1, 0).ptr(12).u16(1).u16(1);
    CHECK(parse_error(m) == DnsError::kBadName);
  }
  SECTION("two pointers to each other") {
    // 12 -> 14 and 14 -> 12: the first hop already points forward.
    DnsMsg m;
    m.header(1, 0, 1, 0).ptr(14).ptr(12).u16(1).u16(1);
    CHECK(parse_error(m) == DnsError::kBadName);
  }
  SECTION("label then a pointer back to the start of its own name") {
    DnsMsg m;
    m.header(1, 0, 1, 0).labels("a").ptr(12).u16(1).u16(1);
    CHECK(parse_error(m) == DnsError::kBadName);
  }
  SECTION("forward pointer") {
    DnsMsg m;
    m.header(1, 0, 1, 0).ptr(20).u16(1).u16(1).name("late");
    CHECK(parse_error(m) == DnsError::kBadName);
  }
  SECTION("pointer into the header") {
    DnsMsg m;
    m.header(1, 0, 1, 0).ptr(4).u16(1).u16(1);
    CHECK(parse_error(m) == DnsError::kBadName);
  }
  SECTION("pointer past the end") {
    DnsMsg m;
    m.header(1, 0, 1, 0).ptr(0x3FFF).u16(1).u16(1);
    CHECK(parse_error(m) == DnsError::kBadName);
  }
  SECTION("owner name pointer of an answer pointing forward") {
    DnsMsg m;
    m.header(1, 0x8000, 1, 1).question("a.b", 1);
    m.ptr(static_cast<uint16_t>(m.size() + 4)).u16(1).u16(1).u32(1).u16(4).raw({1, 2, 3, 4});
    CHECK(parse_error(m) == DnsError::kBadName);
  }
}

TEST_CASE("dns: label and name length limits", "[dns]") {
  SECTION("extended label types 0x40 and 0x80") {
    DnsMsg a;
    a.header(1, 0, 1, 0).u8(0x40).u8(0).u16(1).u16(1);
    CHECK(parse_error(a) == DnsError::kBadName);
    DnsMsg b;
    b.header(1, 0, 1, 0).u8(0x80).u8(0).u16(1).u16(1);
    CHECK(parse_error(b) == DnsError::kBadName);
  }
  SECTION("63-byte label is fine") {
    DnsMsg m;
    m.header(1, 0, 1, 0).name(std::string(63, 'a')).u16(1).u16(1);
    DnsInfo info;
    REQUIRE(parse_dns(m.span(), info));
    CHECK(info.query == std::string(63, 'a') + ".");
  }
  SECTION("255 wire bytes is the limit") {
    // 4 labels of 63 = 256 bytes of labels + root = 257 > 255.
    std::string l63(63, 'x');
    DnsMsg over;
    over.header(1, 0, 1, 0).name(l63 + "." + l63 + "." + l63 + "." + l63).u16(1).u16(1);
    CHECK(parse_error(over) == DnsError::kBadName);
    // 3 x 63 + 61 = 4 + 189 + 61 + 1 (root) = 255.
    DnsMsg max;
    max.header(1, 0, 1, 0).name(l63 + "." + l63 + "." + l63 + "." + std::string(61, 'y')).u16(1).u16(1);
    DnsInfo info;
    REQUIRE(parse_dns(max.span(), info));
    CHECK(info.query.size() == 253 + 1);
  }
  SECTION("an over-long name in a skipped question") {
    std::string l63(63, 'x');
    DnsMsg m;
    m.header(1, 0, 2, 0).question("ok", 1).question(l63 + "." + l63 + "." + l63 + "." + l63, 1);
    CHECK(parse_error(m) == DnsError::kBadName);
  }
}

TEST_CASE("dns: truncation at every byte offset of a valid response fails cleanly", "[dns]") {
  auto m = retina::testing::example_response();
  DnsInfo info;
  REQUIRE(parse_dns(m.span(), info));
  for (size_t n = 0; n < m.size(); ++n) {
    INFO("prefix length " << n);
    auto r = parse_dns(m.prefix(n), info);
    REQUIRE_FALSE(r);
    if (n < 12) CHECK(r.error() == DnsError::kTooShort);
    else CHECK(r.error() == DnsError::kTruncatedRecord);
  }
}

TEST_CASE("dns: a cut capture keeps the question and the answers that fit", "[dns]") {
  auto m = retina::testing::example_response();
  const size_t question_end = 12 + 13 + 4;
  DnsInfo info;
  for (size_t n = 0; n <= m.size(); ++n) {
    INFO("prefix length " << n);
    auto r = dns_detail::parse(m.prefix(n), info, true);
    if (n < question_end) {
      CHECK_FALSE(r);
      continue;
    }
    REQUIRE(r);
    CHECK(info.query == "example.com.");
    CHECK(info.answer_count == 4);
    const size_t cname_end = question_end + 12 + 6;
    const size_t a1_end = cname_end + 16, a2_end = a1_end + 16, aaaa_end = a2_end + 28;
    size_t expect = n >= aaaa_end ? 3 : n >= a2_end ? 2 : n >= a1_end ? 1 : 0;
    CHECK(info.ips.size() == expect);
  }
}

TEST_CASE("dns: answers of other types, classes and odd lengths are skipped", "[dns]") {
  DnsMsg m;
  m.header(9, 0x8180, 1, 4).question("a.example", 1);
  m.ptr(12).u16(16).u16(1).u32(5).u16(3).raw({2, 'h', 'i'});  // TXT
  m.ptr(12).u16(1).u16(3).u32(5).u16(4).raw({1, 1, 1, 1});     // A in class CH
  m.ptr(12).u16(1).u16(1).u32(5).u16(5).raw({1, 2, 3, 4, 5});  // A with 5 bytes
  m.answer_a(12, {192, 0, 2, 7});
  DnsInfo info;
  REQUIRE(parse_dns(m.span(), info));
  REQUIRE(info.ips.size() == 1);
  CHECK(info.ips[0] == *IpAddr::parse("192.0.2.7"));
}

TEST_CASE("dns: extra questions are skipped before the answers", "[dns]") {
  DnsMsg m;
  m.header(9, 0x8180, 2, 1).question("first.example", 1);
  m.labels("second").ptr(18).u16(1).u16(1);  // "second.example"
  m.answer_a(12, {192, 0, 2, 1});
  DnsInfo info;
  REQUIRE(parse_dns(m.span(), info));
  CHECK(info.query == "first.example.");
  REQUIRE(info.ips.size() == 1);
}

TEST_CASE("dns: buffers are reused across messages", "[dns]") {
  auto resp = retina::testing::example_response();
  auto q = retina::testing::example_query();
  DnsInfo info;
  REQUIRE(parse_dns(resp.span(), info));
  const auto* qdata = info.query.data();
  const auto* ipdata = info.ips.data();
  for (int i = 0; i < 10; ++i) {
    REQUIRE(parse_dns(q.span(), info));
    CHECK(info.ips.empty());
    REQUIRE(parse_dns(resp.span(), info));
    CHECK(info.ips.size() == 3);
  }
  CHECK(info.query.data() == qdata);
  CHECK(info.ips.data() == ipdata);
}

TEST_CASE("dns: error names", "[dns]") {
  for (int e = 0; e < static_cast<int>(DnsError::kCount); ++e)
    CHECK(std::string(to_string(static_cast<DnsError>(e))) != "unknown DNS error");
}

TEST_CASE("dns: type and return code names", "[dns]") {
  CHECK(std::string(dns_qtype_name(1)) == "A");
  CHECK(std::string(dns_qtype_name(28)) == "AAAA");
  CHECK(std::string(dns_qtype_name(33)) == "SRV");
  CHECK(std::string(dns_qtype_name(65)) == "HTTPS");
  CHECK(std::string(dns_qtype_name(255)) == "ANY");
  CHECK(std::string(dns_qtype_name(999)) == "TYPE999");
  CHECK(std::string(dns_qtype_name(65535)) == "TYPE65535");
  CHECK(dns_qtype_name(999) == dns_qtype_name(999));  // static storage
  CHECK(std::string(dns_rcode_name(0)) == "NOERROR");
  CHECK(std::string(dns_rcode_name(3)) == "NXDOMAIN");
  CHECK(std::string(dns_rcode_name(5)) == "REFUSED");
  CHECK(std::string(dns_rcode_name(12)) == "RCODE12");
  CHECK(std::string(dns_rcode_name(23)) == "BADCOOKIE");
}
