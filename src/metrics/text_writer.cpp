// Prometheus text exposition format 0.0.4.
#include <charconv>
#include <cmath>

#include "retina/metrics/registry.hpp"

namespace retina::metrics {

const char* to_string(MetricType t) {
  switch (t) {
    case MetricType::kCounter: return "counter";
    case MetricType::kGauge: return "gauge";
    case MetricType::kHistogram: return "histogram";
    case MetricType::kUntyped: return "untyped";
  }
  return "untyped";
}

namespace {

// HELP text escapes backslash and newline only.
void append_help(std::string& out, std::string_view help) {
  for (char c : help) {
    if (c == '\\') out += "\\\\";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
}

void append_u64(std::string& out, uint64_t v) {
  char buf[24];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  (void)ec;
  out.append(buf, end);
}

void append_double(std::string& out, double v) {
  if (std::isnan(v)) {
    out += "NaN";
  } else if (std::isinf(v)) {
    out += v > 0 ? "+Inf" : "-Inf";
  } else {
    char buf[32];
    auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
    (void)ec;
    out.append(buf, end);
  }
}

}  // namespace

void TextWriter::append_escaped(std::string& out, std::string_view value) {
  for (char c : value) {
    switch (c) {
      case '\\': out += "\\\\"; break;
      case '"': out += "\\\""; break;
      case '\n': out += "\\n"; break;
      default: out += c;
    }
  }
}

void TextWriter::family(std::string_view name, std::string_view help, MetricType type) {
  out_ += "# HELP ";
  out_ += name;
  out_ += ' ';
  append_help(out_, help);
  out_ += "\n# TYPE ";
  out_ += name;
  out_ += ' ';
  out_ += to_string(type);
  out_ += '\n';
}

void TextWriter::labels(std::span<const Label> labels) {
  if (labels.empty()) return;
  out_ += '{';
  bool first = true;
  for (const Label& l : labels) {
    if (!first) out_ += ',';
    first = false;
    out_ += l.name;
    out_ += "=\"";
    append_escaped(out_, l.value);
    out_ += '"';
  }
  out_ += '}';
}

void TextWriter::sample(std::string_view name, std::span<const Label> ls, uint64_t value) {
  out_ += name;
  labels(ls);
  out_ += ' ';
  append_u64(out_, value);
  out_ += '\n';
}

void TextWriter::sample(std::string_view name, std::span<const Label> ls, double value) {
  out_ += name;
  labels(ls);
  out_ += ' ';
  append_double(out_, value);
  out_ += '\n';
}

}  // namespace retina::metrics
