// retina._retina.Engine: the whole engine (plugins, reader thread, cache,
// pipeline, metrics) in this process. Blocking calls release the GIL.
#include <fmt/format.h>

#include <mutex>

#include "bindings.hpp"
#include "py_endpoint.hpp"
#include "py_subscription.hpp"
#include "retina/config.hpp"
#include "retina/engine.hpp"
#include "retina/log.hpp"
#include "retina/metrics/registry.hpp"

namespace retina::py {

namespace {

class PyEngine {
 public:
  explicit PyEngine(std::unique_ptr<Engine> e) : engine_(std::move(e)) {}
  ~PyEngine() {
    // stop() joins threads that never touch Python; safe with the GIL held,
    // but released anyway so other Python threads keep running.
    py::gil_scoped_release release;
    engine_.reset();
  }

  void start() {
    Status st;
    {
      py::gil_scoped_release release;
      std::lock_guard lock(mu_);
      st = engine_->start();
      if (st) started_ = true;
    }
    check(st);
  }
  void stop() {
    py::gil_scoped_release release;
    std::lock_guard lock(mu_);
    engine_->stop();
    stopped_ = true;
  }
  bool running() const { return started_ && !stopped_; }
  bool stopped() const { return stopped_; }
  Engine& engine() { return *engine_; }

 private:
  std::unique_ptr<Engine> engine_;
  std::mutex mu_;
  std::atomic<bool> started_{false}, stopped_{false};
};

}  // namespace

void register_engine(py::module_& m) {
  py::class_<PyEngine>(m, "Engine", "The engine in this process; use retina.Engine, which wraps this.")
      .def(py::init([](const Config& config, py::object proc_root, py::object sys_root) {
             // The engine's log lines (logfmt on stderr) follow its config.
             log::set_level(config.log_level);
             EngineOptions opts;
             if (!proc_root.is_none()) opts.proc_root = proc_root.cast<std::string>();
             if (!sys_root.is_none()) opts.sys_root = sys_root.cast<std::string>();
             return std::make_unique<PyEngine>(unwrap(Engine::create(config, std::move(opts))));
           }),
           py::arg("config"), py::kw_only(), py::arg("proc_root") = py::none(), py::arg("sys_root") = py::none())
      .def("start", &PyEngine::start, "Initializes and starts the plugins and the reader thread.")
      .def("stop", &PyEngine::stop, "Stops plugins (detaching everything they attached) and threads.")
      .def_property_readonly("running", &PyEngine::running)
      .def_property_readonly("stopped", &PyEngine::stopped)
      .def("ready", [](PyEngine& e) { return e.engine().ready(); })
      .def_property_readonly("config", [](PyEngine& e) { return e.engine().config(); })
      .def("plugin_status",
           [](PyEngine& e) {
             py::list l;
             for (const auto& s : e.engine().plugin_status()) {
               py::dict d;
               d["name"] = s.name;
               d["state"] = to_string(s.state);
               d["reason"] = s.reason;
               l.append(d);
             }
             return l;
           })
      .def("metrics_text",
           [](PyEngine& e) {
             std::string text;
             {
               py::gil_scoped_release release;
               text = e.engine().metrics().expose();
             }
             return text;
           })
      .def_property_readonly("cache", [](PyEngine& e) { return PyIpCache{e.engine().cache_ptr()}; })
      .def("pipeline_stats",
           [](PyEngine& e) {
             const PipelineStats s = e.engine().pipeline().stats();
             py::dict d;
             d["records"] = s.records;
             d["decoded"] = s.decoded;
             py::dict rejected;
             for (size_t i = 0; i < static_cast<size_t>(DecodeError::kCount); ++i)
               if (s.rejected[i]) rejected[to_string(static_cast<DecodeError>(i))] = s.rejected[i];
             d["rejected"] = rejected;
             d["enrich_hits"] = s.enrich_hits;
             d["enrich_misses"] = s.enrich_misses;
             return d;
           })
      .def(
          "subscribe",
          [](PyEngine& e, std::string name, long long capacity, py::object filter) {
            if (capacity < 1) raise_invalid(fmt::format("capacity: {} is not a count >= 1", capacity));
            FlowFilter f = to_filter(filter);
            return std::make_shared<PySubscription>(
                PySubscription{e.engine().pipeline().subscribe(std::move(name), static_cast<size_t>(capacity), std::move(f))});
          },
          py::arg("name"), py::arg("capacity") = 1 << 16, py::arg("filter") = py::none());

  m.def(
      "set_log_level",
      [](const std::string& level) {
        const std::pair<const char*, LogLevel> levels[] = {{"trace", LogLevel::kTrace},
                                                           {"debug", LogLevel::kDebug},
                                                           {"info", LogLevel::kInfo},
                                                           {"warn", LogLevel::kWarn},
                                                           {"error", LogLevel::kError}};
        for (const auto& [name, l] : levels)
          if (level == name) return log::set_level(l);
        raise_invalid(fmt::format("log level: \"{}\" is not one of trace, debug, info, warn, error", level));
      },
      py::arg("level"), "Level of the engine's log lines (logfmt on stderr).");
  // One log format for the process: spdlog's default logger (libbpf's print
  // hook, older plugin code) writes through retina's logfmt lines too.
  log::route_spdlog();
}

}  // namespace retina::py
