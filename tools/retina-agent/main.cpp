// retina-agent: the engine plus its HTTP API, configured like Retina's agent.
//
//   retina-agent [--config FILE] [--kubeconfig PATH] [--endpoints-file PATH]
//                [--log-level LEVEL] [--port N] [--version]
//                [--health-probe-bind-address ADDR] [--metrics-bind-address ADDR]
//                [--leader-elect[=BOOL]]
//
// The last three are the flags Retina's chart passes: /healthz and /readyz
// are also served on the probe address (Retina's :18081 by default), and
// /metrics on the metrics address when one is given. Leader election is
// accepted and ignored: every agent serves its own node.
//
// Without --config the defaults work on a plain Linux host (no Kubernetes).
// Exit codes: 0 after SIGTERM/SIGINT, 2 for a bad command line or config,
// 1 when the engine or the API server cannot start.
#include <malloc.h>
#include <signal.h>

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "retina/api_server.hpp"
#include "retina/capabilities.hpp"
#include "retina/capture.hpp"
#include "retina/config.hpp"
#include "retina/engine.hpp"
#include "retina/log.hpp"
#include "retina/resident.hpp"
#include "retina/hubble.hpp"

#ifndef RETINA_VERSION
#define RETINA_VERSION "unknown"
#endif

namespace {

constexpr int kExitConfig = 2;
constexpr int kExitRuntime = 1;
constexpr std::string_view kDefaultProbeAddress = ":18081";  // Retina's

struct ExtraListener {
  const char* flag;
  retina::BindAddress address;
  bool required;  // the flag was given: failing to listen is fatal
};

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
  std::string probe_address = std::string(kDefaultProbeAddress), metrics_address;
  bool leader_elect = false;
  bool skip_capability_check = false;
  app.add_option("--config", config_path, "Agent config.yaml (Retina's keys); defaults without it");
  app.add_option("--kubeconfig", kubeconfig, "Kubeconfig for running outside a cluster; enables Kubernetes");
  app.add_option("--endpoints-file", endpoints_file, "YAML/JSON list of endpoints to enrich flows with");
  app.add_option("--log-level", log_level, "trace, debug, info, warn or error (overrides logLevel)")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error"}));
  app.add_option("--port", port, "API server port (overrides apiServer.port); 0 picks a free one")
      ->check(CLI::Range(0, 65535));
  app.add_flag("--version", version, "Print the version and exit");
  auto* probe_opt = app.add_option("--health-probe-bind-address", probe_address,
                                   "Also serve /healthz and /readyz here (Retina's flag); \"0\" disables")
                        ->capture_default_str();
  app.add_option("--metrics-bind-address", metrics_address, "Also serve /metrics here (Retina's flag); \"0\" disables");
  app.add_flag("--leader-elect", leader_elect, "Accepted for Retina's chart and ignored: each agent serves its node");
  app.add_flag("--skip-capability-check", skip_capability_check,
               "Start plugins without checking their capabilities first, so the kernel refuses instead (how "
               "docs/security.md's table is proved)");
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

  // glibc gives each thread that allocates its own arena (64 MiB reserved,
  // what it touched resident, freed chunks kept per arena). The agent's
  // threads allocate little after start-up and never on the event path:
  // two arenas hold it all. MALLOC_ARENA_MAX in the environment wins.
  if (!std::getenv("MALLOC_ARENA_MAX")) ::mallopt(M_ARENA_MAX, 2);

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
  std::vector<ExtraListener> extra;
  for (const auto& [flag, value, explicit_flag] :
       {std::tuple{"--health-probe-bind-address", &probe_address, probe_opt->count() > 0},
        std::tuple{"--metrics-bind-address", &metrics_address, true}}) {
    if (value->empty() || *value == "0") continue;
    auto a = retina::parse_bind_address(*value);
    if (!a) return config_error(fmt::format("{}: {}", flag, a.error().message));
    extra.push_back({flag, std::move(*a), explicit_flag});
  }

  retina::log::set_level(config.log_level);
  if (leader_elect)
    retina::log::info("agent", "--leader-elect is ignored: every agent serves its own node, none leads");
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

  retina::EngineOptions options;
  // glibc keeps freed chunks in its arenas and returns only the top of a
  // heap on its own: after a large transient that later allocations
  // fragment, an idle agent would keep tens of MiB it no longer uses.
  options.release_memory = [] {
    ::malloc_trim(0);
    (void)retina::release_clean_file_pages();
  };
  options.check_capabilities = !skip_capability_check;
  auto engine = retina::Engine::create(config, std::move(options));
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

  // The probe and metrics addresses: the same API on more listeners. One
  // that cannot bind fails the start when its flag was given; Retina's
  // default probe address only warns (several agents may share a host).
  std::vector<std::unique_ptr<retina::ApiServer>> listeners;
  for (const ExtraListener& l : extra) {
    if (l.address.port == config.api_server_port && l.address.host == config.api_server_host) continue;
    auto opts = retina::ApiServerOptions::from((*engine)->config());
    opts.host = l.address.host;
    opts.port = l.address.port;
    opts.max_flow_streams = 0;
    auto s = retina::ApiServer::start(retina::engine_backend(**engine), std::move(opts));
    if (!s) {
      if (!l.required) {
        retina::log::warn("agent", "not serving probes", {{"flag", l.flag}, {"error", s.error().message}});
        continue;
      }
      retina::log::error("agent", "cannot listen", {{"flag", l.flag}, {"error", s.error().message}});
      (*server)->stop();
      (*engine)->stop();
      return kExitRuntime;
    }
    retina::log::info("agent", "also serving",
                      {{"flag", l.flag}, {"address", fmt::format("{}:{}", l.address.host, (*s)->port())}});
    listeners.push_back(std::move(*s));
  }

  std::unique_ptr<retina::HubbleServer> hubble;
  if ((*engine)->config().enable_hubble) {
    auto options = retina::HubbleOptions::from((*engine)->config());
    options.version = RETINA_VERSION;
    auto started = retina::HubbleServer::start((*engine)->pipeline(), std::move(options));
    if (!started) {
      (*server)->stop();
      (*engine)->stop();
      if (started.error().kind == retina::Error::Kind::kInvalidArgument) return config_error(started.error().message);
      retina::log::error("agent", "cannot start the Hubble server", {{"error", started.error().message}});
      return kExitRuntime;
    }
    hubble = std::move(*started);
  }

  // Everything is loaded and attached: keep only what the running plugins
  // and enabled features still use (docs/security.md), on every thread.
  retina::CapabilitySet keep = (*engine)->run_capabilities();
  if (captures) keep |= retina::capture::kCaptureCapabilities;
  if (auto dropped = retina::restrict_capabilities(keep); dropped) {
    retina::log::info("agent", "capabilities after start-up",
                      {{"kept", retina::to_string(dropped->kept)},
                       {"dropped", retina::to_string(dropped->dropped)},
                       {"bounding_set", dropped->bounding_reduced ? "reduced" : "left as given (no CAP_SETPCAP)"},
                       {"threads", dropped->threads}});
  } else {
    retina::log::error("agent", "cannot drop capabilities", {{"error", dropped.error().message}});
  }

  // Started: the pages only start-up used (loading and relocating the
  // libraries, loading BPF objects, parsing the config) leave the RSS.
  ::malloc_trim(0);
  if (auto released = retina::release_clean_file_pages(); !released) {
    retina::log::warn("agent", "cannot release start-up pages", {{"error", released.error().message}});
  } else {
    retina::log::debug("agent", "released start-up pages", {{"bytes", *released}});
  }

  int sig = 0;
  while (sigwait(&signals, &sig) != 0) {
  }
  retina::log::info("agent", "shutting down", {{"signal", sig == SIGTERM ? "SIGTERM" : "SIGINT"}});
  for (auto& l : listeners) l->stop();
  if (hubble) hubble->stop();
  (*server)->stop();
  capture_objects.reset();
  captures.reset();  // stops running captures; their bundles are written
  (*engine)->stop();
  retina::log::info("agent", "stopped");
  return 0;
}
