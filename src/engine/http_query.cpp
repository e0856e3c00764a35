#include "engine/http_query.hpp"

#include <cctype>
#include <charconv>
#include <string>

#include <fmt/format.h>

#include "core/strings.hpp"
#include "retina/flow_sources.hpp"

namespace retina::http {
namespace {

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Shows user text in an error message: bounded, control bytes escaped.
std::string shown(std::string_view s) {
  std::string out;
  const size_t n = std::min<size_t>(s.size(), 64);
  for (size_t i = 0; i < n; ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x20 || c >= 0x7f || c == '"' || c == '\\') {
      out += fmt::format("\\x{:02x}", c);
    } else {
      out.push_back(static_cast<char>(c));
    }
  }
  if (s.size() > n) out += "...";
  return out;
}

Result<std::string> decode(std::string_view s, std::string_view what) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (c == '+') {
      c = ' ';
    } else if (c == '%') {
      const int hi = i + 1 < s.size() ? hex_value(s[i + 1]) : -1;
      const int lo = i + 2 < s.size() ? hex_value(s[i + 2]) : -1;
      if (hi < 0 || lo < 0) {
        return unexpected(Error::invalid(fmt::format("bad percent escape in {} \"{}\"", what, shown(s))));
      }
      c = static_cast<char>(hi * 16 + lo);
      i += 2;
    }
    if (c == '\0') return unexpected(Error::invalid(fmt::format("NUL byte in {} \"{}\"", what, shown(s))));
    out.push_back(c);
  }
  return out;
}

// Calls fn for each non-empty comma-separated item of `value`.
template <class Fn>
Status each_item(std::string_view key, std::string_view value, Fn&& fn) {
  bool any = false;
  while (true) {
    const size_t comma = value.find(',');
    const std::string_view item = value.substr(0, comma);
    if (!item.empty()) {
      any = true;
      if (auto st = fn(item); !st) return st;
    }
    if (comma == std::string_view::npos) break;
    value.remove_prefix(comma + 1);
  }
  if (!any) return unexpected(Error::invalid(fmt::format("{}: empty value", key)));
  return ok();
}

Result<uint64_t> number(std::string_view key, std::string_view v, uint64_t lo, uint64_t hi) {
  uint64_t out = 0;
  auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), out);
  if (v.empty() || ec != std::errc() || p != v.data() + v.size() || out < lo || out > hi) {
    return unexpected(
        Error::invalid(fmt::format("{}: expected an integer from {} to {}, got \"{}\"", key, lo, hi, shown(v))));
  }
  return out;
}

}  // namespace

Result<std::vector<std::pair<std::string, std::string>>> parse_query(std::string_view query) {
  std::vector<std::pair<std::string, std::string>> out;
  while (!query.empty()) {
    const size_t amp = query.find('&');
    const std::string_view part = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view{} : query.substr(amp + 1);
    if (part.empty()) continue;
    if (out.size() == kMaxQueryParams) {
      return unexpected(Error::invalid(fmt::format("more than {} query parameters", kMaxQueryParams)));
    }
    const size_t eq = part.find('=');
    auto key = decode(part.substr(0, eq), "parameter name");
    if (!key) return unexpected(key.error());
    if (key->empty()) return unexpected(Error::invalid("query parameter without a name"));
    std::string value;
    if (eq != std::string_view::npos) {
      auto v = decode(part.substr(eq + 1), fmt::format("the value of {}", shown(*key)));
      if (!v) return unexpected(v.error());
      value = std::move(*v);
    }
    if (key->size() > 64 || value.size() > kMaxQueryValueBytes) {
      return unexpected(Error::invalid(
          fmt::format("query parameter \"{}\" is longer than {} bytes", shown(*key), kMaxQueryValueBytes)));
    }
    out.emplace_back(std::move(*key), std::move(value));
  }
  return out;
}

Result<FlowQuery> parse_flow_query(std::string_view query) {
  auto params = parse_query(query);
  if (!params) return unexpected(params.error());
  FlowQuery q;
  bool have_max = false;
  for (const auto& param : *params) {
    // Plain references: clang 14 cannot capture structured bindings.
    const std::string& key = param.first;
    const std::string& value = param.second;
    Status st = ok();
    if (key == "follow") {
      if (value.empty() || value == "1" || value == "true") {
        q.follow = true;
      } else if (value == "0" || value == "false") {
        q.follow = false;
      } else {
        st = unexpected(Error::invalid(fmt::format("follow: expected 1, 0, true or false, got \"{}\"", shown(value))));
      }
    } else if (key == "max") {
      auto n = number(key, value, 1, kMaxFlowMax);
      if (n) {
        q.max = *n;
        have_max = true;
      } else {
        st = unexpected(n.error());
      }
    } else if (key == "namespace") {
      st = each_item(key, value, [&](std::string_view v) -> Status {
        q.filter.namespaces.emplace_back(v);
        return ok();
      });
    } else if (key == "pod") {
      st = each_item(key, value, [&](std::string_view v) -> Status {
        const size_t slash = v.find('/');
        if (slash == 0 || slash + 1 == v.size() || (slash != std::string_view::npos && v.find('/', slash + 1) != std::string_view::npos)) {
          return unexpected(Error::invalid(fmt::format("pod: expected \"namespace/name\" or \"name\", got \"{}\"", shown(v))));
        }
        q.filter.pod_names.emplace_back(v);
        return ok();
      });
    } else if (key == "ip") {
      st = each_item(key, value, [&](std::string_view v) -> Status {
        auto ip = IpAddr::parse(v);
        if (!ip) return unexpected(Error::invalid(fmt::format("ip: \"{}\" is not an IPv4 or IPv6 address", shown(v))));
        q.filter.ips.push_back(*ip);
        return ok();
      });
    } else if (key == "port") {
      st = each_item(key, value, [&](std::string_view v) -> Status {
        auto n = number(key, v, 0, 65535);
        if (!n) return unexpected(n.error());
        q.filter.ports.push_back(static_cast<uint16_t>(*n));
        return ok();
      });
    } else if (key == "verdict") {
      st = each_item(key, value, [&](std::string_view v) -> Status {
        const std::string u = retina::text::upper(v);
        static constexpr std::pair<std::string_view, Verdict> kVerdicts[] = {
            {"FORWARDED", Verdict::FORWARDED},          {"DROPPED", Verdict::DROPPED}, {"ERROR", Verdict::ERROR},
            {"RETRANSMISSION", Verdict::RETRANSMISSION}, {"DNS", Verdict::DNS}};
        for (const auto& [name, verdict] : kVerdicts) {
          if (u == name) {
            q.filter.verdicts.push_back(verdict);
            return ok();
          }
        }
        return unexpected(Error::invalid(fmt::format(
            "verdict: expected FORWARDED, DROPPED, ERROR, RETRANSMISSION or DNS, got \"{}\"", shown(v))));
      });
    } else if (key == "origin") {
      st = each_item(key, value, [&](std::string_view v) -> Status {
        if (auto origin = flow_source_from(v)) {
          q.filter.origins.push_back(*origin);
          return ok();
        }
        return unexpected(
            Error::invalid(fmt::format("origin: expected {}, got \"{}\"", flow_source_names(), shown(v))));
      });
    } else {
      st = unexpected(Error::invalid(fmt::format(
          "unknown query parameter \"{}\" (known: follow, max, namespace, pod, ip, port, verdict, origin)",
          shown(key))));
    }
    if (!st) return unexpected(st.error());
  }
  if (!have_max && !q.follow) q.max = kDefaultFlowMax;
  return q;
}

}  // namespace retina::http
