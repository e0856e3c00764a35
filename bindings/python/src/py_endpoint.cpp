// retina.Endpoint (what an address belongs to) and retina.IpCache (the
// address -> endpoint map the pipeline enriches flows from).
#include <fmt/format.h>

#include <algorithm>
#include <chrono>

#include "bindings.hpp"
#include "py_endpoint.hpp"
#include "retina/ip_cache.hpp"

namespace retina::py {

namespace {

constexpr std::pair<const char*, EndpointKind> kKinds[] = {
    {"unknown", EndpointKind::kUnknown}, {"pod", EndpointKind::kPod},           {"service", EndpointKind::kService},
    {"node", EndpointKind::kNode},       {"external", EndpointKind::kExternal},
};
constexpr std::pair<const char*, EndpointSource> kSources[] = {
    {"api", EndpointSource::kApi}, {"file", EndpointSource::kFile}, {"kubernetes", EndpointSource::kKubernetes}};

EndpointKind kind_from(py::handle v) {
  if (py::isinstance<py::str>(v)) {
    const std::string s = v.cast<std::string>();
    for (const auto& [n, k] : kKinds)
      if (s == n) return k;
  }
  raise_invalid(fmt::format("kind: {} is not one of pod, service, node, external, unknown",
                            py::repr(v).cast<std::string>()));
}

EndpointSource source_from(py::handle v) {
  if (py::isinstance<py::str>(v)) {
    const std::string s = v.cast<std::string>();
    for (const auto& [n, k] : kSources)
      if (s == n) return k;
  }
  raise_invalid(fmt::format("source: {} is not one of api, file, kubernetes", py::repr(v).cast<std::string>()));
}

std::chrono::nanoseconds grace_from(double seconds) {
  if (!(seconds >= 0) || seconds > 1e9) raise_invalid(fmt::format("grace: {} is not a number of seconds >= 0", seconds));
  return std::chrono::nanoseconds(static_cast<int64_t>(seconds * 1e9));
}

std::vector<std::string> labels_from(py::handle v) {
  std::vector<std::string> out;
  if (v.is_none()) return out;
  if (py::isinstance<py::dict>(v)) {
    for (auto [k, x] : py::reinterpret_borrow<py::dict>(v)) {
      out.push_back(py::str(k).cast<std::string>() + "=" + py::str(x).cast<std::string>());
    }
  } else {
    out = to_string_list(v, "labels");
    for (const auto& l : out)
      if (l.find('=') == std::string::npos) raise_invalid(fmt::format("labels: \"{}\" is not key=value", l));
  }
  std::sort(out.begin(), out.end());
  return out;
}

// ("Deployment", "web"), {"kind": ..., "name": ...} or "Deployment/web".
Workload workload_from(py::handle v) {
  Workload w;
  if (py::isinstance<py::str>(v)) {
    const std::string s = v.cast<std::string>();
    const size_t slash = s.find('/');
    if (slash == std::string::npos) raise_invalid(fmt::format("workloads: \"{}\" is not Kind/name", s));
    w.kind = s.substr(0, slash);
    w.name = s.substr(slash + 1);
  } else if (py::isinstance<py::dict>(v)) {
    auto d = py::reinterpret_borrow<py::dict>(v);
    if (d.contains("kind")) w.kind = py::str(d["kind"]).cast<std::string>();
    if (d.contains("name")) w.name = py::str(d["name"]).cast<std::string>();
  } else if (py::isinstance<py::tuple>(v) && py::len(v) == 2) {
    w.kind = py::str(v[py::int_(0)]).cast<std::string>();
    w.name = py::str(v[py::int_(1)]).cast<std::string>();
  } else {
    raise_invalid(fmt::format("workloads: {} is not \"Kind/name\", (kind, name) or a dict",
                              py::repr(v).cast<std::string>()));
  }
  return w;
}

}  // namespace

EndpointPtr endpoint_from_kwargs(const py::kwargs& kw) {
  auto ep = std::make_shared<Endpoint>();
  ep->kind = EndpointKind::kPod;
  for (auto [k, v] : kw) {
    const std::string key = py::str(k).cast<std::string>();
    if (key == "kind") ep->kind = kind_from(v);
    else if (key == "namespace") ep->namespace_ = py::str(v).cast<std::string>();
    else if (key == "name") ep->name = py::str(v).cast<std::string>();
    else if (key == "labels") ep->labels = labels_from(v);
    else if (key == "workloads" || key == "workload") {
      std::vector<Workload> chain;  // interned as a whole once built
      if (v.is_none()) {
        // none: no workload
      } else if (py::isinstance<py::str>(v) || py::isinstance<py::dict>(v) || py::isinstance<py::tuple>(v)) {
        chain.push_back(workload_from(v));
      } else {
        for (py::handle w : v) chain.push_back(workload_from(w));
      }
      ep->workloads = std::move(chain);
    } else if (key == "node_name") ep->node_name = py::str(v).cast<std::string>();
    else if (key == "zone") ep->zone = py::str(v).cast<std::string>();
    else if (key == "service") ep->service = py::str(v).cast<std::string>();
    else if (key == "observe") ep->observe = v.cast<bool>();
    else if (key == "ips" || key == "ip") {
      ep->ips.clear();
      if (py::isinstance<py::str>(v) || py::isinstance<py::bytes>(v)) {
        ep->ips.push_back(to_ip(v, "ips"));
      } else {
        for (py::handle x : v) ep->ips.push_back(to_ip(x, "ips"));
      }
    } else {
      PyErr_SetString(PyExc_TypeError,
                      fmt::format("Endpoint: unknown field '{}' (fields: kind, namespace, name, ips, labels, "
                                  "workloads, node_name, zone, service, observe)",
                                  key)
                          .c_str());
      throw py::error_already_set();
    }
  }
  if (ep->name.empty()) raise_invalid("Endpoint: name is required");
  return ep;
}

py::dict endpoint_dict(const Endpoint& ep) {
  py::dict d;
  d["kind"] = to_string(ep.kind);
  d["namespace"] = ep.namespace_.str();
  d["name"] = ep.name;
  py::dict labels;
  for (const auto& l : ep.labels) {
    const size_t eq = l.find('=');
    labels[py::str(l.substr(0, eq))] = eq == std::string::npos ? std::string() : l.substr(eq + 1);
  }
  d["labels"] = labels;
  py::list workloads;
  for (const auto& w : ep.workloads) {
    py::dict wd;
    wd["kind"] = w.kind;
    wd["name"] = w.name;
    workloads.append(wd);
  }
  d["workloads"] = workloads;
  d["node_name"] = ep.node_name.str();
  d["zone"] = ep.zone.str();
  d["service"] = ep.service.str();
  py::list ips;
  for (const auto& ip : ep.ips) ips.append(ip_str(ip));
  d["ips"] = ips;
  d["observe"] = ep.observe;
  return d;
}

void register_endpoint(py::module_& m) {
  py::class_<PyEndpoint>(m, "Endpoint", R"doc(
What an address belongs to (immutable).

    Endpoint(kind="pod", namespace="shop", name="web-7d9f",
             ips=["10.0.0.5"], labels={"app": "web"},
             workloads=[("Deployment", "web")], zone="z1")

kind is pod (default), service, node, external or unknown. workloads take
"Kind/name" strings, (kind, name) tuples or dicts.
)doc")
      .def(py::init([](py::kwargs kw) { return PyEndpoint{endpoint_from_kwargs(kw)}; }))
      .def_property_readonly("kind", [](const PyEndpoint& e) { return to_string(e.ep->kind); })
      .def_property_readonly("namespace", [](const PyEndpoint& e) { return e.ep->namespace_.str(); })
      .def_property_readonly("name", [](const PyEndpoint& e) { return e.ep->name; })
      .def_property_readonly("pod_name",
                             [](const PyEndpoint& e) -> py::object {
                               if (e.ep->kind != EndpointKind::kPod) return py::str("");
                               return py::str(e.ep->name);
                             })
      .def_property_readonly("labels", [](const PyEndpoint& e) {
        py::dict d = endpoint_dict(*e.ep);
        return py::object(d["labels"]);
      })
      .def_property_readonly("workloads", [](const PyEndpoint& e) {
        py::dict d = endpoint_dict(*e.ep);
        return py::object(d["workloads"]);
      })
      .def_property_readonly("workload",
                             [](const PyEndpoint& e) -> py::object {
                               const Workload* w = e.ep->workload();
                               if (!w) return py::none();
                               return py::make_tuple(w->kind, w->name);
                             })
      .def_property_readonly("node_name", [](const PyEndpoint& e) { return e.ep->node_name.str(); })
      .def_property_readonly("zone", [](const PyEndpoint& e) { return e.ep->zone.str(); })
      .def_property_readonly("service", [](const PyEndpoint& e) { return e.ep->service.str(); })
      .def_property_readonly("observe", [](const PyEndpoint& e) { return e.ep->observe; })
      .def_property_readonly("ips",
                             [](const PyEndpoint& e) {
                               py::list l;
                               for (const auto& ip : e.ep->ips) l.append(ip_str(ip));
                               return l;
                             })
      .def_property_readonly("key", [](const PyEndpoint& e) { return e.ep->key(); },
                             "\"<kind>/<namespace>/<name>\": the identity used by IpCache.remove().")
      .def("to_dict", [](const PyEndpoint& e) { return endpoint_dict(*e.ep); })
      .def("__eq__",
           [](const PyEndpoint& a, py::handle b) -> py::object {
             if (!py::isinstance<PyEndpoint>(b)) return py::reinterpret_borrow<py::object>(Py_NotImplemented);
             return py::bool_(endpoint_dict(*a.ep).equal(endpoint_dict(*b.cast<const PyEndpoint&>().ep)));
           })
      .def("__hash__", [](const PyEndpoint& e) { return py::hash(py::str(e.ep->key())); })
      .def("__repr__", [](const PyEndpoint& e) {
        std::string ips;
        for (const auto& ip : e.ep->ips) ips += (ips.empty() ? "" : ", ") + ip.to_string();
        return fmt::format("Endpoint({} [{}])", e.ep->key(), ips);
      });

  py::class_<PyIpCache>(m, "IpCache", R"doc(
The IP-to-endpoint cache the pipeline enriches flows from. An engine has
one (Engine.cache); an offline Pipeline takes one or makes its own.
Writers may be called from any thread while flows are processed.
)doc")
      .def(py::init([] { return PyIpCache{std::make_shared<IpCache>()}; }))
      .def(
          "upsert",
          [](PyIpCache& c, py::object endpoint, const std::string& source, py::kwargs kw) {
            EndpointPtr ep;
            if (!endpoint.is_none()) {
              if (!py::isinstance<PyEndpoint>(endpoint)) {
                raise_invalid("upsert: expected a retina.Endpoint or keyword fields");
              }
              if (kw.size()) raise_invalid("upsert: give an Endpoint or keyword fields, not both");
              ep = endpoint.cast<const PyEndpoint&>().ep;
            } else {
              ep = endpoint_from_kwargs(kw);
            }
            const EndpointSource src = source_from(py::str(source));
            {
              py::gil_scoped_release release;
              c.cache->upsert(ep, src);
            }
            return PyEndpoint{ep};
          },
          py::arg("endpoint") = py::none(), py::kw_only(), py::arg("source") = "api",
          "Adds or replaces an endpoint (an Endpoint, or its fields as keywords); returns it.")
      .def(
          "remove",
          [](PyIpCache& c, py::object what, const std::string& source, double grace) {
            std::string key = py::isinstance<PyEndpoint>(what) ? what.cast<const PyEndpoint&>().ep->key()
                                                                : py::str(what).cast<std::string>();
            const EndpointSource src = source_from(py::str(source));
            const auto g = grace_from(grace);
            py::gil_scoped_release release;
            c.cache->remove(key, src, g);
          },
          py::arg("endpoint"), py::kw_only(), py::arg("source") = "api", py::arg("grace") = 0.0,
          "Removes an endpoint given as an Endpoint or its key \"pod/<namespace>/<name>\"; with grace "
          "(seconds) its addresses keep resolving for that long.")
      .def(
          "replace",
          [](PyIpCache& c, py::iterable endpoints, const std::string& source, double grace) {
            std::vector<EndpointPtr> eps;
            for (py::handle e : endpoints) {
              if (py::isinstance<PyEndpoint>(e)) eps.push_back(e.cast<const PyEndpoint&>().ep);
              else if (py::isinstance<py::dict>(e)) eps.push_back(endpoint_from_kwargs(py::reinterpret_borrow<py::kwargs>(e)));
              else raise_invalid("replace: expected Endpoint objects or dicts of fields");
            }
            const EndpointSource src = source_from(py::str(source));
            const auto g = grace_from(grace);
            py::gil_scoped_release release;
            c.cache->replace_source(src, std::move(eps), g);
          },
          py::arg("endpoints"), py::kw_only(), py::arg("source") = "api", py::arg("grace") = 0.0,
          "Replaces everything `source` contributed, as one update.")
      .def(
          "lookup",
          [](const PyIpCache& c, py::handle ip) -> py::object {
            EndpointPtr ep = c.cache->find(to_ip(ip, "ip"));
            if (!ep) return py::none();
            return py::cast(PyEndpoint{std::move(ep)});
          },
          py::arg("ip"), "The endpoint an address resolves to, or None.")
      .def(
          "find",
          [](const PyIpCache& c, const std::string& key) -> py::object {
            EndpointPtr ep = c.cache->find_key(key);
            if (!ep) return py::none();
            return py::cast(PyEndpoint{std::move(ep)});
          },
          py::arg("key"), "The live endpoint with this key (\"pod/<namespace>/<name>\"), or None.")
      .def("endpoints",
           [](const PyIpCache& c) {
             std::vector<EndpointPtr> eps;
             c.cache->for_each([&](const EndpointPtr& ep) { eps.push_back(ep); });
             py::list l;
             for (auto& ep : eps) l.append(PyEndpoint{std::move(ep)});
             return l;
           })
      .def("expire", [](PyIpCache& c) {
        py::gil_scoped_release release;
        c.cache->expire();
      }, "Drops removed endpoints whose grace period has ended.")
      .def("stats",
           [](const PyIpCache& c) {
             const IpCacheStats s = c.cache->stats();
             py::dict d;
             d["endpoints"] = s.endpoints;
             d["ips"] = s.ips;
             d["lingering"] = s.lingering;
             d["updates"] = s.updates;
             d["lookups_hit"] = s.lookups_hit;
             d["lookups_miss"] = s.lookups_miss;
             return d;
           })
      .def("__len__", [](const PyIpCache& c) { return c.cache->stats().endpoints; })
      .def("__contains__", [](const PyIpCache& c, py::handle ip) { return c.cache->find(to_ip(ip, "ip")) != nullptr; })
      .def("__repr__", [](const PyIpCache& c) {
        const IpCacheStats s = c.cache->stats();
        return fmt::format("IpCache({} endpoints, {} addresses)", s.endpoints, s.ips);
      });
}

}  // namespace retina::py
