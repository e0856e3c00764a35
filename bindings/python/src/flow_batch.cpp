// FlowBatch -> Flow objects, DataFrame columns, or a structured numpy
// array. Columns are filled in one pass; equal strings share one Python
// str, so a column of pod names costs a pointer per row.
#include <pybind11/numpy.h>

#include <fmt/format.h>

#include <cstring>
#include <mutex>

#include "bindings.hpp"
#include "flow_row.hpp"

namespace retina::py {

namespace {

py::array make_array(const py::dtype& dt, size_t n) {
  return py::array(dt, py::array::ShapeContainer{static_cast<py::ssize_t>(n)});
}

// ---- one row as a dict ----

class DictVisitor {
 public:
  py::dict d;
  void time(const char* name, uint64_t ns) {
    // datetime64 is signed; times past 2262 wrap exactly as in the columns.
    d[name] = py::module_::import("numpy").attr("datetime64")(static_cast<int64_t>(ns), "ns");
  }
  void text(const char* name, std::string_view s) { d[name] = py::str(s.data(), s.size()); }
  void ip(const char* name, const IpAddr& a, bool present) { d[name] = present ? ip_str(a) : py::str(""); }
  template <class T>
  void num(const char* name, T x) {
    d[name] = py::int_(x);
  }
  void flags(const char* name, uint16_t f) { d[name] = tcp_flags_text(f); }
  void flag(const char* name, bool b) { d[name] = py::bool_(b); }
  void ips(const char* name, const DnsInfo* dns) {
    py::tuple t(dns ? dns->ips.size() : 0);
    if (dns)
      for (size_t i = 0; i < dns->ips.size(); ++i) t[i] = ip_str(dns->ips[i]);
    d[name] = t;
  }
};

// ---- columns ----

// Text in a batch lives in memory that stays put while the batch exists
// (static enum names, endpoints and DNS info the flows own), so equal
// (pointer, length) means equal text: that lookup comes first and is
// cheaper than hashing the characters.
struct TextKey {
  const char* p;
  size_t n;
  friend bool operator==(const TextKey&, const TextKey&) = default;
  template <class H>
  friend H AbslHashValue(H h, const TextKey& k) {
    return H::combine(std::move(h), k.p, k.n);
  }
};

class Interner {
 public:
  PyObject* str(std::string_view s) {
    const TextKey key{s.data(), s.size()};
    auto hit = by_address_.find(key);
    if (hit != by_address_.end()) return hit->second;
    PyObject* p = by_text(s);
    by_address_.emplace(key, p);
    return p;
  }
  PyObject* ip(const IpAddr& a) {
    auto it = ips_.find(a);
    if (it != ips_.end()) return it->second.ptr();
    py::str o = ip_str(a);
    PyObject* p = o.ptr();
    ips_.emplace(a, std::move(o));
    return p;
  }
  PyObject* flags(uint16_t f) {
    f &= 0x1FF;
    if (!flags_[f]) flags_[f] = py::str(tcp_flags_text(f));
    return flags_[f].ptr();
  }

 private:
  PyObject* by_text(std::string_view s) {
    auto it = strings_.find(absl::string_view(s.data(), s.size()));
    if (it != strings_.end()) return it->second.ptr();
    py::str o(s.data(), s.size());
    PyObject* p = o.ptr();
    strings_.emplace(std::string(s), std::move(o));
    return p;
  }

  absl::flat_hash_map<TextKey, PyObject*> by_address_;  // borrowed from strings_
  absl::flat_hash_map<std::string, py::object> strings_;
  absl::flat_hash_map<IpAddr, py::object, IpAddrHash> ips_;
  py::object flags_[512];
};

class ColumnsVisitor {
 public:
  explicit ColumnsVisitor(size_t n) : n_(n) {}

  void begin_row(size_t i) {
    row_ = i;
    col_ = 0;
  }
  py::dict finish() {
    py::dict d;
    for (auto& c : cols_) d[c.name] = c.array;
    return d;
  }

  void time(const char* name, uint64_t ns) {
    Column& c = column(name, [&] { return make_array(py::dtype("M8[ns]"), n_); });
    if (n_) static_cast<int64_t*>(c.data)[row_] = static_cast<int64_t>(ns);
  }
  void text(const char* name, std::string_view s) {
    // Runs of one value (verdict, protocol, a busy pod) skip the lookup.
    if (col_ < last_.size() && last_[col_].p == s.data() && last_[col_].n == s.size()) {
      set_object(name, last_obj_[col_]);
      return;
    }
    PyObject* o = interner_.str(s);
    if (last_.size() <= col_) {
      last_.resize(col_ + 1, TextKey{nullptr, 0});
      last_obj_.resize(col_ + 1, nullptr);
    }
    last_[col_] = {s.data(), s.size()};
    last_obj_[col_] = o;
    set_object(name, o);
  }
  void ip(const char* name, const IpAddr& a, bool present) {
    set_object(name, present ? interner_.ip(a) : interner_.str(""));
  }
  template <class T>
  void num(const char* name, T x) {
    Column& c = column(name, [&] { return make_array(py::dtype::of<T>(), n_); });
    if (n_) static_cast<T*>(c.data)[row_] = x;
  }
  void flags(const char* name, uint16_t f) { set_object(name, interner_.flags(f)); }
  void flag(const char* name, bool b) {
    Column& c = column(name, [&] { return make_array(py::dtype("?"), n_); });
    if (n_) static_cast<bool*>(c.data)[row_] = b;
  }
  void ips(const char* name, const DnsInfo* dns) {
    if (!dns || dns->ips.empty()) {
      set_object(name, empty_tuple().ptr());
      return;
    }
    py::tuple t(dns->ips.size());
    for (size_t i = 0; i < dns->ips.size(); ++i) t[i] = py::reinterpret_borrow<py::object>(interner_.ip(dns->ips[i]));
    set_object(name, t.ptr());
  }

 private:
  struct Column {
    const char* name;
    py::array array;
    void* data;
  };

  template <class Make>
  Column& column(const char* name, Make make) {
    if (col_ == cols_.size()) {
      py::array a = make();
      void* data = a.mutable_data();
      cols_.push_back({name, std::move(a), data});
    }
    return cols_[col_++];
  }

  void set_object(const char* name, PyObject* value) {
    Column& c = column(name, [&] { return make_array(py::dtype("O"), n_); });
    if (!n_) return;
    auto** slot = static_cast<PyObject**>(c.data) + row_;
    Py_INCREF(value);
    Py_XDECREF(*slot);  // None or NULL, as numpy left it
    *slot = value;
  }

  py::object& empty_tuple() {
    if (!empty_) empty_ = py::tuple(0);
    return empty_;
  }

  size_t n_;
  size_t row_ = 0;
  size_t col_ = 0;
  std::vector<Column> cols_;
  Interner interner_;
  std::vector<TextKey> last_;        // by column: the last text seen
  std::vector<PyObject*> last_obj_;  // and its str (owned by interner_)
  py::object empty_;
};

// ---- numpy ----

// One record of the structured array. Enumerations are their numeric
// Hubble values; strings are codes into the stream's string table.
struct NpFlow {
  int64_t time;
  uint64_t packets;
  uint64_t bytes;
  uint32_t ifindex;
  uint32_t drop_reason_code;
  uint32_t src_namespace;
  uint32_t src_pod;
  uint32_t src_workload;
  uint32_t dst_namespace;
  uint32_t dst_pod;
  uint32_t dst_workload;
  uint32_t dns_query;
  uint32_t drop_reason;
  uint16_t src_port;
  uint16_t dst_port;
  uint16_t tcp_flags;
  uint16_t dns_qtype;
  uint16_t dns_rcode;
  uint8_t verdict;
  uint8_t origin;
  uint8_t ip_version;
  uint8_t proto;
  uint8_t direction;
  uint8_t observation_point;
  bool is_reply;
  bool is_reply_known;
  char src_ip[39];  // the longest text inet_ntop writes for these addresses
  char dst_ip[39];
};

void put_ip(char (&out)[39], const IpAddr& a, bool present) {
  std::memset(out, 0, sizeof out);
  if (!present) return;
  if (a.is_v4()) {
    // Dotted quad by hand: inet_ntop is the slowest part of a row.
    char* p = out;
    for (int i = 12; i < 16; ++i) {
      const unsigned v = a.bytes[i];
      if (v >= 100) *p++ = static_cast<char>('0' + v / 100);
      if (v >= 10) *p++ = static_cast<char>('0' + v / 10 % 10);
      *p++ = static_cast<char>('0' + v % 10);
      if (i < 15) *p++ = '.';
    }
    return;
  }
  std::string s;
  a.append_to(s);
  std::memcpy(out, s.data(), std::min(s.size(), sizeof out));
}

// String codes of one endpoint's fields, looked up once per endpoint.
struct EndpointCodes {
  uint32_t namespace_ = 0, pod = 0, workload = 0;
};

class CodeCache {
 public:
  explicit CodeCache(StringTable& t) : table_(t) {}
  EndpointCodes endpoint(const Endpoint* ep) {
    if (!ep) return {};
    auto it = endpoints_.find(ep);
    if (it != endpoints_.end()) return it->second;
    const EndpointView v = endpoint_view(ep);
    const EndpointCodes c{table_.intern(v.namespace_), table_.intern(v.pod), table_.intern(v.workload)};
    endpoints_.emplace(ep, c);
    return c;
  }
  uint32_t text(std::string_view s) {
    if (s.empty()) return 0;
    const TextKey key{s.data(), s.size()};
    auto it = texts_.find(key);
    if (it != texts_.end()) return it->second;
    const uint32_t c = table_.intern(s);
    texts_.emplace(key, c);
    return c;
  }

 private:
  StringTable& table_;
  absl::flat_hash_map<const Endpoint*, EndpointCodes> endpoints_;
  absl::flat_hash_map<TextKey, uint32_t> texts_;
};

#define NP_FIELD(name, fmt) {#name, fmt, offsetof(NpFlow, name)}

struct NpField {
  const char* name;
  const char* format;
  size_t offset;
};
const NpField kNpFields[] = {
    NP_FIELD(time, "M8[ns]"),
    NP_FIELD(verdict, "u1"),
    NP_FIELD(origin, "u1"),
    NP_FIELD(ip_version, "u1"),
    NP_FIELD(src_ip, "S39"),
    NP_FIELD(dst_ip, "S39"),
    NP_FIELD(proto, "u1"),
    NP_FIELD(src_port, "<u2"),
    NP_FIELD(dst_port, "<u2"),
    NP_FIELD(tcp_flags, "<u2"),
    NP_FIELD(direction, "u1"),
    NP_FIELD(observation_point, "u1"),
    NP_FIELD(is_reply, "?"),
    NP_FIELD(is_reply_known, "?"),
    NP_FIELD(packets, "<u8"),
    NP_FIELD(bytes, "<u8"),
    NP_FIELD(src_namespace, "<u4"),
    NP_FIELD(src_pod, "<u4"),
    NP_FIELD(src_workload, "<u4"),
    NP_FIELD(dst_namespace, "<u4"),
    NP_FIELD(dst_pod, "<u4"),
    NP_FIELD(dst_workload, "<u4"),
    NP_FIELD(drop_reason, "<u4"),
    NP_FIELD(drop_reason_code, "<u4"),
    NP_FIELD(dns_query, "<u4"),
    NP_FIELD(dns_qtype, "<u2"),
    NP_FIELD(dns_rcode, "<u2"),
    NP_FIELD(ifindex, "<u4"),
};

}  // namespace

py::dict flow_row_dict(const OwnedFlow& o) {
  DictVisitor v;
  visit_row(o, v);
  return v.d;
}

py::dict flow_columns(const std::vector<OwnedFlow>& flows) {
  ColumnsVisitor v(flows.size());
  if (flows.empty()) {
    // Visited once only to create the (empty) columns.
    const OwnedFlow none;
    v.begin_row(0);
    visit_row(none, v);
  }
  for (size_t i = 0; i < flows.size(); ++i) {
    v.begin_row(i);
    visit_row(flows[i], v);
  }
  return v.finish();
}

py::dtype flow_numpy_dtype() {
  // Leaked on purpose: a static py::object would be released after the
  // interpreter is gone.
  static py::dtype* dt = [] {
    py::list names, formats, offsets;
    for (const auto& f : kNpFields) {
      names.append(f.name);
      formats.append(f.format);
      offsets.append(f.offset);
    }
    py::dict spec;
    spec["names"] = names;
    spec["formats"] = formats;
    spec["offsets"] = offsets;
    spec["itemsize"] = sizeof(NpFlow);
    return new py::dtype(py::module_::import("numpy").attr("dtype")(spec));
  }();
  return *dt;
}

py::array flow_numpy(const std::vector<OwnedFlow>& flows, StringTable& strings, std::mutex& strings_mu) {
  py::array arr = make_array(flow_numpy_dtype(), flows.size());
  auto* rows = static_cast<NpFlow*>(arr.mutable_data());
  {
    // Plain memory from here on: no Python object is touched.
    py::gil_scoped_release release;
    std::lock_guard lock(strings_mu);
    CodeCache codes(strings);
    for (size_t i = 0; i < flows.size(); ++i) {
      const OwnedFlow& o = flows[i];
      const Flow& f = o.flow();
      NpFlow& r = rows[i];
      std::memset(&r, 0, sizeof r);
      const bool has_ip = f.ip_version != IpVersion::IP_NOT_USED;
      r.time = static_cast<int64_t>(f.time_ns);
      r.packets = f.packets();
      r.bytes = f.total_bytes();
      r.ifindex = f.ifindex;
      r.drop_reason_code = f.drop_reason;
      const EndpointCodes s = codes.endpoint(o.source().get());
      const EndpointCodes d = codes.endpoint(o.destination().get());
      r.src_namespace = s.namespace_;
      r.src_pod = s.pod;
      r.src_workload = s.workload;
      r.dst_namespace = d.namespace_;
      r.dst_pod = d.pod;
      r.dst_workload = d.workload;
      r.dns_query = f.dns ? codes.text(f.dns->query) : 0;
      r.drop_reason = f.verdict == Verdict::DROPPED ? codes.text(f.drop_reason_desc) : 0;
      r.src_port = f.src_port;
      r.dst_port = f.dst_port;
      r.tcp_flags = f.tcp_flags;
      r.dns_qtype = f.dns ? f.dns->qtype : 0;
      r.dns_rcode = f.dns ? f.dns->rcode : 0;
      r.verdict = static_cast<uint8_t>(f.verdict);
      r.origin = static_cast<uint8_t>(f.origin);
      r.ip_version = static_cast<uint8_t>(f.ip_version);
      r.proto = static_cast<uint8_t>(f.proto);
      r.direction = static_cast<uint8_t>(f.direction);
      r.observation_point = static_cast<uint8_t>(f.observation_point);
      r.is_reply = f.is_reply_known && f.is_reply;
      r.is_reply_known = f.is_reply_known;
      put_ip(r.src_ip, f.src, has_ip);
      put_ip(r.dst_ip, f.dst, has_ip);
    }
  }
  return arr;
}

void register_batch(py::module_& m) {
  py::class_<FlowBatch>(m, "FlowBatch", R"doc(
Flows held in C++ until converted: iterate or index it for Flow objects,
or call columns() / to_numpy() for the tabular forms.
)doc")
      .def("__len__", [](const FlowBatch& b) { return b.flows.size(); })
      .def("__getitem__",
           [](const FlowBatch& b, py::ssize_t i) {
             const auto n = static_cast<py::ssize_t>(b.flows.size());
             if (i < 0) i += n;
             if (i < 0 || i >= n) throw py::index_error("FlowBatch index out of range");
             return b.flows[static_cast<size_t>(i)];
           })
      .def("flows",
           [](const FlowBatch& b) {
             py::list l(b.flows.size());
             for (size_t i = 0; i < b.flows.size(); ++i) l[i] = py::cast(b.flows[i]);
             return l;
           })
      .def("_take_flows",
           [](FlowBatch& b) {
             // Moves the flows into Flow objects; the batch is left empty.
             py::list l(b.flows.size());
             for (size_t i = 0; i < b.flows.size(); ++i) l[i] = py::cast(std::move(b.flows[i]));
             b.flows.clear();
             return l;
           })
      .def("columns", [](const FlowBatch& b) { return flow_columns(b.flows); },
           "{column: numpy array} in DataFrame column order.")
      .def(
          "to_numpy",
          [](const FlowBatch& b, PyStringTable& t) { return flow_numpy(b.flows, t.table, t.mu); },
          py::arg("strings"), "Structured array; string fields are codes into `strings`.")
      .def("__repr__", [](const FlowBatch& b) { return fmt::format("FlowBatch({} flows)", b.flows.size()); });

  py::class_<PyStringTable, std::shared_ptr<PyStringTable>>(m, "StringTable", R"doc(
The strings behind the code fields of poll_numpy() arrays: code 0 is "",
and a code, once given, always means the same string.
)doc")
      .def(py::init<>())
      .def("__len__",
           [](PyStringTable& t) {
             std::lock_guard lock(t.mu);
             return t.table.size();
           })
      .def("__getitem__",
           [](PyStringTable& t, size_t i) {
             std::lock_guard lock(t.mu);
             if (i >= t.table.size()) throw py::index_error("no such string code");
             return t.table.at(i);
           })
      .def("to_list", [](PyStringTable& t) {
        std::lock_guard lock(t.mu);
        py::list l(t.table.size());
        for (size_t i = 0; i < t.table.size(); ++i) l[i] = py::str(t.table.at(i));
        return l;
      });

  m.attr("FLOW_NUMPY_DTYPE") = flow_numpy_dtype();
}

}  // namespace retina::py
