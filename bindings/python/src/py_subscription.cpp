// retina._retina.Subscription: a subscriber's queue, popped without the
// GIL. Long waits are cut into short slices so that Ctrl-C (a pending
// signal) interrupts them.
#include <fmt/format.h>

#include <chrono>
#include <limits>
#include <optional>

#include "bindings.hpp"
#include "py_subscription.hpp"

namespace retina::py {

namespace {

using Clock = std::chrono::steady_clock;
constexpr auto kSlice = std::chrono::milliseconds(100);

std::optional<Clock::duration> seconds_arg(py::handle v, const char* name) {
  if (v.is_none()) return std::nullopt;
  const double s = v.cast<double>();
  if (!(s >= 0) || s > 1e9) raise_invalid(fmt::format("{}: {} is not a number of seconds >= 0", name, s));
  return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(s));
}

size_t max_arg(py::handle v) {
  if (v.is_none()) return std::numeric_limits<size_t>::max();
  const long long n = v.cast<long long>();
  if (n < 1) raise_invalid(fmt::format("max: {} is not a count >= 1", n));
  return static_cast<size_t>(n);
}

// True when a signal handler raised (e.g. KeyboardInterrupt).
bool interrupted() { return PyErr_CheckSignals() != 0; }

}  // namespace

FlowBatch pop_flows(Subscription& sub, py::handle max_obj, py::handle timeout_obj, py::handle duration_obj) {
  const size_t max = max_arg(max_obj);
  const auto timeout = seconds_arg(timeout_obj, "timeout");
  const auto duration = seconds_arg(duration_obj, "duration");
  const auto start = Clock::now();
  FlowBatch batch;
  auto& out = batch.flows;
  for (;;) {
    const auto now = Clock::now();
    // How long this slice may wait for its first flow.
    Clock::duration wait = kSlice;
    if (duration) {
      wait = std::min<Clock::duration>(wait, std::max<Clock::duration>(start + *duration - now, Clock::duration(0)));
    } else if (!out.empty()) {
      wait = Clock::duration(0);
    } else if (timeout) {
      wait = std::min<Clock::duration>(wait, std::max<Clock::duration>(start + *timeout - now, Clock::duration(0)));
    }
    size_t got = 0;
    {
      py::gil_scoped_release release;
      got = sub.pop_batch(out, max - out.size(),
                          std::chrono::ceil<std::chrono::milliseconds>(wait));
    }
    if (out.size() >= max) break;
    if (got == 0 && sub.closed() && sub.queued() == 0) break;
    const auto after = Clock::now();
    if (duration) {
      if (after >= start + *duration) break;
    } else if (!out.empty()) {
      if (got == 0) break;  // drained what was there
      continue;
    } else if (timeout && after >= start + *timeout) {
      break;
    }
    if (interrupted()) {
      // Flows already taken are returned rather than lost; the interrupt
      // is raised when nothing was taken.
      if (out.empty()) throw py::error_already_set();
      PyErr_Clear();
      break;
    }
  }
  return batch;
}

void register_subscription(py::module_& m) {
  py::class_<PySubscription, std::shared_ptr<PySubscription>>(m, "Subscription", R"doc(
A subscriber's bounded queue of flows (use retina.FlowStream). When the
consumer falls behind, flows are dropped and counted in `dropped`.
)doc")
      .def(
          "pop",
          [](PySubscription& s, py::object max, py::object timeout, py::object duration) {
            return pop_flows(*s.sub, max, timeout, duration);
          },
          py::arg("max") = py::none(), py::arg("timeout") = 0.0, py::arg("duration") = py::none(),
          R"doc(Pops up to `max` flows. Without `duration`: waits up to `timeout`
seconds (None: until a flow comes or the stream closes) for the first flow,
then takes what is queued. With `duration`: collects for that many seconds.)doc")
      .def_property_readonly("name", [](const PySubscription& s) { return std::string(s.sub->name()); })
      .def_property_readonly("dropped", [](const PySubscription& s) { return s.sub->dropped(); })
      .def_property_readonly("delivered", [](const PySubscription& s) { return s.sub->delivered(); })
      .def_property_readonly("queued", [](const PySubscription& s) { return s.sub->queued(); })
      .def_property_readonly("closed", [](const PySubscription& s) { return s.sub->closed(); })
      .def_property_readonly("strings", [](const PySubscription& s) { return s.strings; })
      .def("close", [](PySubscription& s) { s.sub->close(); });
}

}  // namespace retina::py
