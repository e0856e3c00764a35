#include "hubble/filter.hpp"

#include <algorithm>
#include <charconv>
#include <optional>

#include <fmt/format.h>
#include <re2/re2.h>

#include "core/flow_fields.hpp"

namespace retina::hubble {

namespace {

constexpr size_t kMaxValues = 1024;      // per field
constexpr size_t kMaxPatternBytes = 4096;

// Shows user text in an error, bounded and without control characters.
std::string quoted(std::string_view s) {
  std::string out = "\"";
  for (size_t i = 0; i < s.size() && i < 64; ++i) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c < 0x20 || c == 0x7f) out += fmt::format("\\x{:02x}", c);
    else out.push_back(static_cast<char>(c));
  }
  if (s.size() > 64) out += "...";
  out += "\"";
  return out;
}

struct Cidr {
  IpAddr base;
  unsigned bits = 128;  // in the 16-byte (IPv4-mapped) form
  bool contains(const IpAddr& ip) const noexcept {
    unsigned full = bits / 8;
    if (std::memcmp(base.bytes.data(), ip.bytes.data(), full) != 0) return false;
    if (bits % 8 == 0) return true;
    const uint8_t mask = static_cast<uint8_t>(0xff << (8 - bits % 8));
    return (base.bytes[full] & mask) == (ip.bytes[full] & mask);
  }
};

std::optional<Cidr> parse_cidr(std::string_view s) {
  const size_t slash = s.find('/');
  auto ip = IpAddr::parse(s.substr(0, slash));
  if (!ip) return std::nullopt;
  Cidr c{*ip, 128};
  if (slash == std::string_view::npos) return c;
  const std::string_view len = s.substr(slash + 1);
  unsigned n = 0;
  auto [p, ec] = std::from_chars(len.data(), len.data() + len.size(), n);
  const unsigned max = ip->is_v4() ? 32 : 128;
  if (len.empty() || ec != std::errc() || p != len.data() + len.size() || n > max) return std::nullopt;
  c.bits = ip->is_v4() ? n + 96 : n;
  // Zero the host bits so contains() compares prefixes only.
  for (unsigned b = c.bits; b < 128; ++b) c.base.bytes[b / 8] &= static_cast<uint8_t>(~(0x80u >> (b % 8)));
  return c;
}

// "namespace/prefix", "prefix" (any namespace) or "namespace/" (the whole namespace).
struct NamePattern {
  std::optional<std::string> namespace_;
  std::string prefix;
  bool matches(std::string_view ns, std::string_view name) const noexcept {
    if (namespace_ && ns != *namespace_) return false;
    return name.substr(0, prefix.size()) == prefix && (!prefix.empty() || namespace_);
  }
};

NamePattern parse_name(std::string_view s) {
  NamePattern p;
  const size_t slash = s.find('/');
  if (slash == std::string_view::npos) {
    p.prefix = s;
  } else {
    p.namespace_ = std::string(s.substr(0, slash));
    p.prefix = s.substr(slash + 1);
  }
  return p;
}

// '*' matches any run of characters other than '/'.
bool glob(std::string_view pat, std::string_view s) {
  size_t p = 0, i = 0, star = std::string_view::npos, mark = 0;
  while (i < s.size()) {
    if (p < pat.size() && pat[p] == '*') {
      star = p++;
      mark = i;
    } else if (p < pat.size() && pat[p] == s[i]) {
      ++p;
      ++i;
    } else if (star != std::string_view::npos && s[mark] != '/') {
      p = star + 1;
      i = ++mark;
    } else {
      return false;
    }
  }
  while (p < pat.size() && pat[p] == '*') ++p;
  return p == pat.size();
}

// Node names are "cluster/node"; retina's node sits in cluster "default",
// and a pattern without a cluster matches the node name alone.
bool node_matches(std::string_view pattern, std::string_view node) {
  const size_t slash = pattern.find('/');
  if (slash == std::string_view::npos) return glob(pattern, node);
  const std::string_view cluster = pattern.substr(0, slash);
  std::string_view rest = pattern.substr(slash + 1);
  if (!glob(cluster, "default")) return false;
  return rest.empty() || glob(rest, node);
}

enum class Proto { kTcp, kUdp, kIcmp, kIcmpV4, kIcmpV6, kDns, kNever };

struct EventType {
  int32_t type;
  bool match_sub;
  int32_t sub;
};

bool has_label_key(const std::vector<std::string>& labels, std::string_view key, std::string_view* value) {
  for (const auto& l : labels) {
    const size_t eq = l.find('=');
    const std::string_view k = std::string_view(l).substr(0, eq);
    if (k == key) {
      *value = eq == std::string::npos ? std::string_view() : std::string_view(l).substr(eq + 1);
      return true;
    }
  }
  return false;
}

template <class T, class V>
bool contains(const std::vector<T>& v, const V& x) {
  return std::find(v.begin(), v.end(), x) != v.end();
}

}  // namespace

// ------------------------------------------------------------- labels

Result<LabelSelector> LabelSelector::parse(std::string_view text) {
  LabelSelector sel;
  size_t i = 0;
  const auto skip_ws = [&] {
    while (i < text.size() && (text[i] == ' ' || text[i] == '\t')) ++i;
  };
  const auto key_char = [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
           c == '-' || c == '/' || c == ':';
  };
  const auto word = [&] {
    const size_t b = i;
    while (i < text.size() && key_char(text[i])) ++i;
    return text.substr(b, i - b);
  };
  const auto fail = [&](std::string_view what) {
    return unexpected(Error::invalid(fmt::format("label selector {}: {} at offset {}", quoted(text), what, i)));
  };
  skip_ws();
  if (i == text.size()) return fail("empty selector");
  while (i < text.size()) {
    skip_ws();
    Requirement r;
    bool negate = false;
    if (i < text.size() && text[i] == '!') {
      negate = true;
      ++i;
      skip_ws();
    }
    std::string_view key = word();
    if (key.empty()) return fail("expected a label key");
    if (key.starts_with("k8s:")) key.remove_prefix(4);
    if (key.empty()) return fail("expected a label key after k8s:");
    r.key = std::string(key);
    skip_ws();
    if (negate) {
      r.op = Requirement::Op::kNotExists;
    } else if (i >= text.size() || text[i] == ',') {
      r.op = Requirement::Op::kExists;
    } else if (text.substr(i, 2) == "==" || text.substr(i, 2) == "!=" || text[i] == '=') {
      const bool ne = text[i] == '!';
      i += (text.substr(i, 2) == "==" || ne) ? 2 : 1;
      skip_ws();
      r.op = ne ? Requirement::Op::kNotIn : Requirement::Op::kIn;
      r.values.emplace_back(word());
    } else {
      const std::string_view op = word();
      if (op != "in" && op != "notin") return fail("expected =, ==, !=, in or notin");
      r.op = op == "in" ? Requirement::Op::kIn : Requirement::Op::kNotIn;
      skip_ws();
      if (i >= text.size() || text[i] != '(') return fail("expected ( after in/notin");
      ++i;
      for (;;) {
        skip_ws();
        r.values.emplace_back(word());
        skip_ws();
        if (i < text.size() && text[i] == ',') {
          ++i;
          continue;
        }
        if (i < text.size() && text[i] == ')') {
          ++i;
          break;
        }
        return fail("expected , or ) in a value list");
      }
    }
    sel.reqs_.push_back(std::move(r));
    skip_ws();
    if (i < text.size()) {
      if (text[i] != ',') return fail("expected , between requirements");
      ++i;
      skip_ws();
      if (i == text.size()) return fail("expected a requirement after ,");
    }
  }
  return sel;
}

bool LabelSelector::matches(const std::vector<std::string>& labels) const noexcept {
  for (const auto& r : reqs_) {
    std::string_view value;
    const bool has = has_label_key(labels, r.key, &value);
    switch (r.op) {
      case Requirement::Op::kExists:
        if (!has) return false;
        break;
      case Requirement::Op::kNotExists:
        if (has) return false;
        break;
      case Requirement::Op::kIn:
        if (!has || !contains(r.values, value)) return false;
        break;
      case Requirement::Op::kNotIn:
        if (has && contains(r.values, value)) return false;
        break;
    }
  }
  return true;
}

// ------------------------------------------------------------- one filter

class CompiledFilter {
 public:
  struct Side {
    std::vector<Cidr> ips;
    std::vector<NamePattern> pods, services;
    std::vector<LabelSelector> labels;
    std::vector<::flow::Workload> workloads;
    std::vector<uint16_t> ports;
  };
  Side src, dst;
  std::vector<TrafficDirection> directions;
  std::vector<Verdict> verdicts;
  std::vector<EventType> event_types;
  std::vector<Proto> protocols;
  std::vector<bool> reply;
  std::vector<std::unique_ptr<re2::RE2>> dns_query;
  std::vector<uint16_t> tcp_flags;  // each a mask that must be fully set
  std::vector<std::string> node_names;
  std::vector<IpVersion> ip_versions;

  static bool side_matches(const Side& s, const IpAddr& ip, uint16_t port, const Endpoint* ep) noexcept {
    if (!s.ips.empty() && std::none_of(s.ips.begin(), s.ips.end(), [&](const Cidr& c) { return c.contains(ip); }))
      return false;
    if (!s.ports.empty() && !contains(s.ports, port)) return false;
    if (!s.pods.empty()) {
      if (!ep || ep->kind != EndpointKind::kPod) return false;
      const std::string_view ns = ep->namespace_;
      if (std::none_of(s.pods.begin(), s.pods.end(), [&](const NamePattern& p) { return p.matches(ns, ep->name); }))
        return false;
    }
    if (!s.services.empty()) {
      const std::string_view svc = flow_fields::service_of(ep);
      if (svc.empty()) return false;
      const std::string_view ns = ep->namespace_;
      if (std::none_of(s.services.begin(), s.services.end(), [&](const NamePattern& p) { return p.matches(ns, svc); }))
        return false;
    }
    if (!s.labels.empty()) {
      static const std::vector<std::string> kNone;
      const std::vector<std::string>& labels = ep ? static_cast<const std::vector<std::string>&>(ep->labels) : kNone;
      if (std::none_of(s.labels.begin(), s.labels.end(), [&](const LabelSelector& l) { return l.matches(labels); }))
        return false;
    }
    if (!s.workloads.empty()) {
      if (!ep) return false;
      bool any = false;
      for (const auto& want : s.workloads)
        for (const auto& w : ep->workloads)
          any = any || ((want.name().empty() || want.name() == w.name) && (want.kind().empty() || want.kind() == w.kind));
      if (!any) return false;
    }
    return true;
  }

  bool matches(const Flow& f, std::string_view node) const noexcept {
    if (!side_matches(src, f.src, f.src_port, f.source)) return false;
    if (!side_matches(dst, f.dst, f.dst_port, f.destination)) return false;
    if (!directions.empty() && !contains(directions, f.direction)) return false;
    if (!verdicts.empty() && !contains(verdicts, f.verdict)) return false;
    if (!event_types.empty() && std::none_of(event_types.begin(), event_types.end(), [&](const EventType& e) {
          return e.type == f.event_type && (!e.match_sub || e.sub == f.event_sub_type);
        }))
      return false;
    if (!protocols.empty() && std::none_of(protocols.begin(), protocols.end(), [&](Proto p) {
          switch (p) {
            case Proto::kTcp: return f.proto == L4Protocol::kTCP;
            case Proto::kUdp: return f.proto == L4Protocol::kUDP;
            case Proto::kIcmp: return f.proto == L4Protocol::kICMPv4 || f.proto == L4Protocol::kICMPv6;
            case Proto::kIcmpV4: return f.proto == L4Protocol::kICMPv4;
            case Proto::kIcmpV6: return f.proto == L4Protocol::kICMPv6;
            case Proto::kDns: return f.dns != nullptr;
            case Proto::kNever: return false;
          }
          return false;
        }))
      return false;
    if (!reply.empty() && (!f.is_reply_known || !contains(reply, f.is_reply))) return false;
    if (!dns_query.empty()) {
      if (!f.dns) return false;
      if (std::none_of(dns_query.begin(), dns_query.end(),
                       [&](const auto& re) { return re2::RE2::PartialMatch(f.dns->query, *re); }))
        return false;
    }
    if (!tcp_flags.empty()) {
      if (f.proto != L4Protocol::kTCP) return false;
      if (std::none_of(tcp_flags.begin(), tcp_flags.end(), [&](uint16_t m) { return (f.tcp_flags & m) == m; }))
        return false;
    }
    if (!node_names.empty() &&
        std::none_of(node_names.begin(), node_names.end(), [&](const std::string& p) { return node_matches(p, node); }))
      return false;
    if (!ip_versions.empty() && !contains(ip_versions, f.ip_version)) return false;
    return true;
  }
};

namespace {

Result<std::unique_ptr<CompiledFilter>> compile_one(const ::flow::FlowFilter& in, const std::string& at) {
  auto c = std::make_unique<CompiledFilter>();
  auto bad = [&](std::string_view field, std::string msg) {
    return unexpected(Error::invalid(fmt::format("{}.{}: {}", at, field, msg)));
  };
  // Fields whose subject retina never observes.
  const std::pair<std::string_view, int> unsupported[] = {
      {"uuid", in.uuid_size()},
      {"source_fqdn", in.source_fqdn_size()},
      {"destination_fqdn", in.destination_fqdn_size()},
      {"http_status_code", in.http_status_code_size()},
      {"http_method", in.http_method_size()},
      {"http_path", in.http_path_size()},
      {"source_identity", in.source_identity_size()},
      {"destination_identity", in.destination_identity_size()},
      {"trace_id", in.trace_id_size()},
  };
  for (const auto& [name, n] : unsupported)
    if (n) return bad(name, "not supported by retina (it observes no such field)");

  const std::pair<std::string_view, const google::protobuf::RepeatedPtrField<std::string>*> sized[] = {
      {"source_ip", &in.source_ip()},        {"destination_ip", &in.destination_ip()},
      {"source_pod", &in.source_pod()},      {"destination_pod", &in.destination_pod()},
      {"source_label", &in.source_label()},  {"destination_label", &in.destination_label()},
      {"source_service", &in.source_service()}, {"destination_service", &in.destination_service()},
      {"protocol", &in.protocol()},          {"source_port", &in.source_port()},
      {"destination_port", &in.destination_port()}, {"dns_query", &in.dns_query()},
      {"node_name", &in.node_name()},
  };
  for (const auto& [name, field] : sized) {
    if (static_cast<size_t>(field->size()) > kMaxValues) return bad(name, fmt::format("more than {} values", kMaxValues));
    for (const auto& v : *field)
      if (v.size() > kMaxPatternBytes) return bad(name, fmt::format("a value is longer than {} bytes", kMaxPatternBytes));
  }

  struct SideIn {
    CompiledFilter::Side& side;
    const char* prefix;
    const google::protobuf::RepeatedPtrField<std::string>& ips;
    const google::protobuf::RepeatedPtrField<std::string>& pods;
    const google::protobuf::RepeatedPtrField<std::string>& labels;
    const google::protobuf::RepeatedPtrField<std::string>& services;
    const google::protobuf::RepeatedPtrField<::flow::Workload>& workloads;
    const google::protobuf::RepeatedPtrField<std::string>& ports;
  };
  const SideIn sides[] = {
      {c->src, "source", in.source_ip(), in.source_pod(), in.source_label(), in.source_service(),
       in.source_workload(), in.source_port()},
      {c->dst, "destination", in.destination_ip(), in.destination_pod(), in.destination_label(),
       in.destination_service(), in.destination_workload(), in.destination_port()},
  };
  for (const auto& s : sides) {
    const std::string p = s.prefix;
    for (const auto& v : s.ips) {
      auto cidr = parse_cidr(v);
      if (!cidr) return bad(p + "_ip", fmt::format("{} is not an IP address or CIDR", quoted(v)));
      s.side.ips.push_back(*cidr);
    }
    for (const auto& v : s.pods) {
      if (v.empty()) return bad(p + "_pod", "empty pattern");
      s.side.pods.push_back(parse_name(v));
    }
    for (const auto& v : s.services) {
      if (v.empty()) return bad(p + "_service", "empty pattern");
      s.side.services.push_back(parse_name(v));
    }
    for (const auto& v : s.labels) {
      auto sel = LabelSelector::parse(v);
      if (!sel) return bad(p + "_label", sel.error().message);
      s.side.labels.push_back(std::move(*sel));
    }
    for (const auto& w : s.workloads) s.side.workloads.push_back(w);
    for (const auto& v : s.ports) {
      unsigned port = 0;
      auto [ptr, ec] = std::from_chars(v.data(), v.data() + v.size(), port);
      if (v.empty() || ec != std::errc() || ptr != v.data() + v.size() || port > 65535)
        return bad(p + "_port", fmt::format("{} is not a port number (0-65535)", quoted(v)));
      s.side.ports.push_back(static_cast<uint16_t>(port));
    }
  }

  for (int d : in.traffic_direction()) {
    if (d < 0 || d > 2) return bad("traffic_direction", fmt::format("unknown direction {}", d));
    c->directions.push_back(static_cast<TrafficDirection>(d));
  }
  for (int v : in.verdict()) {
    if (v < 0 || v > 255) return bad("verdict", fmt::format("unknown verdict {}", v));
    c->verdicts.push_back(static_cast<Verdict>(v));
  }
  for (const auto& e : in.event_type()) c->event_types.push_back({e.type(), e.match_sub_type(), e.sub_type()});
  for (const auto& p : in.protocol()) {
    std::string l(p);
    for (char& ch : l) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    if (l == "tcp") c->protocols.push_back(Proto::kTcp);
    else if (l == "udp") c->protocols.push_back(Proto::kUdp);
    else if (l == "icmp") c->protocols.push_back(Proto::kIcmp);
    else if (l == "icmpv4") c->protocols.push_back(Proto::kIcmpV4);
    else if (l == "icmpv6") c->protocols.push_back(Proto::kIcmpV6);
    else if (l == "dns") c->protocols.push_back(Proto::kDns);
    else if (l == "sctp" || l == "http" || l == "kafka") c->protocols.push_back(Proto::kNever);
    else return bad("protocol", fmt::format("unknown protocol {} (tcp, udp, sctp, icmp, icmpv4, icmpv6, dns, http, kafka)", quoted(p)));
  }
  for (bool r : in.reply()) c->reply.push_back(r);
  for (const auto& q : in.dns_query()) {
    re2::RE2::Options o;
    o.set_log_errors(false);
    o.set_max_mem(1 << 20);
    auto re = std::make_unique<re2::RE2>(q, o);
    if (!re->ok()) return bad("dns_query", fmt::format("{} is not an RE2 pattern: {}", quoted(q), re->error()));
    c->dns_query.push_back(std::move(re));
  }
  for (const auto& t : in.tcp_flags()) {
    uint16_t m = 0;
    if (t.fin()) m |= kFIN;
    if (t.syn()) m |= kSYN;
    if (t.rst()) m |= kRST;
    if (t.psh()) m |= kPSH;
    if (t.ack()) m |= kACK;
    if (t.urg()) m |= kURG;
    if (t.ece()) m |= kECE;
    if (t.cwr()) m |= kCWR;
    if (t.ns()) m |= kNS;
    if (!m) return bad("tcp_flags", "an entry sets no flag");
    c->tcp_flags.push_back(m);
  }
  for (const auto& n : in.node_name()) {
    if (n.empty()) return bad("node_name", "empty pattern");
    c->node_names.push_back(n);
  }
  for (int v : in.ip_version()) {
    if (v < 0 || v > 2) return bad("ip_version", fmt::format("unknown IP version {}", v));
    c->ip_versions.push_back(static_cast<IpVersion>(v));
  }
  return c;
}

}  // namespace

FlowFilters::FlowFilters() = default;
FlowFilters::~FlowFilters() = default;
FlowFilters::FlowFilters(FlowFilters&&) noexcept = default;
FlowFilters& FlowFilters::operator=(FlowFilters&&) noexcept = default;

Result<FlowFilters> FlowFilters::compile(const google::protobuf::RepeatedPtrField<::flow::FlowFilter>& whitelist,
                                         const google::protobuf::RepeatedPtrField<::flow::FlowFilter>& blacklist) {
  FlowFilters out;
  if (static_cast<size_t>(whitelist.size() + blacklist.size()) > kMaxValues)
    return unexpected(Error::invalid(fmt::format("more than {} filters", kMaxValues)));
  for (int i = 0; i < whitelist.size(); ++i) {
    auto c = compile_one(whitelist[i], fmt::format("whitelist[{}]", i));
    if (!c) return unexpected(c.error());
    out.whitelist_.push_back(std::move(*c));
  }
  for (int i = 0; i < blacklist.size(); ++i) {
    auto c = compile_one(blacklist[i], fmt::format("blacklist[{}]", i));
    if (!c) return unexpected(c.error());
    out.blacklist_.push_back(std::move(*c));
  }
  return out;
}

bool FlowFilters::matches(const Flow& f, std::string_view node) const noexcept {
  if (!whitelist_.empty() &&
      std::none_of(whitelist_.begin(), whitelist_.end(), [&](const auto& c) { return c->matches(f, node); }))
    return false;
  return std::none_of(blacklist_.begin(), blacklist_.end(), [&](const auto& c) { return c->matches(f, node); });
}

}  // namespace retina::hubble
