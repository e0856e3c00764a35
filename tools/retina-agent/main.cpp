// retina-agent: the engine plus its HTTP API, configured like Retina's agent.
//
//   retina-agent [--config FILE] [--kubeconfig PATH] [--endpoints-file PATH]
//                [--log-level LEVEL] [--port N] [--version]
//
// Without --config the defaults work on a plain Linux host (no Kubernetes).
// Exit codes: 0 after SIGTERM/SIGINT, 2 for a bad command line or config,
// 1 when the engine or the API server cannot start.
#include <signal.h>

#include <cstdio>
#include <memory>
#include <string>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "core/log.hpp"
#include "retina/api_server.hpp"
#include "retina/capture.hpp"
#include "retina/config.hpp"
#include "retina/engine.hpp"

#ifndef RETINA_VERSION
#define RETINA_VERSION "unknown"
#endif

namespace {

constexpr int kExitConfig = 2;
constexpr int kExitRuntime = 1;

int config_error(const std::string& message) {
  std::fprintf(stderr, "retina-agent: invalid configuration:\n%s\n", message.c_str());
  return kExitConfig;
}

std::string join(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) {
    if (!out.empty()) out += ',';
    out += s;
  }
  return out.empty() ? "none" : out;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"retina-agent: Kubernetes network observability (Retina-compatible metrics and flows)"};
  std::string config_path, kubeconfig, endpoints_file, log_level;
  int port = -1;
  bool version = false;
  app.add_option("--config", config_path, "Agent config.yaml (Retina's keys); defaults without it");
  app.add_option("--kubeconfig", kubeconfig, "Kubeconfig for running outside a cluster; enables Kubernetes");
  app.add_option("--endpoints-file", endpoints_file, "YAML/JSON list of endpoints to enrich flows with");
  app.add_option("--log-level", log_level, "trace, debug, info, warn or error (overrides logLevel)")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error"}));
  app.add_option("--port", port, "API server port (overrides apiServer.port); 0 picks a free one")
      ->check(CLI::Range(0, 65535));
  app.add_flag("--version", version, "Print the version and exit");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int rc = app.exit(e);
    return rc == 0 ? 0 : kExitConfig;
  }
  if (version) {
    std::printf("retina-agent %s\n", RETINA_VERSION);
    return 0;
  }

  // Signals are taken with sigwait below; block them before any thread
  // starts so every thread inherits the mask.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  // One log format for the whole process, libbpf and spdlog users included.
  retina::log::route_spdlog();

  retina::Config config;
  if (!config_path.empty()) {
    auto loaded = retina::load_config_file(config_path);
    if (!loaded) return config_error(loaded.error().message);
    config = std::move(*loaded);
  }
  if (!kubeconfig.empty()) {
    config.kubeconfig = kubeconfig;
    config.enable_kubernetes = true;
  }
  if (!endpoints_file.empty()) config.endpoints_file = endpoints_file;
  if (!log_level.empty()) {
    const std::pair<const char*, retina::LogLevel> levels[] = {{"trace", retina::LogLevel::kTrace},
                                                               {"debug", retina::LogLevel::kDebug},
                                                               {"info", retina::LogLevel::kInfo},
                                                               {"warn", retina::LogLevel::kWarn},
                                                               {"error", retina::LogLevel::kError}};
    for (const auto& [name, level] : levels) {
      if (log_level == name) config.log_level = level;
    }
  }
  if (port >= 0) config.api_server_port = static_cast<uint16_t>(port);
  if (auto st = config.validate(); !st) return config_error(st.error().message);

  retina::log::set_level(config.log_level);
  retina::log::info("agent", "starting",
                    {{"version", RETINA_VERSION},
                     {"config", config_path.empty() ? "defaults" : config_path},
                     {"api", fmt::format("{}:{}", config.api_server_host, config.api_server_port)},
                     {"plugins", join(config.enabled_plugins)},
                     {"log_level", retina::to_string(config.log_level)},
                     {"aggregation", retina::to_string(config.data_aggregation_level)},
                     {"sampling", config.data_sampling_rate},
                     {"pod_level", config.enable_pod_level},
                     {"endpoints_file", config.endpoints_file},
                     {"kubernetes", config.enable_kubernetes}});

  auto engine = retina::Engine::create(config);
  if (!engine) {
    if (engine.error().kind == retina::Error::Kind::kInvalidArgument) return config_error(engine.error().message);
    retina::log::error("agent", "cannot create the engine", {{"error", engine.error().message}});
    return kExitRuntime;
  }
  if (auto st = (*engine)->start(); !st) {
    retina::log::error("agent", "cannot start the engine", {{"error", st.error().message}});
    return kExitRuntime;
  }
  std::string states;
  for (const auto& p : (*engine)->plugin_status()) {
    if (!states.empty()) states += ' ';
    states += fmt::format("{}={}", p.name, retina::to_string(p.state));
  }
  retina::log::info("agent", "plugins", {{"states", states}, {"ready", (*engine)->ready()}});

  // Packet capture: the /captures API, only with enableCapture.
  std::unique_ptr<retina::capture::Manager> captures;
  std::unique_ptr<retina::capture::CrdRunner, retina::capture::CrdRunnerDeleter> capture_objects;  // before `captures` is gone
  auto backend = retina::engine_backend(**engine);
  auto api_options = retina::ApiServerOptions::from((*engine)->config());
  if (config.enable_capture) {
    auto m = retina::capture::Manager::create(retina::capture::manager_options((**engine), config_path, RETINA_VERSION));
    if (!m) {
      retina::log::error("agent", "cannot enable packet capture", {{"error", m.error().message}});
      (*engine)->stop();
      return kExitConfig;
    }
    captures = std::move(*m);
    backend.routes = [m = captures.get()](std::string_view method, std::string_view path, std::string_view body,
                                          retina::RouteReply& reply) {
      return retina::capture::handle_http(m, method, path, body, reply);
    };
    api_options.max_body_bytes = retina::capture::kMaxSpecBytes;
    if (config.enable_kubernetes || !config.kubeconfig.empty()) {
      auto crd = retina::capture::start_crd_runner(*captures, (*engine)->config());
      if (!crd) {
        retina::log::error("agent", "cannot watch Capture objects", {{"error", crd.error().message}});
      } else {
        capture_objects = std::move(*crd);
      }
    }
  }
  auto server = retina::ApiServer::start(std::move(backend), std::move(api_options));
  if (!server) {
    retina::log::error("agent", "cannot start the API server", {{"error", server.error().message}});
    (*engine)->stop();
    return kExitRuntime;
  }

  int sig = 0;
  while (sigwait(&signals, &sig) != 0) {
  }
  retina::log::info("agent", "shutting down", {{"signal", sig == SIGTERM ? "SIGTERM" : "SIGINT"}});
  (*server)->stop();
  capture_objects.reset();
  captures.reset();  // stops running captures; their bundles are written
  (*engine)->stop();
  retina::log::info("agent", "stopped");
  return 0;
}
