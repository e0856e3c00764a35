// `retina capture create|list|delete|download`: through a cluster (the
// kubeconfig; a Capture object every agent acts on) or straight to one
// agent (--agent http://HOST:PORT; its /captures API).
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <memory>
#include <string>
#include <thread>

#include <fmt/format.h>
#include <simdjson.h>

#include "capture/cli_flags.hpp"
#include "capture/crd.hpp"
#include "commands.hpp"
#include "k8s/http_client.hpp"
#include "k8s/reflector.hpp"
#include "retina/k8s/watcher.hpp"

namespace retina::cli {
namespace {

struct Target {
  std::string agent;       // http://HOST:PORT; empty: the cluster
  std::string kubeconfig;  // cluster mode
  std::string namespace_ = "default";
};

void add_target_flags(CLI::App& app, Target& t) {
  app.add_option("--agent", t.agent, "Talk to one agent (http://HOST:PORT) instead of the cluster");
  app.add_option("--kubeconfig", t.kubeconfig, "Kubeconfig (default $KUBECONFIG, then ~/.kube/config)");
}

// Optional JSON fields keep their default when absent.
template <class T>
void opt(simdjson::simdjson_result<simdjson::dom::element> field, T& out) {
  if (field.get(out) != simdjson::SUCCESS) return;
}

int fail(const std::string& message) {
  std::fprintf(stderr, "retina capture: %s\n", message.c_str());
  return kExitRuntime;
}

Result<std::unique_ptr<k8s::HttpStream>> connect(const Target& t) {
  k8s::ClientConfig config;
  if (!t.agent.empty()) {
    if (!t.agent.starts_with("http://") && !t.agent.starts_with("https://")) {
      return unexpected(Error::invalid("--agent: expected http://HOST:PORT"));
    }
    config.server = t.agent;
    while (!config.server.empty() && config.server.back() == '/') config.server.pop_back();
  } else {
    auto c = k8s::resolve_client_config(t.kubeconfig);
    if (!c) return unexpected(c.error());
    config = std::move(*c);
  }
  auto creds = std::make_shared<k8s::Credentials>(config);
  return k8s::HttpStream::create(config, creds, std::chrono::seconds(10));
}

k8s::HttpResponse call(k8s::HttpStream& http, std::string method, std::string path, std::string body = {}) {
  k8s::HttpRequest req;
  req.method = std::move(method);
  req.path = std::move(path);
  req.body = std::move(body);
  req.timeout = std::chrono::seconds(30);
  return http.get(req);
}

std::string describe(const k8s::HttpResponse& r) {
  if (!r.error.empty()) return r.error;
  return fmt::format("HTTP {}: {}", r.status, r.body);
}

// "NAME STATE PACKETS DROPS BUNDLE" lines from an agent's status JSON.
void print_status(simdjson::dom::element st, const std::string& node_override = {}) {
  std::string_view name, node, state, bundle, message;
  uint64_t packets = 0, drops = 0;
  opt(st["name"], name);
  opt(st["node"], node);
  opt(st["state"], state);
  opt(st["bundle"], bundle);
  opt(st["message"], message);
  opt(st["packets"], packets);
  opt(st["kernelDropped"], drops);
  std::printf("%-24s %-20s %-10s %10llu %8llu  %s%s%s\n", std::string(name).c_str(),
              (node_override.empty() ? std::string(node) : node_override).c_str(), std::string(state).c_str(),
              static_cast<unsigned long long>(packets), static_cast<unsigned long long>(drops),
              std::string(bundle).c_str(), message.empty() ? "" : "  ", std::string(message).c_str());
}

void print_header() { std::printf("%-24s %-20s %-10s %10s %8s  %s\n", "NAME", "NODE", "STATE", "PACKETS", "DROPS", "BUNDLE"); }

bool finished_state(std::string_view s) { return s == "Completed" || s == "Cancelled" || s == "Failed"; }

// Saves the bundle under its own name (NAME-NODE-STAMP.tar.gz) in `dir`.
// `prefix` reaches the agent: "" straight, or the API server's node proxy
// ("/api/v1/nodes/NODE:PORT/proxy").
int download(k8s::HttpStream& http, const std::string& name, const std::string& dir, const std::string& prefix = {}) {
  auto status = call(http, "GET", prefix + "/captures/" + name);
  if (!status.ok()) return fail(fmt::format("download {}: {}", name, describe(status)));
  simdjson::dom::parser parser;
  simdjson::dom::element st;
  std::string_view bundle;
  if (parser.parse(status.body).get(st) || st["bundle"].get(bundle) || bundle.empty() ||
      bundle.find('/') != std::string_view::npos) {
    return fail(fmt::format("download {}: the agent named no bundle", name));
  }
  const std::string file = fmt::format("{}/{}", dir, bundle);
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> out(nullptr, &std::fclose);
  k8s::HttpRequest req;
  req.path = prefix + "/captures/" + name + "/download";
  req.timeout = std::chrono::minutes(30);
  req.on_body = [&](std::string_view bytes) {
    if (!out) {
      const std::string tmp = file + ".partial";
      out.reset(std::fopen(tmp.c_str(), "wb"));
      if (!out) return false;
    }
    return std::fwrite(bytes.data(), 1, bytes.size(), out.get()) == bytes.size();
  };
  const auto r = http.get(req);
  if (!r.ok()) {
    out.reset();
    ::unlink((file + ".partial").c_str());
    return fail(fmt::format("download {}: {}", name, describe(r)));
  }
  if (!out || std::fflush(out.get()) != 0) return fail(fmt::format("download {}: cannot write {}", name, file));
  out.reset();
  std::rename((file + ".partial").c_str(), file.c_str());
  std::printf("%s\n", file.c_str());
  return kExitOk;
}

// ---------------------------------------------------------------- agent

int agent_create(k8s::HttpStream& http, const capture::Spec& spec, bool wait, const std::string& dir) {
  const std::string body = "{\"name\":\"" + spec.name + "\",\"spec\":" + capture::spec_to_json(spec) + "}";
  auto r = call(http, "POST", "/captures", body);
  if (r.status != 201) return fail(fmt::format("create {}: {}", spec.name, describe(r)));
  std::printf("capture %s started\n", spec.name.c_str());
  if (!wait) return kExitOk;
  simdjson::dom::parser parser;
  for (;;) {
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    r = call(http, "GET", "/captures/" + spec.name);
    if (!r.ok()) return fail(fmt::format("status of {}: {}", spec.name, describe(r)));
    simdjson::dom::element st;
    if (parser.parse(r.body).get(st)) return fail("status: invalid JSON from the agent");
    std::string_view state;
    opt(st["state"], state);
    if (!finished_state(state)) continue;
    print_header();
    print_status(st);
    if (state == "Failed") return kExitRuntime;
    return download(http, spec.name, dir);
  }
}

int agent_list(k8s::HttpStream& http) {
  auto r = call(http, "GET", "/captures");
  if (!r.ok()) return fail(fmt::format("list: {}", describe(r)));
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  simdjson::dom::array items;
  if (parser.parse(r.body).get(doc) || doc["captures"].get(items)) return fail("list: invalid JSON from the agent");
  print_header();
  for (auto st : items) print_status(st);
  return kExitOk;
}

// -------------------------------------------------------------- cluster

std::string object_path(const std::string& ns, const std::string& name = {}) {
  return fmt::format("{}/namespaces/{}/captures{}{}", capture::kCaptureGroupPath, ns, name.empty() ? "" : "/", name);
}

// Prints each node's entry of every listed object in `ns` (or only `name`);
// true when every node that reported has finished.
bool cluster_print(const std::string& body, const std::string& ns, const std::string& name, size_t* reported) {
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  simdjson::dom::array items;
  if (parser.parse(body).get(doc) || doc["items"].get(items)) return false;
  bool all_done = true;
  size_t n = 0;
  print_header();
  for (auto item : items) {
    std::string_view ins, iname;
    opt(item["metadata"]["namespace"], ins);
    opt(item["metadata"]["name"], iname);
    if (ins != ns || (!name.empty() && iname != name)) continue;
    simdjson::dom::object nodes;
    if (item["status"]["nodes"].get(nodes)) {
      std::printf("%-24s %-20s %-10s\n", std::string(iname).c_str(), "-", "Pending");
      all_done = false;
      continue;
    }
    for (auto [node, st] : nodes) {
      ++n;
      std::string_view state;
      opt(st["state"], state);
      all_done = all_done && finished_state(state);
      print_status(st, std::string(node));
    }
  }
  if (reported) *reported = n;
  return all_done && n > 0;
}

// Each node's bundle through the API server's node proxy to its agent; the
// nodes are those in the object's status (or --node-names).
int cluster_download(k8s::HttpStream& http, const std::string& ns, const std::string& name, const std::string& nodes_flag,
                     uint16_t port, const std::string& dir) {
  std::vector<std::string> nodes;
  for (size_t start = 0; start < nodes_flag.size();) {
    size_t comma = nodes_flag.find(',', start);
    if (comma == std::string::npos) comma = nodes_flag.size();
    if (comma > start) nodes.push_back(nodes_flag.substr(start, comma - start));
    start = comma + 1;
  }
  if (nodes.empty()) {
    auto r = call(http, "GET", object_path(ns, name));
    if (!r.ok()) return fail(fmt::format("download: Capture {}/{}: {}", ns, name, describe(r)));
    simdjson::dom::parser parser;
    simdjson::dom::element doc;
    simdjson::dom::object reported;
    if (parser.parse(r.body).get(doc)) return fail("download: invalid JSON from the API server");
    if (doc["status"]["nodes"].get(reported)) return fail(fmt::format("download: no node reported Capture {}/{} yet", ns, name));
    for (auto [node, st] : reported) {
      std::string_view bundle;
      opt(st["bundle"], bundle);
      if (!bundle.empty()) nodes.emplace_back(node);
    }
    if (nodes.empty()) return fail(fmt::format("download: no node has a bundle of Capture {}/{}", ns, name));
  }
  int rc = kExitOk;
  for (const auto& node : nodes) {
    if (download(http, name, dir, fmt::format("/api/v1/nodes/{}:{}/proxy", k8s::url_encode(node), port)) != kExitOk) {
      rc = kExitRuntime;
    }
  }
  return rc;
}

int cluster_create(k8s::HttpStream& http, const capture::Spec& spec, const std::string& ns, bool wait) {
  if (!spec.s3.access_key_id.empty()) {
    return fail("S3 keys are only passed to a single agent (--agent); in a cluster they would be stored in the "
                "Capture object in clear text");
  }
  auto r = call(http, "POST", object_path(ns), capture::capture_object_json(spec, ns));
  if (!r.ok()) return fail(fmt::format("create Capture {}/{}: {}", ns, spec.name, describe(r)));
  std::printf("Capture %s/%s created\n", ns.c_str(), spec.name.c_str());
  if (!wait) return kExitOk;
  const auto deadline = std::chrono::steady_clock::now() + spec.duration + std::chrono::minutes(2);
  while (std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::seconds(2));
    r = call(http, "GET", std::string(capture::kCaptureGroupPath) + "/captures");
    if (!r.ok()) continue;
    size_t reported = 0;
    if (cluster_print(r.body, ns, spec.name, &reported)) return kExitOk;
  }
  return fail(fmt::format("Capture {}/{} did not finish on every node in time", ns, spec.name));
}

}  // namespace

void add_capture_command(CLI::App& app, Run& run) {
  auto* cap = app.add_subcommand("capture", "Packet captures of pods or nodes");
  cap->require_subcommand(1);
  auto target = std::make_shared<Target>();
  auto flags = std::make_shared<capture::CliFlags>();
  auto no_wait = std::make_shared<bool>(false);
  auto output = std::make_shared<std::string>(".");
  auto name = std::make_shared<std::string>();

  auto* create = cap->add_subcommand("create", "Start a capture");
  capture::add_create_flags(*create, *flags);
  add_target_flags(*create, *target);
  create->add_flag("--no-wait", *no_wait, "Return once the capture started");
  create->add_option("--output", *output, "Where --agent mode saves the bundle");
  create->callback([&run, target, flags, no_wait, output] {
    run = [target, flags, no_wait, output] {
      auto spec = capture::spec_from_flags(*flags);
      if (!spec) {
        std::fprintf(stderr, "retina capture create: %s\n", spec.error().message.c_str());
        return kExitUsage;
      }
      auto http = connect(*target);
      if (!http) return fail(http.error().message);
      if (!target->agent.empty()) return agent_create(**http, *spec, !*no_wait, *output);
      return cluster_create(**http, *spec, flags->namespace_, !*no_wait);
    };
  });

  auto* list = cap->add_subcommand("list", "List captures and their state on each node");
  add_target_flags(*list, *target);
  list->add_option("--namespace", target->namespace_, "Namespace of the Capture objects");
  list->callback([&run, target] {
    run = [target] {
      auto http = connect(*target);
      if (!http) return fail(http.error().message);
      if (!target->agent.empty()) return agent_list(**http);
      auto r = call(**http, "GET", std::string(capture::kCaptureGroupPath) + "/captures");
      if (!r.ok()) return fail(fmt::format("list Capture objects: {}", describe(r)));
      cluster_print(r.body, target->namespace_, {}, nullptr);
      return kExitOk;
    };
  });

  auto* del = cap->add_subcommand("delete", "Stop a capture (its bundle is still written) or forget a finished one");
  add_target_flags(*del, *target);
  del->add_option("--name", *name, "Name of the capture")->required();
  del->add_option("--namespace", target->namespace_, "Namespace of the Capture object");
  del->callback([&run, target, name] {
    run = [target, name] {
      auto http = connect(*target);
      if (!http) return fail(http.error().message);
      const std::string path = target->agent.empty() ? object_path(target->namespace_, *name) : "/captures/" + *name;
      auto r = call(**http, "DELETE", path);
      if (!r.ok()) return fail(fmt::format("delete {}: {}", *name, describe(r)));
      std::printf("capture %s deleted\n", name->c_str());
      return kExitOk;
    };
  });

  auto* dl = cap->add_subcommand("download", "Download a finished capture's bundles from the agents");
  add_target_flags(*dl, *target);
  auto node_names = std::make_shared<std::string>();
  auto agent_port = std::make_shared<uint16_t>(10093);
  dl->add_option("--name", *name, "Name of the capture")->required();
  dl->add_option("--namespace", target->namespace_, "Namespace of the Capture object");
  dl->add_option("--node-names", *node_names, "Comma-separated nodes to fetch from (default: every node that reported)");
  dl->add_option("--agent-port", *agent_port, "The agents' HTTP port, reached through the API server's node proxy");
  dl->add_option("--output", *output, "Directory to save the bundles in");
  dl->callback([&run, target, name, output, node_names, agent_port] {
    run = [target, name, output, node_names, agent_port] {
      auto http = connect(*target);
      if (!http) return fail(http.error().message);
      if (!target->agent.empty()) return download(**http, *name, *output);
      return cluster_download(**http, target->namespace_, *name, *node_names, *agent_port, *output);
    };
  });
}

}  // namespace retina::cli
