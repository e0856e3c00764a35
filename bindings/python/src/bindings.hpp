// Shared pieces of the retina._retina extension module: error translation,
// conversions between Python values and retina types, and the register_*
// functions each source file contributes to the module.
#pragma once

#include <pybind11/pybind11.h>

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include <absl/container/flat_hash_map.h>

#include "retina/decoder.hpp"
#include "retina/endpoint.hpp"
#include "retina/error.hpp"
#include "retina/flow.hpp"
#include "retina/ip.hpp"
#include "retina/pipeline.hpp"

namespace retina::py {

namespace py = pybind11;

// ---- errors (errors.cpp) ----

void register_errors(py::module_& m);
// Raises the Python exception matching e.kind, carrying e.message.
[[noreturn]] void raise(const Error& e);
// Raises retina.DecodeError (a ValueError) with reason = to_string(e).
[[noreturn]] void raise_decode(DecodeError e, const std::string& message);
// Raises retina.InvalidArgument (a ValueError).
[[noreturn]] void raise_invalid(const std::string& message);

inline void check(const Status& st) {
  if (!st) raise(st.error());
}
template <class T>
T unwrap(Result<T>&& r) {
  if (!r) raise(r.error());
  return std::move(*r);
}

// ---- conversions (convert.cpp) ----

// Accepts "10.0.0.1", "fd00::1", ipaddress objects (anything whose str()
// is an address) and 4- or 16-byte bytes objects.
IpAddr to_ip(py::handle obj, std::string_view what);
py::str ip_str(const IpAddr& ip);
// A list of strings from a str (one item) or an iterable of str.
std::vector<std::string> to_string_list(py::handle obj, std::string_view what);

Verdict verdict_from(py::handle obj);
FlowSource origin_from(py::handle obj);
const char* origin_name(FlowSource s);
// "SYN|ACK"; empty when no flag is set.
std::string tcp_flags_text(uint16_t flags);
// Hubble's protocol names, empty for kNone.
const char* proto_name(L4Protocol p);

// A FlowFilter from None, a dict or a retina.FlowFilter-like object with
// the keys verdicts, origins, namespaces, pods, ips, ports.
FlowFilter to_filter(py::handle obj);

// ---- register functions ----
void register_config(py::module_& m);
void register_endpoint(py::module_& m);
void register_flow(py::module_& m);
void register_batch(py::module_& m);
void register_subscription(py::module_& m);
void register_pipeline(py::module_& m);
void register_engine(py::module_& m);
void register_abi(py::module_& m);

// ---- shared types ----

// A batch of flows popped from a subscription or decoded offline. Kept in
// C++ until the caller asks for Flow objects, DataFrame columns or a
// structured numpy array.
struct FlowBatch {
  std::vector<OwnedFlow> flows;
};

// Interns strings for the numpy form: code 0 is "", codes never change,
// so arrays from successive polls of one stream can be concatenated.
class StringTable {
 public:
  StringTable() : strings_{std::string()} { index_.emplace(std::string(), 0); }
  uint32_t intern(std::string_view s) {
    if (s.empty()) return 0;
    auto it = index_.find(absl::string_view(s.data(), s.size()));
    if (it != index_.end()) return it->second;
    const auto code = static_cast<uint32_t>(strings_.size());
    strings_.emplace_back(s);
    index_.emplace(std::string(s), code);
    return code;
  }
  size_t size() const { return strings_.size(); }
  const std::string& at(size_t i) const { return strings_.at(i); }

 private:
  std::vector<std::string> strings_;
  absl::flat_hash_map<std::string, uint32_t> index_;
};

// A StringTable shared by every numpy array of one stream.
struct PyStringTable {
  StringTable table;
  std::mutex mu;
};

}  // namespace retina::py
