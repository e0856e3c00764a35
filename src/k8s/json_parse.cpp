// The DOM API on purpose: its parse runs the best SIMD kernel for the CPU at
// run time, while the on-demand API is compiled for the build's baseline
// target (the scalar fallback on a generic x86-64 build), several times slower.
#include "k8s/json_parse.hpp"

#include <algorithm>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/format.h>
#include <simdjson.h>

#include "k8s/metrics_configuration.hpp"
#include "retina/config.hpp"

namespace retina::k8s {

namespace dom = simdjson::dom;
using simdjson::error_code;
using simdjson::SUCCESS;

#define K8S_TRY(expr)                                              \
  do {                                                             \
    if (error_code err_ = (expr); err_ != SUCCESS) return err_;    \
  } while (0)

const char* to_string(EventType t) {
  switch (t) {
    case EventType::kAdded: return "ADDED";
    case EventType::kModified: return "MODIFIED";
    case EventType::kDeleted: return "DELETED";
    case EventType::kBookmark: return "BOOKMARK";
    case EventType::kError: return "ERROR";
    case EventType::kCount: break;
  }
  return "UNKNOWN";
}

struct JsonParser::Impl {
  dom::parser parser;
  std::string scratch;  // a padded copy of the text being parsed
};

namespace {

constexpr std::string_view kObserveAnnotation = "retina.sh";
constexpr std::string_view kObserveValue = "observe";
constexpr std::string_view kZoneLabel = "topology.kubernetes.io/zone";
constexpr std::string_view kLegacyZoneLabel = "failure-domain.beta.kubernetes.io/zone";

// Parses `text` after copying it into `buf` with the padding simdjson reads past the end.
error_code parse_padded(dom::parser& parser, std::string& buf, std::string_view text, dom::element& out) {
  buf.reserve(text.size() + simdjson::SIMDJSON_PADDING);
  buf.assign(text);
  return parser.parse(buf.data(), buf.size(), false).get(out);
}

// JSON null reads as "absent" for every optional field.
error_code read_string(dom::element v, std::string& out) {
  if (v.is_null()) {
    out.clear();
    return SUCCESS;
  }
  std::string_view s;
  K8S_TRY(v.get_string().get(s));
  out.assign(s);
  return SUCCESS;
}

error_code read_bool(dom::element v, bool& out) {
  if (v.is_null()) {
    out = false;
    return SUCCESS;
  }
  return v.get_bool().get(out);
}

// {"k":"v",...} -> sorted "k=v".
error_code read_labels(dom::element v, std::vector<std::string>& out) {
  out.clear();
  if (v.is_null()) return SUCCESS;
  dom::object obj;
  K8S_TRY(v.get_object().get(obj));
  out.reserve(obj.size());
  for (dom::key_value_pair kv : obj) {
    std::string_view value;
    K8S_TRY(kv.value.get_string().get(value));
    std::string& s = out.emplace_back();
    s.reserve(kv.key.size() + 1 + value.size());
    s.append(kv.key).push_back('=');
    s.append(value);
  }
  std::sort(out.begin(), out.end());
  return SUCCESS;
}

error_code read_observe_annotation(dom::element v, bool& observe) {
  observe = false;
  if (v.is_null()) return SUCCESS;
  dom::object obj;
  K8S_TRY(v.get_object().get(obj));
  for (dom::key_value_pair kv : obj) {
    if (kv.key != kObserveAnnotation) continue;
    std::string_view value;
    K8S_TRY(kv.value.get_string().get(value));
    observe = value == kObserveValue;
  }
  return SUCCESS;
}

// ownerReferences: the controller, else the first reference.
error_code read_owner(dom::element v, OwnerRef& out) {
  out = {};
  if (v.is_null()) return SUCCESS;
  dom::array arr;
  K8S_TRY(v.get_array().get(arr));
  for (dom::element e : arr) {
    dom::object ref;
    K8S_TRY(e.get_object().get(ref));
    OwnerRef cur;
    bool controller = false;
    for (dom::key_value_pair kv : ref) {
      if (kv.key == "kind") {
        K8S_TRY(read_string(kv.value, cur.kind));
      } else if (kv.key == "name") {
        K8S_TRY(read_string(kv.value, cur.name));
      } else if (kv.key == "controller") {
        K8S_TRY(read_bool(kv.value, controller));
      }
    }
    if (controller) {
      out = std::move(cur);
      break;
    }
    if (out.empty()) out = std::move(cur);
  }
  return SUCCESS;
}

// Where metadata fields go; null pointers are skipped.
struct MetaOut {
  std::string* name = nullptr;
  std::string* namespace_ = nullptr;
  std::string* resource_version = nullptr;
  std::vector<std::string>* labels = nullptr;
  bool* observe = nullptr;
  OwnerRef* owner = nullptr;
  std::string* creation_timestamp = nullptr;
  std::string* uid = nullptr;
};

error_code read_meta(dom::element v, const MetaOut& m) {
  if (v.is_null()) return SUCCESS;
  dom::object obj;
  K8S_TRY(v.get_object().get(obj));
  for (dom::key_value_pair kv : obj) {
    const std::string_view key = kv.key;
    if (key == "name" && m.name) {
      K8S_TRY(read_string(kv.value, *m.name));
    } else if (key == "uid" && m.uid) {
      K8S_TRY(read_string(kv.value, *m.uid));
    } else if (key == "namespace" && m.namespace_) {
      K8S_TRY(read_string(kv.value, *m.namespace_));
    } else if (key == "resourceVersion" && m.resource_version) {
      K8S_TRY(read_string(kv.value, *m.resource_version));
    } else if (key == "labels" && m.labels) {
      K8S_TRY(read_labels(kv.value, *m.labels));
    } else if (key == "annotations" && m.observe) {
      K8S_TRY(read_observe_annotation(kv.value, *m.observe));
    } else if (key == "ownerReferences" && m.owner) {
      K8S_TRY(read_owner(kv.value, *m.owner));
    } else if (key == "creationTimestamp" && m.creation_timestamp) {
      K8S_TRY(read_string(kv.value, *m.creation_timestamp));
    }
  }
  return SUCCESS;
}

// An object value, or an empty optional when it is null.
error_code child_object(dom::element v, std::optional<dom::object>& out) {
  out.reset();
  if (v.is_null()) return SUCCESS;
  dom::object obj;
  K8S_TRY(v.get_object().get(obj));
  out = obj;
  return SUCCESS;
}

// Adds a textual IP unless it is a duplicate; an unparsable one is counted.
void add_ip(std::string_view text, std::vector<IpAddr>& ips, uint32_t& invalid) {
  if (text.empty()) return;
  auto ip = IpAddr::parse(text);
  if (!ip) {
    ++invalid;
    return;
  }
  if (std::find(ips.begin(), ips.end(), *ip) == ips.end()) ips.push_back(*ip);
}

error_code parse_object(dom::element v, PodInfo& p, uint32_t& invalid) {
  dom::object obj;
  K8S_TRY(v.get_object().get(obj));
  std::string_view pod_ip;
  std::vector<IpAddr> pod_ips;
  for (dom::key_value_pair kv : obj) {
    if (kv.key == "metadata") {
      K8S_TRY(read_meta(kv.value, {.name = &p.name,
                                   .namespace_ = &p.namespace_,
                                   .resource_version = &p.resource_version,
                                   .labels = &p.labels,
                                   .observe = &p.observe,
                                   .owner = &p.owner}));
    } else if (kv.key == "spec") {
      std::optional<dom::object> spec;
      K8S_TRY(child_object(kv.value, spec));
      if (!spec) continue;
      for (dom::key_value_pair s : *spec) {
        if (s.key == "nodeName") {
          K8S_TRY(read_string(s.value, p.node_name));
        } else if (s.key == "hostNetwork") {
          K8S_TRY(read_bool(s.value, p.host_network));
        }
      }
    } else if (kv.key == "status") {
      std::optional<dom::object> status;
      K8S_TRY(child_object(kv.value, status));
      if (!status) continue;
      for (dom::key_value_pair s : *status) {
        if (s.key == "phase") {
          std::string_view phase;
          K8S_TRY(s.value.get_string().get(phase));
          p.terminal = phase == "Succeeded" || phase == "Failed";
        } else if (s.key == "podIP") {
          if (!s.value.is_null()) K8S_TRY(s.value.get_string().get(pod_ip));
        } else if (s.key == "podIPs") {
          if (s.value.is_null()) continue;
          dom::array arr;
          K8S_TRY(s.value.get_array().get(arr));
          for (dom::element e : arr) {
            dom::object ipo;
            K8S_TRY(e.get_object().get(ipo));
            for (dom::key_value_pair i : ipo) {
              if (i.key != "ip") continue;
              std::string_view ip;
              K8S_TRY(i.value.get_string().get(ip));
              add_ip(ip, pod_ips, invalid);
            }
          }
        }
      }
    }
  }
  // podIPs lists podIP first; podIP alone is what older servers send.
  if (!pod_ips.empty()) {
    p.ips = std::move(pod_ips);
  } else {
    add_ip(pod_ip, p.ips, invalid);
  }
  return SUCCESS;
}

error_code parse_object(dom::element v, ServiceInfo& s, uint32_t& invalid) {
  dom::object obj;
  K8S_TRY(v.get_object().get(obj));
  std::string_view cluster_ip;
  std::vector<std::string_view> cluster_ips;
  for (dom::key_value_pair kv : obj) {
    if (kv.key == "metadata") {
      K8S_TRY(read_meta(kv.value, {.name = &s.name,
                                   .namespace_ = &s.namespace_,
                                   .resource_version = &s.resource_version,
                                   .labels = &s.labels}));
    } else if (kv.key == "spec") {
      std::optional<dom::object> spec;
      K8S_TRY(child_object(kv.value, spec));
      if (!spec) continue;
      for (dom::key_value_pair f : *spec) {
        if (f.key == "selector") {
          K8S_TRY(read_labels(f.value, s.selector));
        } else if (f.key == "clusterIP") {
          if (!f.value.is_null()) K8S_TRY(f.value.get_string().get(cluster_ip));
        } else if (f.key == "clusterIPs") {
          if (f.value.is_null()) continue;
          dom::array arr;
          K8S_TRY(f.value.get_array().get(arr));
          for (dom::element e : arr) {
            std::string_view ip;
            K8S_TRY(e.get_string().get(ip));
            cluster_ips.push_back(ip);
          }
        }
      }
    }
  }
  if (cluster_ips.empty() && !cluster_ip.empty()) cluster_ips.push_back(cluster_ip);
  for (std::string_view ip : cluster_ips) {
    if (ip == "None") {
      s.headless = true;
    } else {
      add_ip(ip, s.cluster_ips, invalid);
    }
  }
  return SUCCESS;
}

error_code parse_object(dom::element v, NodeInfo& n, uint32_t& invalid) {
  dom::object obj;
  K8S_TRY(v.get_object().get(obj));
  for (dom::key_value_pair kv : obj) {
    if (kv.key == "metadata") {
      K8S_TRY(read_meta(kv.value, {.name = &n.name, .resource_version = &n.resource_version, .labels = &n.labels}));
    } else if (kv.key == "status") {
      std::optional<dom::object> status;
      K8S_TRY(child_object(kv.value, status));
      if (!status) continue;
      for (dom::key_value_pair s : *status) {
        if (s.key != "addresses" || s.value.is_null()) continue;
        dom::array arr;
        K8S_TRY(s.value.get_array().get(arr));
        for (dom::element e : arr) {
          dom::object ao;
          K8S_TRY(e.get_object().get(ao));
          std::string_view type, address;
          for (dom::key_value_pair a : ao) {
            if (a.key == "type") {
              K8S_TRY(a.value.get_string().get(type));
            } else if (a.key == "address") {
              K8S_TRY(a.value.get_string().get(address));
            }
          }
          if (type == "InternalIP") add_ip(address, n.internal_ips, invalid);
        }
      }
    }
  }
  // The GA zone label, else the deprecated beta one.
  n.zone = std::string(label_value(n.labels, kZoneLabel));
  if (n.zone.empty()) n.zone = std::string(label_value(n.labels, kLegacyZoneLabel));
  return SUCCESS;
}

error_code parse_object(dom::element v, NamespaceInfo& ns, uint32_t&) {
  dom::object obj;
  K8S_TRY(v.get_object().get(obj));
  for (dom::key_value_pair kv : obj) {
    if (kv.key == "metadata") {
      K8S_TRY(read_meta(kv.value, {.name = &ns.name, .resource_version = &ns.resource_version, .observe = &ns.observe}));
    }
  }
  return SUCCESS;
}

error_code parse_object(dom::element v, ReplicaSetInfo& rs, uint32_t&) {
  dom::object obj;
  K8S_TRY(v.get_object().get(obj));
  for (dom::key_value_pair kv : obj) {
    if (kv.key == "metadata") {
      K8S_TRY(read_meta(kv.value, {.name = &rs.name,
                                   .namespace_ = &rs.namespace_,
                                   .resource_version = &rs.resource_version,
                                   .owner = &rs.owner}));
    }
  }
  return SUCCESS;
}

// ---- MetricsConfiguration spec ----

std::string join_lines(const std::vector<std::string>& lines) {
  std::string out;
  for (const auto& l : lines) {
    if (!out.empty()) out.push_back('\n');
    out += l;
  }
  return out;
}

// Reads a spec, collecting every type problem with its JSON path instead of
// stopping at the first.
class SpecReader {
 public:
  explicit SpecReader(MetricsConfigurationSpec& out) : out_(out) {}

  // A MetricsConfiguration object (with "spec") or a bare spec.
  Status read(dom::element doc, const MetaOut& meta) {
    dom::object top;
    if (doc.get_object().get(top) != SUCCESS) {
      return unexpected(Error::invalid("MetricsConfiguration: expected a JSON object"));
    }
    bool enveloped = false;
    for (dom::key_value_pair kv : top) {
      if (kv.key == "spec") {
        enveloped = true;
        spec(kv.value, "spec");
      } else if (kv.key == "metadata") {
        if (auto e = read_meta(kv.value, meta); e) problem("metadata", simdjson::error_message(e));
      } else if (kv.key == "apiVersion" || kv.key == "kind" || kv.key == "status") {
        continue;  // the envelope; status belongs to the operator
      } else {
        field(kv.key, kv.value, "");
      }
    }
    // Type problems first: semantic checks on a half-read spec would only add noise.
    if (!problems_.empty()) return unexpected(Error::invalid(join_lines(problems_)));
    return validate_metrics_configuration(out_, enveloped ? "spec" : "");
  }

 private:
  void problem(std::string_view path, std::string_view what) { problems_.push_back(fmt::format("{}: {}", path, what)); }
  void type_error(std::string_view path, std::string_view expected) { problem(path, fmt::format("expected {}", expected)); }

  void string_list(dom::element v, const std::string& path, std::vector<std::string>& out) {
    out.clear();
    if (v.is_null()) return;
    dom::array arr;
    if (v.get_array().get(arr) != SUCCESS) return type_error(path, "a list of strings");
    size_t i = 0;
    for (dom::element e : arr) {
      std::string_view s;
      if (e.get_string().get(s) != SUCCESS) {
        type_error(fmt::format("{}[{}]", path, i), "a string");
      } else {
        out.emplace_back(s);
      }
      ++i;
    }
  }

  void context_option(dom::element v, const std::string& path, MetricsContextOption& opt) {
    dom::object obj;
    if (v.get_object().get(obj) != SUCCESS) return type_error(path, "an object");
    for (dom::key_value_pair kv : obj) {
      const std::string p = fmt::format("{}.{}", path, kv.key);
      if (kv.key == "metricName") {
        std::string_view s;
        if (kv.value.get_string().get(s) != SUCCESS) {
          type_error(p, "a string");
        } else {
          opt.metric_name.assign(s);
        }
      } else if (kv.key == "sourceLabels") {
        string_list(kv.value, p, opt.source_labels);
      } else if (kv.key == "destinationLabels") {
        string_list(kv.value, p, opt.destination_labels);
      } else if (kv.key == "additionalLabels") {
        string_list(kv.value, p, opt.additional_labels);
      } else if (kv.key == "ttl") {
        std::string_view s;
        if (kv.value.is_null()) continue;
        if (kv.value.get_string().get(s) != SUCCESS) {
          type_error(p, "a duration string such as \"5m\"");
          continue;
        }
        if (s.empty()) continue;  // as in Retina: no TTL
        auto d = parse_duration(s);
        if (!d) {
          problem(p, d.error().message);
        } else if (*d % std::chrono::seconds(1) != std::chrono::nanoseconds(0)) {
          problem(p, fmt::format("must be a whole number of seconds, got \"{}\"", s));
        } else {
          opt.ttl = std::chrono::duration_cast<std::chrono::seconds>(*d);
        }
      } else {
        problem(p, "unknown field");
      }
    }
  }

  void spec(dom::element v, const std::string& path) {
    dom::object obj;
    if (v.get_object().get(obj) != SUCCESS) return type_error(path, "an object");
    for (dom::key_value_pair kv : obj) field(kv.key, kv.value, path);
  }

  void field(std::string_view key, dom::element v, const std::string& path) {
    const std::string p = path.empty() ? std::string(key) : fmt::format("{}.{}", path, key);
    if (key == "contextOptions") {
      if (v.is_null()) return;
      dom::array arr;
      if (v.get_array().get(arr) != SUCCESS) return type_error(p, "a list of context options");
      size_t i = 0;
      for (dom::element e : arr) context_option(e, fmt::format("{}[{}]", p, i++), out_.context_options.emplace_back());
    } else if (key == "namespaces") {
      if (v.is_null()) return;
      dom::object obj;
      if (v.get_object().get(obj) != SUCCESS) return type_error(p, "an object with include or exclude");
      for (dom::key_value_pair kv : obj) {
        if (kv.key == "include") {
          string_list(kv.value, p + ".include", out_.namespaces.include);
        } else if (kv.key == "exclude") {
          string_list(kv.value, p + ".exclude", out_.namespaces.exclude);
        } else {
          problem(fmt::format("{}.{}", p, kv.key), "unknown field");
        }
      }
    } else {
      problem(p, "unknown field");
    }
  }

  MetricsConfigurationSpec& out_;
  std::vector<std::string> problems_;
};

error_code parse_object(dom::element v, MetricsConfigurationInfo& mc, uint32_t&) {
  MetricsConfigurationSpec spec;
  SpecReader reader(spec);
  Status st = reader.read(v, {.name = &spec.name,
                              .resource_version = &mc.resource_version,
                              .creation_timestamp = &mc.creation_timestamp});
  mc.name = spec.name;
  if (st) {
    mc.spec = std::move(spec);
  } else {
    mc.spec = unexpected(st.error());
  }
  return SUCCESS;
}

error_code parse_object(dom::element v, RawObject& o, uint32_t&) {
  dom::object obj;
  K8S_TRY(v.get_object().get(obj));
  dom::element meta;
  if (v.at_key("metadata").get(meta) == SUCCESS) {
    K8S_TRY(read_meta(meta, {.name = &o.name,
                             .namespace_ = &o.namespace_,
                             .resource_version = &o.resource_version,
                             .uid = &o.uid}));
  }
  o.json = simdjson::minify(v);
  return SUCCESS;
}

error_code parse_status_object(dom::element v, ApiStatus& s) {
  dom::object obj;
  K8S_TRY(v.get_object().get(obj));
  for (dom::key_value_pair kv : obj) {
    if (kv.key == "code") {
      K8S_TRY(kv.value.get_int64().get(s.code));
    } else if (kv.key == "reason") {
      K8S_TRY(read_string(kv.value, s.reason));
    } else if (kv.key == "message") {
      K8S_TRY(read_string(kv.value, s.message));
    }
  }
  return SUCCESS;
}

std::optional<EventType> event_type(std::string_view s) {
  if (s == "ADDED") return EventType::kAdded;
  if (s == "MODIFIED") return EventType::kModified;
  if (s == "DELETED") return EventType::kDeleted;
  if (s == "BOOKMARK") return EventType::kBookmark;
  if (s == "ERROR") return EventType::kError;
  return std::nullopt;
}

Error json_error(std::string_view what, error_code e) {
  return Error::parse(fmt::format("{}: {}", what, simdjson::error_message(e)));
}

}  // namespace

JsonParser::JsonParser() : impl_(std::make_unique<Impl>()) {}
JsonParser::~JsonParser() = default;

template <class T>
Status JsonParser::parse_list(std::string& body, ListPage<T>& page) {
  body.reserve(body.size() + simdjson::SIMDJSON_PADDING);
  dom::element doc;
  if (auto e = impl_->parser.parse(body.data(), body.size(), false).get(doc); e) {
    return unexpected(json_error("list response", e));
  }
  auto run = [&]() -> error_code {
    dom::object top;
    K8S_TRY(doc.get_object().get(top));
    for (dom::key_value_pair kv : top) {
      if (kv.key == "metadata") {
        std::optional<dom::object> meta;
        K8S_TRY(child_object(kv.value, meta));
        if (!meta) continue;
        for (dom::key_value_pair m : *meta) {
          if (m.key == "resourceVersion") {
            K8S_TRY(read_string(m.value, page.resource_version));
          } else if (m.key == "continue") {
            K8S_TRY(read_string(m.value, page.continue_token));
          }
        }
      } else if (kv.key == "items") {
        if (kv.value.is_null()) continue;
        dom::array items;
        K8S_TRY(kv.value.get_array().get(items));
        for (dom::element item : items) {
          T obj;
          K8S_TRY(parse_object(item, obj, page.invalid_values));
          page.items.push_back(std::move(obj));
        }
      }
    }
    return SUCCESS;
  };
  if (auto e = run(); e) return unexpected(json_error("list response", e));
  return ok();
}

template <class T>
Result<WatchEvent<T>> JsonParser::parse_event(std::string_view line) {
  dom::element doc;
  if (auto e = parse_padded(impl_->parser, impl_->scratch, line, doc); e) {
    return unexpected(json_error("watch event", e));
  }
  dom::object top;
  std::string_view type;
  dom::element obj;
  if (auto e = doc.get_object().get(top); e) return unexpected(json_error("watch event", e));
  if (auto e = top.at_key("type").get_string().get(type); e) return unexpected(json_error("watch event type", e));
  auto t = event_type(type);
  if (!t) return unexpected(Error::parse(fmt::format("watch event: unknown type \"{}\"", type)));
  if (auto e = top.at_key("object").get(obj); e) return unexpected(json_error("watch event object", e));

  WatchEvent<T> ev;
  ev.type = *t;
  error_code e = SUCCESS;
  switch (ev.type) {
    case EventType::kError:
      e = parse_status_object(obj, ev.status);
      break;
    case EventType::kBookmark: {
      dom::element meta;
      e = obj.at_key("metadata").get(meta);
      if (!e) e = read_meta(meta, {.resource_version = &ev.resource_version});
      break;
    }
    default:
      e = parse_object(obj, ev.object, ev.invalid_values);
      ev.resource_version = ev.object.resource_version;
      break;
  }
  if (e) return unexpected(json_error(fmt::format("watch event {} object", type), e));
  return ev;
}

ApiStatus JsonParser::parse_status(std::string_view body) {
  ApiStatus s;
  dom::element doc;
  if (parse_padded(impl_->parser, impl_->scratch, body, doc) != SUCCESS) return s;
  if (parse_status_object(doc, s) != SUCCESS) return ApiStatus{};
  return s;
}

Result<MetricsConfigurationSpec> JsonParser::parse_metrics_configuration(std::string_view json) {
  dom::element doc;
  if (auto e = parse_padded(impl_->parser, impl_->scratch, json, doc); e) {
    return unexpected(json_error("MetricsConfiguration: invalid JSON", e));
  }
  MetricsConfigurationSpec spec;
  SpecReader reader(spec);
  if (Status st = reader.read(doc, {.name = &spec.name}); !st) return unexpected(st.error());
  return spec;
}

#define K8S_INSTANTIATE(T)                                               \
  template Status JsonParser::parse_list<T>(std::string&, ListPage<T>&); \
  template Result<WatchEvent<T>> JsonParser::parse_event<T>(std::string_view);

K8S_INSTANTIATE(PodInfo)
K8S_INSTANTIATE(ServiceInfo)
K8S_INSTANTIATE(NodeInfo)
K8S_INSTANTIATE(NamespaceInfo)
K8S_INSTANTIATE(ReplicaSetInfo)
K8S_INSTANTIATE(MetricsConfigurationInfo)
K8S_INSTANTIATE(RawObject)

}  // namespace retina::k8s
