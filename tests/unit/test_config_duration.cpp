#include <catch2/catch.hpp>

#include <chrono>
#include <cstdint>
#include <limits>
#include <string>

#include "retina/config.hpp"

using namespace std::chrono_literals;
using retina::parse_duration;

namespace {
int64_t ns(std::string_view s) {
  auto r = parse_duration(s);
  INFO(std::string(s));
  REQUIRE(r.has_value());
  return r->count();
}
bool rejects(std::string_view s) { return !parse_duration(s).has_value(); }
}  // namespace

TEST_CASE("duration: Go time.ParseDuration syntax", "[config][duration]") {
  CHECK(ns("0") == 0);
  CHECK(ns("-0") == 0);
  CHECK(ns("+0") == 0);
  CHECK(ns("0s") == 0);
  CHECK(ns("300ms") == 300'000'000);
  CHECK(ns("30s") == 30'000'000'000);
  CHECK(ns("1m30s") == 90'000'000'000);
  CHECK(ns("2h45m") == (2 * 3600 + 45 * 60) * 1'000'000'000LL);
  CHECK(ns("1.5h") == 5400'000'000'000LL);
  CHECK(ns(".5s") == 500'000'000);
  CHECK(ns("1.s") == 1'000'000'000);
  CHECK(ns("1.004s") == 1'004'000'000);
  CHECK(ns("100.00100s") == 100'001'000'000LL);
  CHECK(ns("10ns") == 10);
  CHECK(ns("11us") == 11'000);
  CHECK(ns("12\xc2\xb5s") == 12'000);  // U+00B5
  CHECK(ns("13\xce\xbcs") == 13'000);  // U+03BC
  CHECK(ns("-2m3.4s") == -123'400'000'000LL);
  CHECK(ns("+5s") == 5'000'000'000);
  CHECK(ns("1h1m1s1ms1us1ns") == 3661'001'001'001LL);
  CHECK(ns("39h9m14.425s") == 140954'425'000'000LL);
  CHECK(ns("0.3333333333333333333h") == 1200'000'000'000LL);
  CHECK(ns("9007199254740993ns") == 9007199254740993LL);
  CHECK(ns("9223372036854775807ns") == std::numeric_limits<int64_t>::max());
  CHECK(ns("-9223372036854775808ns") == std::numeric_limits<int64_t>::min());
  CHECK(ns("9223372036854775.807us") == std::numeric_limits<int64_t>::max());
  CHECK(ns("0.100000000000000000000h") == 360'000'000'000LL);
}

TEST_CASE("duration: rejects what Go rejects", "[config][duration]") {
  CHECK(rejects(""));
  CHECK(rejects("3"));
  CHECK(rejects("-"));
  CHECK(rejects("s"));
  CHECK(rejects("."));
  CHECK(rejects("-."));
  CHECK(rejects(".s"));
  CHECK(rejects("+.s"));
  CHECK(rejects("1d"));
  CHECK(rejects("1sec"));
  CHECK(rejects("1s "));
  CHECK(rejects(" 1s"));
  CHECK(rejects("1s2"));
  CHECK(rejects("9223372036854775808ns"));
  CHECK(rejects("9223372036854775.808us"));
  CHECK(rejects("-9223372036854775809ns"));
  CHECK(rejects("3000000h"));
  CHECK(rejects("abc"));
  CHECK(rejects(std::string("1\0s", 3)));

  auto r = parse_duration("10x");
  REQUIRE_FALSE(r);
  CHECK(r.error().message.find("unknown unit \"x\" in duration \"10x\"") == 0);
  r = parse_duration("10");
  REQUIRE_FALSE(r);
  CHECK(r.error().message.find("missing unit in duration \"10\"") == 0);
}
