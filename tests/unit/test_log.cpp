#include <catch2/catch.hpp>

#include <mutex>
#include <string>
#include <vector>

#include <spdlog/spdlog.h>

#include "core/log.hpp"

using retina::LogLevel;
namespace rlog = retina::log;

namespace {
struct Capture {
  std::mutex mu;
  std::vector<std::string> lines;
  Capture() {
    rlog::set_output([this](std::string_view l) {
      std::lock_guard lock(mu);
      lines.emplace_back(l);
    });
  }
  ~Capture() {
    rlog::set_output(nullptr);
    rlog::set_level(LogLevel::kInfo);
  }
};
}  // namespace

TEST_CASE("log: logfmt lines", "[log]") {
  // 2026-11-22T03:04:05.123Z
  const int64_t ms = 1795316645123;
  CHECK(rlog::format_line(ms, LogLevel::kInfo, "engine", "plugin started", {{"plugin", "packetparser"}}) ==
        "ts=2026-11-22T03:04:05.123Z level=info component=engine msg=\"plugin started\" plugin=packetparser");
  CHECK(rlog::format_line(ms, LogLevel::kWarn, "api", "x", {{"n", 42}, {"neg", -7}, {"ok", true}, {"ratio", 0.5}}) ==
        "ts=2026-11-22T03:04:05.123Z level=warn component=api msg=x n=42 neg=-7 ok=true ratio=0.5");
  // Values with spaces, quotes, equals signs, newlines and control bytes are
  // quoted and escaped; empty values are "".
  CHECK(rlog::format_line(ms, LogLevel::kError, "c", "m",
                         {{"a", "say \"hi\""}, {"b", "k=v"}, {"c", "two\nlines"}, {"d", ""}, {"e", "\x01"},
                          {"f", "back\\slash"}}) ==
        "ts=2026-11-22T03:04:05.123Z level=error component=c msg=m a=\"say \\\"hi\\\"\" b=\"k=v\" "
        "c=\"two\\nlines\" d=\"\" e=\"\\u0001\" f=\"back\\\\slash\"");
  // Keys are kept to a safe alphabet.
  CHECK(rlog::format_line(ms, LogLevel::kDebug, "c", "m", {{"bad key", 1}, {"", 2}}) ==
        "ts=2026-11-22T03:04:05.123Z level=debug component=c msg=m bad_key=1 _=2");
  CHECK(rlog::format_line(0, LogLevel::kTrace, "c", "m", {}) == "ts=1970-01-01T00:00:00.000Z level=trace component=c msg=m");
}

TEST_CASE("log: level filtering", "[log]") {
  Capture cap;
  rlog::set_level(LogLevel::kWarn);
  CHECK_FALSE(rlog::enabled(LogLevel::kInfo));
  CHECK(rlog::enabled(LogLevel::kError));
  rlog::info("t", "hidden");
  rlog::warn("t", "shown", {{"k", std::string("v")}});
  rlog::error("t", "also shown");
  REQUIRE(cap.lines.size() == 2);
  CHECK(cap.lines[0].find("level=warn component=t msg=shown k=v") != std::string::npos);
  CHECK(cap.lines[1].find("level=error component=t msg=\"also shown\"") != std::string::npos);
}

TEST_CASE("log: spdlog's default logger is routed through logfmt", "[log]") {
  Capture cap;
  auto previous = spdlog::default_logger();
  rlog::route_spdlog();
  rlog::set_level(LogLevel::kDebug);
  spdlog::info("packetparser: loaded (aggregation {}, sampling 1/{})", "high", 1);
  spdlog::warn("no component prefix here");
  spdlog::trace("packetparser: below the level");
  spdlog::set_default_logger(previous);
  REQUIRE(cap.lines.size() == 2);
  CHECK(cap.lines[0].find("level=info component=packetparser msg=\"loaded (aggregation high, sampling 1/1)\"") !=
        std::string::npos);
  CHECK(cap.lines[1].find("level=warn component=retina msg=\"no component prefix here\"") != std::string::npos);
}
