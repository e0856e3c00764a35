// retina.Config: every field of retina::Config as a snake_case attribute.
// Config(**fields) validates at once; from_yaml()/from_file() read Retina's
// config.yaml. Problems raise retina.InvalidArgument (a ValueError) with
// every problem, one per line.
#include <pybind11/stl.h>

#include <fmt/format.h>

#include <chrono>
#include <functional>

#include "bindings.hpp"
#include "retina/config.hpp"

namespace retina::py {

namespace {

using namespace std::chrono;

struct Field {
  const char* name;
  std::function<py::object(const Config&)> get;
  std::function<void(Config&, py::handle)> set;
};

std::string short_repr(py::handle obj) {
  std::string s = py::repr(obj).cast<std::string>();
  if (s.size() > 60) s = s.substr(0, 57) + "...";
  return s;
}

[[noreturn]] void bad(const char* name, std::string_view expected, py::handle v) {
  raise_invalid(fmt::format("{}: expected {}, got {}", name, expected, short_repr(v)));
}

bool to_bool(const char* name, py::handle v) {
  if (!py::isinstance<py::bool_>(v)) bad(name, "True or False", v);
  return v.cast<bool>();
}

uint64_t to_uint(const char* name, py::handle v, uint64_t lo, uint64_t hi) {
  if (py::isinstance<py::bool_>(v) || !py::isinstance<py::int_>(v)) {
    bad(name, fmt::format("an integer from {} to {}", lo, hi), v);
  }
  // Negative or huge values do not fit a uint64: compare as Python ints.
  if (v < py::int_(lo) || v > py::int_(hi)) bad(name, fmt::format("an integer from {} to {}", lo, hi), v);
  return v.cast<uint64_t>();
}

std::string to_str(const char* name, py::handle v) {
  if (!py::isinstance<py::str>(v)) bad(name, "a string", v);
  return v.cast<std::string>();
}

// timedelta, a number of seconds, or a Go duration string such as "30s".
nanoseconds to_duration(const char* name, py::handle v) {
  if (py::isinstance<py::str>(v)) {
    auto d = parse_duration(v.cast<std::string>());
    if (!d) raise_invalid(fmt::format("{}: {}", name, d.error().message));
    return *d;
  }
  py::module_ datetime = py::module_::import("datetime");
  double secs = 0;
  if (py::isinstance(v, datetime.attr("timedelta"))) {
    secs = v.attr("total_seconds")().cast<double>();
  } else if (!py::isinstance<py::bool_>(v) && (py::isinstance<py::int_>(v) || py::isinstance<py::float_>(v))) {
    secs = v.cast<double>();
  } else {
    bad(name, "a duration (timedelta, seconds, or text such as \"30s\")", v);
  }
  if (!(secs >= 0) || secs > 1e9) bad(name, "a duration from 0 to 1e9 seconds", v);
  return nanoseconds(static_cast<int64_t>(secs * 1e9 + (secs >= 0 ? 0.5 : -0.5)));
}

py::object timedelta(nanoseconds d) {
  py::module_ datetime = py::module_::import("datetime");
  return datetime.attr("timedelta")(py::arg("microseconds") = duration_cast<microseconds>(d).count());
}

template <class E>
E to_choice(const char* name, py::handle v, std::initializer_list<std::pair<const char*, E>> choices) {
  if (py::isinstance<py::str>(v)) {
    std::string s = v.cast<std::string>();
    for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    for (const auto& [n, e] : choices)
      if (s == n) return e;
  }
  std::string names;
  for (const auto& [n, e] : choices) names += (names.empty() ? "" : ", ") + std::string(n);
  bad(name, "one of " + names, v);
}

py::list str_list(const std::vector<std::string>& v) {
  py::list l;
  for (const auto& s : v) l.append(s);
  return l;
}

py::dict context_option_dict(const MetricsContextOption& o) {
  py::dict d;
  d["metric_name"] = o.metric_name;
  d["source_labels"] = str_list(o.source_labels);
  d["destination_labels"] = str_list(o.destination_labels);
  d["additional_labels"] = str_list(o.additional_labels);
  d["ttl"] = timedelta(o.ttl);
  return d;
}

MetricsContextOption context_option_from(py::handle v, size_t i) {
  const std::string path = fmt::format("context_options[{}]", i);
  if (!py::isinstance<py::dict>(v)) bad(path.c_str(), "a dict", v);
  MetricsContextOption o;
  for (auto [k, x] : py::reinterpret_borrow<py::dict>(v)) {
    const std::string key = py::str(k).cast<std::string>();
    const std::string p = path + "." + key;
    if (key == "metric_name") o.metric_name = to_str(p.c_str(), x);
    else if (key == "source_labels") o.source_labels = to_string_list(x, p);
    else if (key == "destination_labels") o.destination_labels = to_string_list(x, p);
    else if (key == "additional_labels") o.additional_labels = to_string_list(x, p);
    else if (key == "ttl") o.ttl = duration_cast<seconds>(to_duration(p.c_str(), x));
    else {
      raise_invalid(fmt::format("{}: unknown key (expected metric_name, source_labels, destination_labels, "
                                "additional_labels, ttl)",
                                p));
    }
  }
  return o;
}

#define RETINA_BOOL(field)                                                                 \
  Field {                                                                                  \
    #field, [](const Config& c) -> py::object { return py::bool_(c.field); },             \
        [](Config& c, py::handle v) { c.field = to_bool(#field, v); }                      \
  }
#define RETINA_UINT(field, lo, hi)                                                          \
  Field {                                                                                   \
    #field, [](const Config& c) -> py::object { return py::int_(c.field); },               \
        [](Config& c, py::handle v) {                                                       \
          c.field = static_cast<decltype(c.field)>(to_uint(#field, v, lo, hi));             \
        }                                                                                   \
  }
#define RETINA_STR(field)                                                                  \
  Field {                                                                                  \
    #field, [](const Config& c) -> py::object { return py::str(c.field); },               \
        [](Config& c, py::handle v) { c.field = to_str(#field, v); }                       \
  }
#define RETINA_LIST(field)                                                                 \
  Field {                                                                                  \
    #field, [](const Config& c) -> py::object { return str_list(c.field); },              \
        [](Config& c, py::handle v) { c.field = to_string_list(v, #field); }               \
  }
#define RETINA_DURATION(field, unit)                                                       \
  Field {                                                                                  \
    #field, [](const Config& c) -> py::object { return timedelta(c.field); },             \
        [](Config& c, py::handle v) { c.field = duration_cast<unit>(to_duration(#field, v)); } \
  }

const std::vector<Field>& fields() {
  static const std::vector<Field> kFields = {
      RETINA_STR(api_server_host),
      RETINA_UINT(api_server_port, 0, 65535),
      Field{"log_level", [](const Config& c) -> py::object { return py::str(to_string(c.log_level)); },
            [](Config& c, py::handle v) {
              c.log_level = to_choice<LogLevel>("log_level", v,
                                                {{"trace", LogLevel::kTrace},
                                                 {"debug", LogLevel::kDebug},
                                                 {"info", LogLevel::kInfo},
                                                 {"warn", LogLevel::kWarn},
                                                 {"error", LogLevel::kError}});
            }},
      RETINA_LIST(enabled_plugins),
      RETINA_DURATION(metrics_interval, milliseconds),
      RETINA_BOOL(enable_pod_level),
      RETINA_BOOL(remote_context),
      RETINA_BOOL(enable_annotations),
      Field{"context_options",
            [](const Config& c) -> py::object {
              py::list l;
              for (const auto& o : c.context_options) l.append(context_option_dict(o));
              return l;
            },
            [](Config& c, py::handle v) {
              if (py::isinstance<py::dict>(v) || !py::isinstance<py::iterable>(v)) {
                bad("context_options", "a list of dicts", v);
              }
              std::vector<MetricsContextOption> out;
              size_t i = 0;
              for (py::handle item : v) out.push_back(context_option_from(item, i++));
              c.context_options = std::move(out);
            }},
      Field{"metrics_namespaces",
            [](const Config& c) -> py::object {
              py::dict d;
              d["include"] = str_list(c.metrics_namespaces.include);
              d["exclude"] = str_list(c.metrics_namespaces.exclude);
              return d;
            },
            [](Config& c, py::handle v) {
              if (!py::isinstance<py::dict>(v)) bad("metrics_namespaces", "a dict with include and/or exclude", v);
              MetricsNamespaces ns;
              for (auto [k, x] : py::reinterpret_borrow<py::dict>(v)) {
                const std::string key = py::str(k).cast<std::string>();
                if (key == "include") ns.include = to_string_list(x, "metrics_namespaces.include");
                else if (key == "exclude") ns.exclude = to_string_list(x, "metrics_namespaces.exclude");
                else raise_invalid(fmt::format("metrics_namespaces.{}: unknown key (expected include, exclude)", key));
              }
              c.metrics_namespaces = std::move(ns);
            }},
      RETINA_UINT(max_series_per_metric, 0, UINT32_MAX),
      RETINA_BOOL(bypass_lookup_ip_of_interest),
      Field{"data_aggregation_level",
            [](const Config& c) -> py::object { return py::str(to_string(c.data_aggregation_level)); },
            [](Config& c, py::handle v) {
              c.data_aggregation_level = to_choice<AggregationLevel>(
                  "data_aggregation_level", v, {{"low", AggregationLevel::kLow}, {"high", AggregationLevel::kHigh}});
            }},
      RETINA_UINT(data_sampling_rate, 0, UINT32_MAX),
      RETINA_DURATION(conntrack_report_interval, seconds),
      RETINA_BOOL(packet_parser_ring_buffer),
      RETINA_UINT(packet_parser_ring_buffer_size, 0, UINT64_MAX),
      RETINA_UINT(filter_map_max_entries, 0, UINT32_MAX),
      Field{"enable_tcx",
            [](const Config& c) -> py::object { return py::str(c.enable_tcx == TcxMode::kAuto ? "auto" : "off"); },
            [](Config& c, py::handle v) {
              if (py::isinstance<py::bool_>(v)) {
                c.enable_tcx = v.cast<bool>() ? TcxMode::kAuto : TcxMode::kOff;
                return;
              }
              c.enable_tcx = to_choice<TcxMode>("enable_tcx", v, {{"auto", TcxMode::kAuto}, {"off", TcxMode::kOff}});
            }},
      RETINA_BOOL(enable_conntrack_metrics),
      RETINA_UINT(conntrack_max_entries, 0, UINT32_MAX),
      RETINA_LIST(host_interfaces),
      RETINA_LIST(pod_interface_prefixes),
      RETINA_BOOL(drop_include_expected),
      RETINA_UINT(drop_events_per_second, 0, UINT32_MAX),
      RETINA_STR(endpoints_file),
      RETINA_STR(kubeconfig),
      RETINA_BOOL(enable_kubernetes),
      RETINA_STR(node_name),
      RETINA_STR(flow_log_path),
      RETINA_UINT(flow_log_max_size_mb, 0, UINT32_MAX),
      RETINA_UINT(flow_log_max_files, 0, UINT32_MAX),
      RETINA_BOOL(pod_forward_metrics),
      RETINA_BOOL(kernel_drop_reasons),
      RETINA_BOOL(interface_stats_per_interface),
      RETINA_BOOL(tcp_connection_remote_per_address),
      RETINA_BOOL(tcp_flags_separate_syn_ack),
      RETINA_BOOL(adv_metrics_without_configuration),
  };
  return kFields;
}

const Field* find_field(std::string_view name) {
  for (const auto& f : fields())
    if (name == f.name) return &f;
  return nullptr;
}

void apply(Config& c, const py::kwargs& kw) {
  for (auto [k, v] : kw) {
    const std::string key = py::str(k).cast<std::string>();
    const Field* f = find_field(key);
    if (!f) {
      std::string names;
      for (const auto& x : fields()) names += (names.empty() ? "" : ", ") + std::string(x.name);
      PyErr_SetString(PyExc_TypeError,
                      fmt::format("Config: unknown field '{}' (fields: {})", key, names).c_str());
      throw py::error_already_set();
    }
    f->set(c, v);
  }
}

}  // namespace

void register_config(py::module_& m) {
  py::class_<Config> cls(m, "Config", R"doc(
The engine's configuration: Retina's config.yaml keys as snake_case
attributes (dataAggregationLevel -> data_aggregation_level).

    Config(data_aggregation_level="low", enabled_plugins=["packetparser"])
    Config.from_yaml(text) / Config.from_file(path)

Durations accept a timedelta, a number of seconds or text such as "30s".
Invalid values raise retina.InvalidArgument (a ValueError) listing every
problem; unknown fields raise TypeError.
)doc");
  cls.def(py::init([](py::kwargs kw) {
            Config c;
            apply(c, kw);
            check(c.validate());
            return c;
          }))
      .def_static(
          "from_yaml", [](const std::string& text) { return unwrap(load_config_yaml(text)); }, py::arg("text"),
          "Parses Retina's agent config.yaml text.")
      .def_static(
          "from_file", [](const std::string& path) { return unwrap(load_config_file(path)); }, py::arg("path"),
          "Reads and parses a config.yaml file.")
      .def(
          "validate", [](const Config& c) { check(c.validate()); },
          "Raises retina.InvalidArgument listing every problem.")
      .def(
          "replace",
          [](const Config& c, py::kwargs kw) {
            Config copy = c;
            apply(copy, kw);
            check(copy.validate());
            return copy;
          },
          "A validated copy with the given fields changed.")
      .def("to_dict",
           [](const Config& c) {
             py::dict d;
             for (const auto& f : fields()) d[f.name] = f.get(c);
             return d;
           })
      .def_static("fields",
                  [] {
                    py::list l;
                    for (const auto& f : fields()) l.append(f.name);
                    return l;
                  })
      .def("__copy__", [](const Config& c) { return Config(c); })
      .def("__deepcopy__", [](const Config& c, py::handle) { return Config(c); })
      .def("__eq__",
           [](const Config& a, py::handle b) -> py::object {
             if (!py::isinstance<Config>(b)) return py::reinterpret_borrow<py::object>(Py_NotImplemented);
             const Config& other = b.cast<const Config&>();
             for (const auto& f : fields())
               if (!f.get(a).equal(f.get(other))) return py::bool_(false);
             return py::bool_(true);
           })
      .def("__repr__", [](const Config& c) {
        // Only what differs from the defaults.
        const Config defaults;
        std::string out = "Config(";
        bool first = true;
        for (const auto& f : fields()) {
          py::object v = f.get(c);
          if (v.equal(f.get(defaults))) continue;
          out += fmt::format("{}{}={}", first ? "" : ", ", f.name, py::repr(v).cast<std::string>());
          first = false;
        }
        return out + ")";
      });
  cls.attr("__hash__") = py::none();
  for (const auto& f : fields()) {
    const Field* fp = &f;
    cls.def_property(
        f.name, [fp](const Config& c) { return fp->get(c); }, [fp](Config& c, py::handle v) { fp->set(c, v); });
  }
}

}  // namespace retina::py
