#include "core/log.hpp"

#include <atomic>
#include <chrono>
#include <ctime>
#include <memory>
#include <mutex>

#include <fmt/format.h>
#include <spdlog/logger.h>
#include <spdlog/sinks/base_sink.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

namespace retina::log {
namespace {

std::atomic<LogLevel> g_level{LogLevel::kInfo};
std::atomic<bool> g_routed{false};

// Passes each formatted line to a user function.
class FunctionSink final : public spdlog::sinks::base_sink<std::mutex> {
 public:
  explicit FunctionSink(std::function<void(std::string_view)> fn) : fn_(std::move(fn)) {}

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    fn_(std::string_view(msg.payload.data(), msg.payload.size()));
  }
  void flush_() override {}

 private:
  std::function<void(std::string_view)> fn_;
};

LogLevel from_spdlog(spdlog::level::level_enum l) {
  switch (l) {
    case spdlog::level::trace: return LogLevel::kTrace;
    case spdlog::level::debug: return LogLevel::kDebug;
    case spdlog::level::info: return LogLevel::kInfo;
    case spdlog::level::warn: return LogLevel::kWarn;
    default: return LogLevel::kError;
  }
}

spdlog::level::level_enum to_spdlog(LogLevel l) {
  switch (l) {
    case LogLevel::kTrace: return spdlog::level::trace;
    case LogLevel::kDebug: return spdlog::level::debug;
    case LogLevel::kInfo: return spdlog::level::info;
    case LogLevel::kWarn: return spdlog::level::warn;
    case LogLevel::kError: return spdlog::level::err;
  }
  return spdlog::level::info;
}

void write_at(int64_t unix_ms, LogLevel l, std::string_view component, std::string_view msg, Fields fields) noexcept;

// Takes spdlog messages written as "component: text" and logs them here.
class ForwardSink final : public spdlog::sinks::base_sink<spdlog::details::null_mutex> {
 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    std::string_view text(msg.payload.data(), msg.payload.size());
    std::string_view component = "retina";
    const size_t colon = text.find(": ");
    if (colon != std::string_view::npos && colon > 0 && colon <= 32) {
      const std::string_view head = text.substr(0, colon);
      bool word = true;
      for (char c : head) {
        word = word && ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
                        c == '-' || c == '.');
      }
      if (word) {
        component = head;
        text.remove_prefix(colon + 2);
      }
    }
    const int64_t ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(msg.time.time_since_epoch()).count();
    write_at(ms, from_spdlog(msg.level), component, text, {});
  }
  void flush_() override {}
};

std::shared_ptr<spdlog::logger> make_logger(spdlog::sink_ptr sink) {
  auto logger = std::make_shared<spdlog::logger>("retina", std::move(sink));
  // Lines arrive fully formatted; spdlog only serializes and writes them.
  logger->set_pattern("%v");
  logger->set_level(spdlog::level::trace);
  logger->flush_on(spdlog::level::trace);
  return logger;
}

struct Output {
  std::mutex mu;
  std::shared_ptr<spdlog::logger> logger = make_logger(std::make_shared<spdlog::sinks::stderr_sink_mt>());
};

Output& output() {
  static Output* o = new Output();  // never destroyed: logging stays usable during exit
  return *o;
}

std::shared_ptr<spdlog::logger> current_logger() {
  Output& o = output();
  std::lock_guard lock(o.mu);
  return o.logger;
}

bool needs_quotes(std::string_view s) {
  if (s.empty()) return true;
  for (unsigned char c : s) {
    if (c <= ' ' || c == '"' || c == '=' || c == '\\' || c == 0x7f) return true;
  }
  return false;
}

void append_text(std::string& out, std::string_view s) {
  if (!needs_quotes(s)) {
    out.append(s);
    return;
  }
  out.push_back('"');
  for (unsigned char c : s) {
    switch (c) {
      case '"': out.append("\\\""); break;
      case '\\': out.append("\\\\"); break;
      case '\n': out.append("\\n"); break;
      case '\r': out.append("\\r"); break;
      case '\t': out.append("\\t"); break;
      default:
        if (c < 0x20 || c == 0x7f) {
          out.append(fmt::format("\\u{:04x}", c));
        } else {
          out.push_back(static_cast<char>(c));
        }
    }
  }
  out.push_back('"');
}

// Keys are identifiers chosen in code; anything else is replaced so that a
// line always splits back into the same pairs.
void append_key(std::string& out, std::string_view key) {
  if (key.empty()) {
    out.push_back('_');
    return;
  }
  for (char c : key) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
                    c == '.' || c == '-' || c == '/';
    out.push_back(ok ? c : '_');
  }
}

void append_timestamp(std::string& out, int64_t unix_ms) {
  int64_t secs = unix_ms / 1000;
  int64_t ms = unix_ms % 1000;
  if (ms < 0) {
    ms += 1000;
    --secs;
  }
  const std::time_t t = static_cast<std::time_t>(secs);
  std::tm tm{};
  gmtime_r(&t, &tm);
  out.append(fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z", tm.tm_year + 1900, tm.tm_mon + 1,
                         tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ms));
}

}  // namespace

void Value::append_to(std::string& out) const {
  switch (kind_) {
    case Kind::kText: append_text(out, text_); break;
    case Kind::kSigned: out.append(fmt::format("{}", i_)); break;
    case Kind::kUnsigned: out.append(fmt::format("{}", u_)); break;
    case Kind::kDouble: out.append(fmt::format("{}", d_)); break;
    case Kind::kBool: out.append(u_ ? "true" : "false"); break;
  }
}

void set_level(LogLevel level) noexcept {
  g_level.store(level, std::memory_order_relaxed);
  if (g_routed.load()) {
    try {
      spdlog::default_logger()->set_level(to_spdlog(level));
    } catch (...) {
    }
  }
}

void route_spdlog() {
  auto logger = std::make_shared<spdlog::logger>("", std::make_shared<ForwardSink>());
  logger->set_level(to_spdlog(level()));
  spdlog::set_default_logger(std::move(logger));
  g_routed.store(true);
}

LogLevel level() noexcept { return g_level.load(std::memory_order_relaxed); }

bool enabled(LogLevel l) noexcept { return static_cast<int>(l) >= static_cast<int>(level()); }

std::string format_line(int64_t unix_ms, LogLevel level, std::string_view component, std::string_view msg,
                        Fields fields) {
  std::string line;
  line.reserve(96 + msg.size());
  line.append("ts=");
  append_timestamp(line, unix_ms);
  line.append(" level=");
  line.append(to_string(level));
  line.append(" component=");
  append_text(line, component);
  line.append(" msg=");
  append_text(line, msg);
  for (const Field& f : fields) {
    line.push_back(' ');
    append_key(line, f.key);
    line.push_back('=');
    f.value.append_to(line);
  }
  return line;
}

namespace {

void write_at(int64_t unix_ms, LogLevel l, std::string_view component, std::string_view msg, Fields fields) noexcept {
  if (!enabled(l)) return;
  try {
    const std::string line = format_line(unix_ms, l, component, msg, fields);
    current_logger()->log(spdlog::level::info, spdlog::string_view_t(line.data(), line.size()));
  } catch (...) {
    // Logging must never take the caller down (allocation failure, closed stderr).
  }
}

}  // namespace

void write(LogLevel l, std::string_view component, std::string_view msg, Fields fields) noexcept {
  if (!enabled(l)) return;
  const auto now = std::chrono::system_clock::now();
  write_at(std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count(), l, component, msg,
           fields);
}

void set_output(std::function<void(std::string_view line)> out) {
  spdlog::sink_ptr sink;
  if (out) {
    sink = std::make_shared<FunctionSink>(std::move(out));
  } else {
    sink = std::make_shared<spdlog::sinks::stderr_sink_mt>();
  }
  auto logger = make_logger(std::move(sink));
  Output& o = output();
  std::lock_guard lock(o.mu);
  o.logger = std::move(logger);
}

}  // namespace retina::log
