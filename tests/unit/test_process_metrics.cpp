// process_* metrics' /proc parsers and Retina's bind-address flags.
#include <catch2/catch.hpp>

#include "engine/process_metrics.hpp"
#include "retina/api_server.hpp"

using namespace retina;

TEST_CASE("process metrics: /proc/<pid>/stat fields counted from the last ')'", "[process]") {
  // A command name with spaces and parentheses; fields 14/15 utime/stime,
  // 22 starttime, 23 vsize, 24 rss.
  const char* text =
      "4242 (a) b (c)) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 3 0 123456 987654321 2048 "
      "18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n";
  auto s = metrics::parse_proc_stat(text);
  REQUIRE(s);
  CHECK(s->utime_ticks == 250);
  CHECK(s->stime_ticks == 75);
  CHECK(s->start_ticks == 123456);
  CHECK(s->vsize_bytes == 987654321);
  CHECK(s->rss_pages == 2048);

  CHECK_FALSE(metrics::parse_proc_stat("4242 no parenthesis 1 2 3"));
  auto short_line = metrics::parse_proc_stat("1 (x) S 1 2 3\n");
  REQUIRE_FALSE(short_line);
  CHECK_THAT(short_line.error().message, Catch::Contains("fields"));
  auto bad = metrics::parse_proc_stat(
      "1 (x) S 1 1 1 0 -1 0 0 0 0 0 x 75 0 0 20 0 3 0 1 2 3\n");
  REQUIRE_FALSE(bad);
  CHECK_THAT(bad.error().message, Catch::Contains("field 14"));
}

TEST_CASE("process metrics: btime of /proc/stat", "[process]") {
  auto b = metrics::parse_boot_time("cpu  1 2 3\nbtime 1764800000\nprocesses 9\n");
  REQUIRE(b);
  CHECK(*b == 1764800000u);
  CHECK_FALSE(metrics::parse_boot_time("cpu 1 2 3\n"));
  CHECK_FALSE(metrics::parse_boot_time("btime soon\n"));
}

TEST_CASE("bind addresses: Go's host:port forms", "[agent]") {
  auto any = parse_bind_address(":18081");
  REQUIRE(any);
  CHECK(any->host == "0.0.0.0");
  CHECK(any->port == 18081);
  auto v4 = parse_bind_address("127.0.0.1:0");
  REQUIRE(v4);
  CHECK(v4->host == "127.0.0.1");
  CHECK(v4->port == 0);
  auto v6 = parse_bind_address("[::1]:10093");
  REQUIRE(v6);
  CHECK(v6->host == "::1");
  CHECK(v6->port == 10093);
  for (const char* bad : {"", "18081", "::1:80", "host:", "host:65536", "host:-1", "[::1:80", "[]:80", "a b:1", ":1x"}) {
    INFO(bad);
    auto r = parse_bind_address(bad);
    REQUIRE_FALSE(r);
    CHECK_THAT(r.error().message, Catch::Contains("bind address"));
  }
}
