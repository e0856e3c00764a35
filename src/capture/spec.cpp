// The capture spec in Retina's Capture CRD shape: JSON in (CRD objects and
// the agent API), JSON out (the CLI and metadata.json), and the packet
// filter it compiles to.
#include <charconv>
#include <string>
#include <string_view>

#include <fmt/format.h>
#include <simdjson.h>

#include "core/flow_json.hpp"
#include "retina/capture.hpp"
#include "retina/config.hpp"
#include "retina/ip.hpp"

namespace retina::capture {
namespace {

namespace dom = simdjson::dom;

Error bad(std::string_view where, std::string_view what) {
  return Error::invalid(fmt::format("capture spec: {}: {}", where, what));
}

Result<std::string> get_string(dom::element e, std::string_view where) {
  std::string_view s;
  if (e.get_string().get(s)) return unexpected(bad(where, "expected a string"));
  return std::string(s);
}

Result<uint64_t> get_uint(dom::element e, std::string_view where) {
  uint64_t v = 0;
  if (e.get_uint64().get(v)) return unexpected(bad(where, "expected a non-negative integer"));
  return v;
}

Result<std::vector<std::string>> get_strings(dom::element e, std::string_view where) {
  dom::array a;
  if (e.get_array().get(a)) return unexpected(bad(where, "expected a list of strings"));
  std::vector<std::string> out;
  for (dom::element v : a) {
    auto s = get_string(v, where);
    if (!s) return unexpected(s.error());
    out.push_back(std::move(*s));
  }
  return out;
}

Result<dom::object> get_object(dom::element e, std::string_view where) {
  dom::object o;
  if (e.get_object().get(o)) return unexpected(bad(where, "expected an object"));
  return o;
}

Result<LabelSelector> get_selector(dom::element e, std::string_view where) {
  auto o = get_object(e, where);
  if (!o) return unexpected(o.error());
  LabelSelector sel;
  sel.present = true;
  for (auto [key, value] : *o) {
    if (key == "matchLabels") {
      auto labels = get_object(value, fmt::format("{}.matchLabels", where));
      if (!labels) return unexpected(labels.error());
      for (auto [k, v] : *labels) {
        auto s = get_string(v, fmt::format("{}.matchLabels.{}", where, k));
        if (!s) return unexpected(s.error());
        // Validated by the text parser: one rule for both syntaxes.
        auto one = parse_label_selector(fmt::format("{}={}", k, *s));
        if (!one || one->requirements.size() != 1) {
          return unexpected(bad(where, fmt::format("bad label {}={}", k, *s)));
        }
        sel.requirements.push_back(std::move(one->requirements.front()));
      }
    } else if (key == "matchExpressions") {
      dom::array exprs;
      if (value.get_array().get(exprs)) return unexpected(bad(where, "matchExpressions: expected a list"));
      for (dom::element x : exprs) {
        auto xo = get_object(x, fmt::format("{}.matchExpressions[]", where));
        if (!xo) return unexpected(xo.error());
        LabelRequirement r;
        std::string op;
        for (auto [xk, xv] : *xo) {
          if (xk == "key") {
            auto s = get_string(xv, "matchExpressions[].key");
            if (!s) return unexpected(s.error());
            r.key = std::move(*s);
          } else if (xk == "operator") {
            auto s = get_string(xv, "matchExpressions[].operator");
            if (!s) return unexpected(s.error());
            op = std::move(*s);
          } else if (xk == "values") {
            auto s = get_strings(xv, "matchExpressions[].values");
            if (!s) return unexpected(s.error());
            r.values = std::move(*s);
          } else {
            return unexpected(bad(where, fmt::format("matchExpressions[]: unknown field '{}'", xk)));
          }
        }
        if (op == "In") r.op = LabelRequirement::Op::kIn;
        else if (op == "NotIn") r.op = LabelRequirement::Op::kNotIn;
        else if (op == "Exists") r.op = LabelRequirement::Op::kExists;
        else if (op == "DoesNotExist") r.op = LabelRequirement::Op::kDoesNotExist;
        else return unexpected(bad(where, fmt::format("matchExpressions[]: unknown operator '{}'", op)));
        if (r.key.empty()) return unexpected(bad(where, "matchExpressions[]: key is required"));
        const bool set_op = r.op == LabelRequirement::Op::kIn || r.op == LabelRequirement::Op::kNotIn;
        if (set_op == r.values.empty()) {
          return unexpected(bad(where, fmt::format("matchExpressions[]: {} {} values", op, set_op ? "needs" : "takes no")));
        }
        sel.requirements.push_back(std::move(r));
      }
    } else {
      return unexpected(bad(where, fmt::format("unknown field '{}'", key)));
    }
  }
  return sel;
}

bool valid_name(std::string_view n) {
  if (n.empty() || n.size() > 63) return false;
  for (char c : n) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.')) return false;
  }
  return n.front() != '-' && n.front() != '.' && n.back() != '-' && n.back() != '.';
}

#define TRY_ASSIGN(dst, expr)                        \
  do {                                               \
    auto r_ = (expr);                                \
    if (!r_) return unexpected(std::move(r_.error())); \
    dst = std::move(*r_);                            \
  } while (0)

Status parse_target(dom::element e, Spec& spec) {
  auto o = get_object(e, "captureTarget");
  if (!o) return unexpected(o.error());
  for (auto [k, v] : *o) {
    if (k == "namespaceSelector") TRY_ASSIGN(spec.namespace_selector, get_selector(v, "captureTarget.namespaceSelector"));
    else if (k == "podSelector") TRY_ASSIGN(spec.pod_selector, get_selector(v, "captureTarget.podSelector"));
    else if (k == "nodeSelector") TRY_ASSIGN(spec.node_selector, get_selector(v, "captureTarget.nodeSelector"));
    else if (k == "nodeNames") TRY_ASSIGN(spec.node_names, get_strings(v, "captureTarget.nodeNames"));
    else if (k == "podNames") {
      TRY_ASSIGN(spec.pod_names, get_strings(v, "captureTarget.podNames"));
      for (const auto& n : spec.pod_names) {
        const size_t slash = n.find('/');
        const bool ok_name = slash == std::string::npos
                                 ? valid_name(n)
                                 : valid_name(std::string_view(n).substr(0, slash)) &&
                                       valid_name(std::string_view(n).substr(slash + 1));
        if (!ok_name) {
          return unexpected(bad("captureTarget.podNames", fmt::format("'{}': expected a pod name or namespace/name", n)));
        }
      }
    }
    else return unexpected(bad("captureTarget", fmt::format("unknown field '{}'", k)));
  }
  return ok();
}

Status parse_option(dom::element e, Spec& spec) {
  auto o = get_object(e, "captureOption");
  if (!o) return unexpected(o.error());
  for (auto [k, v] : *o) {
    if (k == "duration") {
      std::string text;
      TRY_ASSIGN(text, get_string(v, "captureOption.duration"));
      auto d = parse_duration(text);
      if (!d) return unexpected(bad("captureOption.duration", d.error().message));
      if (d->count() <= 0) return unexpected(bad("captureOption.duration", "must be above zero"));
      spec.duration = std::chrono::duration_cast<std::chrono::milliseconds>(*d);
      if (spec.duration.count() == 0) return unexpected(bad("captureOption.duration", "must be at least 1ms"));
    } else if (k == "maxCaptureSize") {
      uint64_t mb = 0;
      TRY_ASSIGN(mb, get_uint(v, "captureOption.maxCaptureSize"));
      if (mb == 0 || mb > (1ull << 20)) return unexpected(bad("captureOption.maxCaptureSize", "must be 1..1048576 (MB)"));
      spec.max_capture_bytes = mb << 20;
    } else if (k == "maxCaptureBytes") {
      TRY_ASSIGN(spec.max_capture_bytes, get_uint(v, "captureOption.maxCaptureBytes"));
      if (spec.max_capture_bytes == 0) return unexpected(bad("captureOption.maxCaptureBytes", "must be above zero"));
    } else if (k == "packetSize") {
      uint64_t n = 0;
      TRY_ASSIGN(n, get_uint(v, "captureOption.packetSize"));
      if (n != 0 && (n < 64 || n > 262144)) return unexpected(bad("captureOption.packetSize", "must be 64..262144 bytes"));
      spec.packet_size = static_cast<uint32_t>(n);
    } else if (k == "fileCount") {
      uint64_t n = 0;
      TRY_ASSIGN(n, get_uint(v, "captureOption.fileCount"));
      if (n < 1 || n > 1000) return unexpected(bad("captureOption.fileCount", "must be 1..1000"));
      spec.file_count = static_cast<uint32_t>(n);
    } else if (k == "maxPackets") {
      TRY_ASSIGN(spec.max_packets, get_uint(v, "captureOption.maxPackets"));
    } else if (k == "interfaces") {
      TRY_ASSIGN(spec.interfaces, get_strings(v, "captureOption.interfaces"));
    } else if (k == "format") {
      std::string f;
      TRY_ASSIGN(f, get_string(v, "captureOption.format"));
      if (f == "pcap") spec.format = FileFormat::kPcap;
      else if (f == "pcapng") spec.format = FileFormat::kPcapng;
      else return unexpected(bad("captureOption.format", fmt::format("'{}': expected pcap or pcapng", f)));
    } else {
      return unexpected(bad("captureOption", fmt::format("unknown field '{}'", k)));
    }
  }
  return ok();
}

Status parse_configuration(dom::element e, Spec& spec) {
  auto o = get_object(e, "captureConfiguration");
  if (!o) return unexpected(o.error());
  for (auto [k, v] : *o) {
    if (k == "captureTarget") {
      if (auto st = parse_target(v, spec); !st) return st;
    } else if (k == "captureOption") {
      if (auto st = parse_option(v, spec); !st) return st;
    } else if (k == "tcpdumpFilter") {
      TRY_ASSIGN(spec.tcpdump_filter, get_string(v, "captureConfiguration.tcpdumpFilter"));
    } else if (k == "includeMetadata") {
      bool b = true;
      if (v.get_bool().get(b)) return unexpected(bad("captureConfiguration.includeMetadata", "expected true or false"));
      spec.include_metadata = b;
    } else if (k == "filters") {
      auto f = get_object(v, "captureConfiguration.filters");
      if (!f) return unexpected(f.error());
      for (auto [fk, fv] : *f) {
        if (fk == "include") TRY_ASSIGN(spec.include_filter, get_strings(fv, "filters.include"));
        else if (fk == "exclude") TRY_ASSIGN(spec.exclude_filter, get_strings(fv, "filters.exclude"));
        else return unexpected(bad("filters", fmt::format("unknown field '{}'", fk)));
      }
    } else {
      return unexpected(bad("captureConfiguration", fmt::format("unknown field '{}'", k)));
    }
  }
  return ok();
}

Status parse_output(dom::element e, Spec& spec) {
  auto o = get_object(e, "outputConfiguration");
  if (!o) return unexpected(o.error());
  for (auto [k, v] : *o) {
    if (k == "hostPath") TRY_ASSIGN(spec.host_path, get_string(v, "outputConfiguration.hostPath"));
    else if (k == "persistentVolumeClaim") TRY_ASSIGN(spec.pvc, get_string(v, "outputConfiguration.persistentVolumeClaim"));
    else if (k == "blobUpload") {
      // Retina names a Secret holding the SAS URL; a URL is taken as it is.
      std::string text;
      TRY_ASSIGN(text, get_string(v, "outputConfiguration.blobUpload"));
      if (text.starts_with("https://") || text.starts_with("http://")) {
        spec.blob_sas_url = std::move(text);
      } else if (valid_name(text)) {
        spec.blob_secret_name = std::move(text);
      } else {
        return unexpected(bad("outputConfiguration.blobUpload", "expected a Secret name or a container SAS URL"));
      }
    }
    else if (k == "s3Upload") {
      auto s = get_object(v, "outputConfiguration.s3Upload");
      if (!s) return unexpected(s.error());
      for (auto [sk, sv] : *s) {
        const std::string where = fmt::format("s3Upload.{}", sk);
        std::string text;
        TRY_ASSIGN(text, get_string(sv, where));
        if (sk == "bucket") spec.s3.bucket = std::move(text);
        else if (sk == "region") spec.s3.region = std::move(text);
        else if (sk == "endpoint") spec.s3.endpoint = std::move(text);
        else if (sk == "path") spec.s3.path = std::move(text);
        else if (sk == "secretName") spec.s3.secret_name = std::move(text);
        else if (sk == "accessKeyID") spec.s3.access_key_id = std::move(text);
        else if (sk == "secretAccessKey") spec.s3.secret_access_key = std::move(text);
        else return unexpected(bad("s3Upload", fmt::format("unknown field '{}'", sk)));
      }
      if (spec.s3.bucket.empty()) return unexpected(bad("s3Upload", "bucket is required"));
    } else {
      return unexpected(bad("outputConfiguration", fmt::format("unknown field '{}'", k)));
    }
  }
  return ok();
}

Result<Spec> parse_spec_element(dom::element e, std::string name) {
  if (!valid_name(name)) {
    return unexpected(Error::invalid(fmt::format(
        "capture name '{}': use 1-63 lowercase letters, digits, '-' or '.', starting and ending alphanumeric", name)));
  }
  Spec spec;
  spec.name = std::move(name);
  auto o = get_object(e, "spec");
  if (!o) return unexpected(o.error());
  for (auto [k, v] : *o) {
    if (k == "captureConfiguration") {
      if (auto st = parse_configuration(v, spec); !st) return unexpected(st.error());
    } else if (k == "outputConfiguration") {
      if (auto st = parse_output(v, spec); !st) return unexpected(st.error());
    } else {
      return unexpected(bad("spec", fmt::format("unknown field '{}'", k)));
    }
  }
  return spec;
}

Result<dom::element> parse_document(dom::parser& parser, std::string_view json) {
  dom::element doc;
  if (auto err = parser.parse(simdjson::padded_string(json)).get(doc)) {
    return unexpected(Error::invalid(fmt::format("capture spec: invalid JSON ({})", simdjson::error_message(err))));
  }
  return doc;
}

void append_selector(std::string& out, const LabelSelector& sel) {
  out += "{\"matchExpressions\":[";
  bool first = true;
  for (const auto& r : sel.requirements) {
    if (!first) out.push_back(',');
    first = false;
    out += "{\"key\":";
    json::append_string(out, r.key);
    out += ",\"operator\":";
    static constexpr const char* kOps[] = {"In", "NotIn", "Exists", "DoesNotExist"};
    json::append_string(out, kOps[static_cast<int>(r.op)]);
    if (!r.values.empty()) {
      out += ",\"values\":[";
      for (size_t i = 0; i < r.values.size(); ++i) {
        if (i) out.push_back(',');
        json::append_string(out, r.values[i]);
      }
      out.push_back(']');
    }
    out.push_back('}');
  }
  out += "]}";
}

void append_strings(std::string& out, const std::vector<std::string>& v) {
  out.push_back('[');
  for (size_t i = 0; i < v.size(); ++i) {
    if (i) out.push_back(',');
    json::append_string(out, v[i]);
  }
  out.push_back(']');
}

void append_field(std::string& out, bool& first, std::string_view key) {
  if (!first) out.push_back(',');
  first = false;
  json::append_string(out, key);
  out.push_back(':');
}

// One include/exclude entry as a pcap expression: "IP", "IP:port",
// "[v6]:port", "*" or "*:port".
Result<std::string> shortcut(std::string_view entry) {
  std::string_view host = entry, port;
  if (!entry.empty() && entry.front() == '[') {
    const size_t close = entry.find(']');
    if (close == std::string_view::npos) return unexpected(Error::invalid(fmt::format("filter '{}': missing ']'", entry)));
    host = entry.substr(1, close - 1);
    std::string_view rest = entry.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') return unexpected(Error::invalid(fmt::format("filter '{}': expected ':port'", entry)));
      port = rest.substr(1);
    }
  } else if (entry.find(':') == entry.rfind(':') && entry.find(':') != std::string_view::npos) {
    host = entry.substr(0, entry.find(':'));
    port = entry.substr(entry.find(':') + 1);
  }
  std::string port_expr;
  if (!port.empty() || entry.ends_with(":")) {
    unsigned p = 0;
    auto [ptr, ec] = std::from_chars(port.data(), port.data() + port.size(), p);
    if (ec != std::errc() || ptr != port.data() + port.size() || p == 0 || p > 65535) {
      return unexpected(Error::invalid(fmt::format("filter '{}': bad port '{}'", entry, port)));
    }
    port_expr = fmt::format("port {}", p);
  }
  if (host == "*") return port_expr.empty() ? std::string() : port_expr;
  auto ip = IpAddr::parse(host);
  if (!ip) return unexpected(Error::invalid(fmt::format("filter '{}': '{}' is not an IP address", entry, host)));
  const std::string host_expr = fmt::format("host {}", ip->to_string());
  return port_expr.empty() ? host_expr : fmt::format("({} and {})", host_expr, port_expr);
}

// "(a or b)"; an empty expression (from "*") matches everything.
Result<std::string> any_of(const std::vector<std::string>& entries, bool& everything) {
  std::string out;
  everything = false;
  for (const auto& e : entries) {
    auto x = shortcut(e);
    if (!x) return unexpected(x.error());
    if (x->empty()) everything = true;
    if (!out.empty()) out += " or ";
    out += x->empty() ? "(ip or ip6)" : *x;
  }
  return "(" + out + ")";
}

}  // namespace

Result<Spec> parse_spec_json(std::string_view json, std::string name) {
  dom::parser parser;
  auto doc = parse_document(parser, json);
  if (!doc) return unexpected(doc.error());
  return parse_spec_element(*doc, std::move(name));
}

Result<Spec> parse_request_json(std::string_view json) {
  dom::parser parser;
  auto doc = parse_document(parser, json);
  if (!doc) return unexpected(doc.error());
  auto o = get_object(*doc, "request");
  if (!o) return unexpected(o.error());
  std::string name, ns;
  dom::element spec_el;
  bool has_spec = false;
  for (auto [k, v] : *o) {
    if (k == "name") {
      TRY_ASSIGN(name, get_string(v, "name"));
    } else if (k == "metadata") {
      auto m = get_object(v, "metadata");
      if (!m) return unexpected(m.error());
      for (auto [mk, mv] : *m) {
        if (mk == "name") TRY_ASSIGN(name, get_string(mv, "metadata.name"));
        else if (mk == "namespace") TRY_ASSIGN(ns, get_string(mv, "metadata.namespace"));
      }
    } else if (k == "spec") {
      spec_el = v;
      has_spec = true;
    } else if (k != "apiVersion" && k != "kind" && k != "status") {
      return unexpected(bad("request", fmt::format("unknown field '{}'", k)));
    }
  }
  if (name.empty()) return unexpected(Error::invalid("capture spec: a name is required"));
  if (!has_spec) return unexpected(Error::invalid("capture spec: 'spec' is required"));
  auto spec = parse_spec_element(spec_el, std::move(name));
  if (spec) spec->namespace_ = std::move(ns);
  return spec;
}

std::string spec_to_json(const Spec& s) {
  std::string out = "{\"captureConfiguration\":{\"captureTarget\":{";
  bool first = true;
  if (s.namespace_selector.present) {
    append_field(out, first, "namespaceSelector");
    append_selector(out, s.namespace_selector);
  }
  if (s.pod_selector.present) {
    append_field(out, first, "podSelector");
    append_selector(out, s.pod_selector);
  }
  if (s.node_selector.present) {
    append_field(out, first, "nodeSelector");
    append_selector(out, s.node_selector);
  }
  if (!s.node_names.empty()) {
    append_field(out, first, "nodeNames");
    append_strings(out, s.node_names);
  }
  if (!s.pod_names.empty()) {
    append_field(out, first, "podNames");
    append_strings(out, s.pod_names);
  }
  out += "},\"captureOption\":{\"duration\":";
  json::append_string(out, fmt::format("{}ms", s.duration.count()));
  if (s.max_capture_bytes % (1ull << 20) == 0) {
    out += fmt::format(",\"maxCaptureSize\":{}", s.max_capture_bytes >> 20);
  } else {
    out += fmt::format(",\"maxCaptureBytes\":{}", s.max_capture_bytes);
  }
  if (s.packet_size) out += fmt::format(",\"packetSize\":{}", s.packet_size);
  if (s.max_packets) out += fmt::format(",\"maxPackets\":{}", s.max_packets);
  if (s.file_count > 1) out += fmt::format(",\"fileCount\":{}", s.file_count);
  if (!s.interfaces.empty()) {
    out += ",\"interfaces\":";
    append_strings(out, s.interfaces);
  }
  out += fmt::format(",\"format\":\"{}\"}}", s.format == FileFormat::kPcapng ? "pcapng" : "pcap");
  if (!s.tcpdump_filter.empty()) {
    out += ",\"tcpdumpFilter\":";
    json::append_string(out, s.tcpdump_filter);
  }
  if (!s.include_filter.empty() || !s.exclude_filter.empty()) {
    out += ",\"filters\":{\"include\":";
    append_strings(out, s.include_filter);
    out += ",\"exclude\":";
    append_strings(out, s.exclude_filter);
    out.push_back('}');
  }
  out += s.include_metadata ? ",\"includeMetadata\":true}" : ",\"includeMetadata\":false}";
  out += ",\"outputConfiguration\":{";
  first = true;
  if (!s.host_path.empty()) {
    append_field(out, first, "hostPath");
    json::append_string(out, s.host_path);
  }
  if (!s.pvc.empty()) {
    append_field(out, first, "persistentVolumeClaim");
    json::append_string(out, s.pvc);
  }
  if (!s.blob_sas_url.empty() || !s.blob_secret_name.empty()) {
    append_field(out, first, "blobUpload");
    json::append_string(out, s.blob_sas_url.empty() ? s.blob_secret_name : s.blob_sas_url);
  }
  if (s.s3.enabled()) {
    append_field(out, first, "s3Upload");
    bool f2 = true;
    const std::pair<const char*, const std::string*> fields[] = {
        {"bucket", &s.s3.bucket},         {"region", &s.s3.region},
        {"endpoint", &s.s3.endpoint},     {"path", &s.s3.path},
        {"secretName", &s.s3.secret_name}, {"accessKeyID", &s.s3.access_key_id},
        {"secretAccessKey", &s.s3.secret_access_key}};
    out.push_back('{');
    for (const auto& [k, v] : fields) {
      if (v->empty()) continue;
      append_field(out, f2, k);
      json::append_string(out, *v);
    }
    out.push_back('}');
  }
  out += "}}";
  return out;
}

Spec without_credentials(Spec s) {
  s.s3.access_key_id.clear();
  s.s3.secret_access_key.clear();
  // The SAS token is the query string; the container URL alone is kept.
  if (const size_t q = s.blob_sas_url.find('?'); q != std::string::npos) s.blob_sas_url.resize(q);
  if (!s.blob_secret_name.empty()) s.blob_sas_url.clear();
  return s;
}

Result<std::string> build_filter(const Spec& spec) {
  std::string out;
  bool everything = false;
  if (!spec.include_filter.empty()) {
    auto inc = any_of(spec.include_filter, everything);
    if (!inc) return unexpected(inc.error());
    if (!everything) out = *inc;
  }
  if (!spec.exclude_filter.empty()) {
    bool all = false;
    auto exc = any_of(spec.exclude_filter, all);
    if (!exc) return unexpected(exc.error());
    if (all) return unexpected(Error::invalid("filters.exclude: '*' would exclude every packet"));
    out = out.empty() ? "not " + *exc : out + " and not " + *exc;
  }
  if (!spec.tcpdump_filter.empty()) {
    out = out.empty() ? spec.tcpdump_filter : fmt::format("({}) and ({})", out, spec.tcpdump_filter);
  }
  return out;
}

}  // namespace retina::capture
