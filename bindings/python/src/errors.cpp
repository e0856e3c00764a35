// retina::Error -> Python exceptions. Every class derives from retina.Error
// and from the built-in exception a Python caller would expect, so
// `except ValueError` catches a bad config and `except OSError` a failed
// kernel call.
#include <Python.h>

#include "bindings.hpp"

namespace retina::py {

namespace {

struct Types {
  PyObject* base = nullptr;
  PyObject* invalid = nullptr;
  PyObject* parse = nullptr;
  PyObject* decode = nullptr;
  PyObject* system = nullptr;
  PyObject* unsupported = nullptr;
  PyObject* not_found = nullptr;
  PyObject* internal = nullptr;
};
Types g_types;  // module lifetime: the module holds a reference to each

PyObject* make(py::module_& m, const char* name, const char* doc, std::initializer_list<PyObject*> bases) {
  py::tuple b(bases.size());
  size_t i = 0;
  for (PyObject* base : bases) b[i++] = py::reinterpret_borrow<py::object>(base);
  const std::string qualified = std::string("retina.") + name;
  py::dict dict;
  dict["__doc__"] = doc;
  PyObject* type = PyErr_NewException(qualified.c_str(), b.ptr(), dict.ptr());
  if (!type) throw py::error_already_set();
  m.add_object(name, py::reinterpret_borrow<py::object>(type));
  return type;
}

const char* kind_name(Error::Kind k) {
  switch (k) {
    case Error::Kind::kInvalidArgument: return "invalid_argument";
    case Error::Kind::kSystem: return "system";
    case Error::Kind::kUnsupported: return "unsupported";
    case Error::Kind::kNotFound: return "not_found";
    case Error::Kind::kParse: return "parse";
    case Error::Kind::kInternal: return "internal";
  }
  return "internal";
}

[[noreturn]] void raise_instance(PyObject* type, py::tuple args, const char* kind) {
  PyObject* inst = PyObject_Call(type, args.ptr(), nullptr);
  if (!inst) throw py::error_already_set();
  auto owned = py::reinterpret_steal<py::object>(inst);
  owned.attr("kind") = kind;
  PyErr_SetObject(type, inst);
  throw py::error_already_set();
}

}  // namespace

void register_errors(py::module_& m) {
  g_types.base = make(m, "Error", "Base class of every error retina raises; .kind names the category.",
                      {PyExc_Exception});
  g_types.invalid = make(m, "InvalidArgument", "A bad argument or configuration (also a ValueError).",
                         {g_types.base, PyExc_ValueError});
  g_types.parse = make(m, "ParseError", "Malformed external data such as YAML (also a ValueError).",
                       {g_types.base, PyExc_ValueError});
  g_types.decode = make(m, "DecodeError",
                        "A ring-buffer record the decoder rejects; .reason is the decoder's reason "
                        "(too_short, length_mismatch, unknown_type, unsupported_version, bad_field, "
                        "dns_malformed).",
                        {g_types.base, PyExc_ValueError});
  g_types.system = make(m, "SystemCallError", "A kernel call failed; .errno holds its errno (also an OSError).",
                        {g_types.base, PyExc_OSError});
  g_types.unsupported = make(m, "Unsupported", "The kernel or environment lacks a feature.",
                             {g_types.base, PyExc_NotImplementedError});
  g_types.not_found = make(m, "NotFound", "Something named does not exist (also a LookupError).",
                           {g_types.base, PyExc_LookupError});
  g_types.internal = make(m, "InternalError", "A bug or an unexpected state inside retina.",
                          {g_types.base, PyExc_RuntimeError});
}

void raise(const Error& e) {
  PyObject* type = g_types.internal;
  switch (e.kind) {
    case Error::Kind::kInvalidArgument: type = g_types.invalid; break;
    case Error::Kind::kParse: type = g_types.parse; break;
    case Error::Kind::kSystem:
      // OSError(errno, strerror) fills .errno and .strerror.
      raise_instance(g_types.system, py::make_tuple(e.code, e.message), kind_name(e.kind));
    case Error::Kind::kUnsupported: type = g_types.unsupported; break;
    case Error::Kind::kNotFound: type = g_types.not_found; break;
    case Error::Kind::kInternal: type = g_types.internal; break;
  }
  raise_instance(type, py::make_tuple(e.message), kind_name(e.kind));
}

void raise_decode(DecodeError e, const std::string& message) {
  py::object owned = py::handle(g_types.decode)(py::str(message));
  PyObject* inst = owned.ptr();
  owned.attr("kind") = "parse";
  owned.attr("reason") = to_string(e);
  PyErr_SetObject(g_types.decode, inst);
  throw py::error_already_set();
}

void raise_invalid(const std::string& message) { raise(Error::invalid(message)); }

}  // namespace retina::py
