// Python values <-> retina types, with errors that name the argument.
#include <fmt/format.h>

#include <cstring>

#include "bindings.hpp"
#include "retina/flow_sources.hpp"

namespace retina::py {

namespace {

std::string short_repr(py::handle obj) {
  std::string s = py::repr(obj).cast<std::string>();
  if (s.size() > 60) s = s.substr(0, 57) + "...";
  return s;
}

struct VerdictName {
  const char* name;
  Verdict v;
};
constexpr VerdictName kVerdicts[] = {
    {"VERDICT_UNKNOWN", Verdict::VERDICT_UNKNOWN}, {"FORWARDED", Verdict::FORWARDED},
    {"DROPPED", Verdict::DROPPED},                 {"ERROR", Verdict::ERROR},
    {"RETRANSMISSION", Verdict::RETRANSMISSION},   {"DNS", Verdict::DNS},
};

}  // namespace

IpAddr to_ip(py::handle obj, std::string_view what) {
  if (py::isinstance<py::bytes>(obj)) {
    std::string raw = obj.cast<std::string>();
    if (raw.size() == 4) return IpAddr::from_v4_bytes(reinterpret_cast<const uint8_t*>(raw.data()));
    if (raw.size() == 16) return IpAddr::from_v6_bytes(reinterpret_cast<const uint8_t*>(raw.data()));
    raise_invalid(fmt::format("{}: {} bytes is not an address (4 or 16 bytes)", what, raw.size()));
  }
  // str and ipaddress.IPv4Address/IPv6Address alike.
  std::string text = py::str(obj).cast<std::string>();
  auto ip = IpAddr::parse(text);
  if (!ip) raise_invalid(fmt::format("{}: {} is not an IPv4 or IPv6 address", what, short_repr(obj)));
  return *ip;
}

py::str ip_str(const IpAddr& ip) {
  std::string s;
  ip.append_to(s);
  return py::str(s);
}

std::vector<std::string> to_string_list(py::handle obj, std::string_view what) {
  std::vector<std::string> out;
  if (obj.is_none()) return out;
  if (py::isinstance<py::str>(obj)) {
    out.push_back(obj.cast<std::string>());
    return out;
  }
  if (!py::isinstance<py::iterable>(obj)) {
    raise_invalid(fmt::format("{}: expected a list of strings, got {}", what, short_repr(obj)));
  }
  for (py::handle item : obj) {
    if (!py::isinstance<py::str>(item)) {
      raise_invalid(fmt::format("{}: expected strings, got {}", what, short_repr(item)));
    }
    out.push_back(item.cast<std::string>());
  }
  return out;
}

Verdict verdict_from(py::handle obj) {
  if (py::isinstance<py::int_>(obj)) {
    const long v = obj.cast<long>();
    for (const auto& n : kVerdicts)
      if (static_cast<long>(n.v) == v) return n.v;
  } else if (py::isinstance<py::str>(obj)) {
    std::string s = obj.cast<std::string>();
    for (char& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    for (const auto& n : kVerdicts)
      if (s == n.name) return n.v;
  }
  raise_invalid(fmt::format("verdict: {} is not one of FORWARDED, DROPPED, ERROR, RETRANSMISSION, DNS, "
                            "VERDICT_UNKNOWN",
                            short_repr(obj)));
}

const char* origin_name(FlowSource s) { return to_string(s).data(); }  // the table's names are literals

FlowSource origin_from(py::handle obj) {
  if (py::isinstance<py::str>(obj)) {
    if (auto s = flow_source_from(obj.cast<std::string>())) return *s;
  }
  raise_invalid(fmt::format("origin: {} is not one of {}", short_repr(obj), flow_source_names()));
}

std::string tcp_flags_text(uint16_t flags) {
  std::string out;
  for (size_t i = 0; i < kTcpFlagNames.size(); ++i) {
    if (!(flags & (1u << i))) continue;
    if (!out.empty()) out.push_back('|');
    out.append(kTcpFlagNames[i]);
  }
  return out;
}

const char* proto_name(L4Protocol p) { return p == L4Protocol::kNone ? "" : to_string(p); }

FlowFilter to_filter(py::handle obj) {
  FlowFilter f;
  if (obj.is_none()) return f;
  py::dict d;
  if (py::isinstance<py::dict>(obj)) {
    d = py::reinterpret_borrow<py::dict>(obj);
  } else if (py::hasattr(obj, "_asdict")) {
    d = obj.attr("_asdict")();
  } else {
    raise_invalid(fmt::format("filter: expected a dict or retina.FlowFilter, got {}", short_repr(obj)));
  }
  // A single value is accepted where a list is expected.
  auto items = [](py::handle v) -> py::list {
    if (v.is_none()) return py::list();
    if (py::isinstance<py::str>(v) || py::isinstance<py::int_>(v) || !py::isinstance<py::iterable>(v)) {
      py::list l;
      l.append(v);
      return l;
    }
    return py::list(py::reinterpret_borrow<py::iterable>(v));
  };
  for (auto [k, v] : d) {
    const std::string key = py::str(k).cast<std::string>();
    if (key == "verdicts") {
      for (py::handle x : items(v)) f.verdicts.push_back(verdict_from(x));
    } else if (key == "origins") {
      for (py::handle x : items(v)) f.origins.push_back(origin_from(x));
    } else if (key == "namespaces") {
      f.namespaces = to_string_list(items(v), "filter namespaces");
    } else if (key == "pods") {
      f.pod_names = to_string_list(items(v), "filter pods");
    } else if (key == "ips") {
      for (py::handle x : items(v)) f.ips.push_back(to_ip(x, "filter ips"));
    } else if (key == "ports") {
      for (py::handle x : items(v)) {
        long port = -1;
        if (py::isinstance<py::int_>(x)) port = x.cast<long>();
        if (port < 0 || port > 65535) {
          raise_invalid(fmt::format("filter ports: {} is not a port (0-65535)", short_repr(x)));
        }
        f.ports.push_back(static_cast<uint16_t>(port));
      }
    } else {
      raise_invalid(fmt::format("filter: unknown key \"{}\" (expected verdicts, origins, namespaces, pods, ips, ports)",
                                key));
    }
  }
  return f;
}

}  // namespace retina::py
