#include "core/hubble_metric_spec.hpp"

#include <algorithm>

#include <fmt/format.h>

namespace retina::hubble_spec {

namespace {

template <class Range>
bool contains(const Range& r, std::string_view v) {
  return std::find(std::begin(r), std::end(r), v) != std::end(r);
}

template <class Range>
std::string join(const Range& r) {
  std::string out;
  for (std::string_view s : r) {
    if (!out.empty()) out += ", ";
    out += s;
  }
  return out;
}

std::vector<std::string_view> split(std::string_view s, char sep) {
  std::vector<std::string_view> out;
  for (;;) {
    const size_t at = s.find(sep);
    out.push_back(s.substr(0, at));
    if (at == std::string_view::npos) return out;
    s.remove_prefix(at + 1);
  }
}

std::string shown(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size() && i < 80; ++i) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    out += (c < 0x20 || c == 0x7f) ? fmt::format("\\x{:02x}", c) : std::string(1, static_cast<char>(c));
  }
  return s.size() > 80 ? out + "..." : out;
}

}  // namespace

Result<MetricSpec> parse_metric(std::string_view text) {
  const auto fail = [&](const std::string& what) {
    return unexpected(Error::invalid(fmt::format("\"{}\": {}", shown(text), what)));
  };
  const size_t colon = text.find(':');
  MetricSpec m;
  m.handler = std::string(text.substr(0, colon));
  if (!contains(kHandlers, m.handler))
    return fail(fmt::format("unknown metric \"{}\" (expected one of {})", shown(m.handler), join(kHandlers)));
  if (colon == std::string_view::npos) return m;
  const std::string_view opts = text.substr(colon + 1);
  if (opts.empty()) return fail("nothing after ':'");
  std::vector<std::string_view> seen;
  for (std::string_view opt : split(opts, ';')) {
    if (opt.empty()) return fail("empty option");
    const size_t eq = opt.find('=');
    const std::string_view key = opt.substr(0, eq);
    const std::string_view value = eq == std::string_view::npos ? std::string_view() : opt.substr(eq + 1);
    if (contains(seen, key)) return fail(fmt::format("option {} given twice", shown(key)));
    seen.push_back(key);
    if (key == "sourceContext" || key == "destinationContext" || key == "sourceEgressContext" ||
        key == "destinationIngressContext") {
      const bool source = key.starts_with("source");
      auto& out = source ? m.source_context : m.destination_context;
      if (!out.empty()) return fail(fmt::format("{} repeats the {} context", key, source ? "source" : "destination"));
      if (key == "sourceEgressContext") m.source_egress_only = true;
      if (key == "destinationIngressContext") m.destination_ingress_only = true;
      if (value.empty()) return fail(fmt::format("{} needs a value", key));
      for (std::string_view c : split(value, '|')) {
        if (!contains(kContexts, c))
          return fail(fmt::format("{}: unknown or unsupported context \"{}\" (expected one of {})", key, shown(c),
                                  join(kContexts)));
        out.emplace_back(c);
      }
    } else if (key == "labelsContext") {
      if (value.empty()) return fail("labelsContext needs a value");
      for (std::string_view l : split(value, ',')) {
        if (!contains(kLabelNames, l))
          return fail(fmt::format("labelsContext: unknown label \"{}\" (expected one of {})", shown(l),
                                  join(kLabelNames)));
        if (contains(m.labels_context, l)) return fail(fmt::format("labelsContext: \"{}\" listed twice", l));
        m.labels_context.emplace_back(l);
      }
    } else if (m.handler == "dns" && (key == "query" || key == "ignoreAAAA") && eq == std::string_view::npos) {
      (key == "query" ? m.dns_query : m.ignore_aaaa) = true;
    } else {
      return fail(fmt::format("unknown option \"{}\" for {}", shown(key), m.handler));
    }
  }
  if (!m.labels_context.empty() && (!m.source_context.empty() || !m.destination_context.empty()))
    return fail("labelsContext cannot be combined with sourceContext or destinationContext");
  return m;
}

Result<std::vector<MetricSpec>> parse_metrics(const std::vector<std::string>& list) {
  std::vector<MetricSpec> out;
  for (const auto& entry : list) {
    auto m = parse_metric(entry);
    if (!m) return unexpected(m.error());
    for (const auto& prev : out)
      if (prev.handler == m->handler)
        return unexpected(Error::invalid(fmt::format("\"{}\": metric {} listed twice", shown(entry), m->handler)));
    out.push_back(std::move(*m));
  }
  return out;
}

}  // namespace retina::hubble_spec
