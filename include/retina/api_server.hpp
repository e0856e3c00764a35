// The agent's HTTP API (Retina's port 10093):
//
//   GET /metrics   Prometheus text exposition (format 0.0.4)
//   GET /healthz   JSON: overall status, each plugin's state and reason, and
//                  the backend's other components (the engine's Kubernetes
//                  watcher and advanced metrics); 200 when nothing failed,
//                  503 otherwise
//   GET /readyz    200 once the engine runs at least one plugin, 503 before
//   GET /flows     Hubble JSON lines; ?follow=1 streams. Filters: namespace,
//                  pod, ip, port, verdict, origin; max=N bounds the count.
//                  Any number of followers up to max_flow_streams, each
//                  with its own queue (a slow one drops its own flows)
//   /captures...   the packet capture API, when the backend serves routes
//
// Unknown paths answer 404, other methods on known paths 405, bad query
// parameters 400 with the reason. A connection costs no thread until its
// whole request has arrived (within request_timeout, max_header_bytes and
// max_body_bytes; else 408, 431/414, 413 or 411), at most max_connections
// are open (more answer 503), and each serves one request. Requests are
// served by a pool of `threads` threads that grows by one thread per
// concurrent follower, so neither idle clients nor followers hold up
// /metrics. Refusals count in retina_api_rejected_connections_total.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "retina/config.hpp"
#include "retina/error.hpp"
#include "retina/pipeline.hpp"
#include "retina/plugin.hpp"

namespace retina {

class Engine;

struct ApiServerOptions {
  std::string host = "0.0.0.0";
  uint16_t port = 10093;  // 0 binds an ephemeral port; ApiServer::port() tells which
  size_t threads = 2;
  size_t max_body_bytes = 4096;           // larger bodies answer 413
  size_t max_header_bytes = 16 * 1024;    // all header lines together; larger answer 431
  size_t max_connections = 1024;          // open at once; more are answered 503 and closed
  std::chrono::milliseconds request_timeout{10000};  // the whole request must arrive within it (408)
  std::chrono::seconds read_timeout{5};
  std::chrono::seconds write_timeout{5};
  // Concurrent /flows?follow=1 streams; each holds a thread of its own,
  // added to the pool beyond `threads`.
  size_t max_flow_streams = 256;
  // How long GET /flows without follow collects flows before answering.
  std::chrono::milliseconds flow_collect_window{1000};
  size_t flow_queue_capacity = 4096;      // per /flows subscriber
  std::string node_name;                  // node_name of each flow line

  static ApiServerOptions from(const Config& config);
};

// The answer of a backend route: a body, or a file streamed from disk.
struct RouteReply {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::string file_path;  // when set, the response is this file
  std::string file_name;  // Content-Disposition: attachment; filename=...
};

// What the server serves. engine_backend() wires an Engine; tests and
// embedders can supply their own functions.
struct ApiServerBackend {
  std::function<void(std::string& out)> metrics;              // appends Prometheus text
  std::function<std::vector<PluginStatus>()> plugins;
  std::function<bool()> ready;
  std::function<std::shared_ptr<Subscription>(std::string name, size_t capacity, FlowFilter filter)> subscribe;
  // Optional: appends more members to the /healthz object, each as
  // `,"name":value`; returns false when one of them failed (503).
  std::function<bool(std::string& json)> health_details;
  // Optional: more routes (the capture API). Returns false when it does not
  // serve `path`; any method reaches it.
  std::function<bool(std::string_view method, std::string_view path, std::string_view body, RouteReply& reply)> routes;
};

ApiServerBackend engine_backend(Engine& engine);

// A Go-style listen address, as Retina's --health-probe-bind-address and
// --metrics-bind-address take them: "host:port", ":port" (every address,
// 0.0.0.0), "[v6addr]:port". Port 0 picks a free one.
struct BindAddress {
  std::string host;
  uint16_t port = 0;
};
Result<BindAddress> parse_bind_address(std::string_view text);

class ApiServer {
 public:
  // Binds host:port and serves from background threads until stop().
  static Result<std::unique_ptr<ApiServer>> start(ApiServerBackend backend, ApiServerOptions options);
  ~ApiServer();  // stops
  ApiServer(const ApiServer&) = delete;
  ApiServer& operator=(const ApiServer&) = delete;

  // The bound port (the ephemeral one when options.port was 0).
  uint16_t port() const;
  // Stops accepting, ends open flow streams and joins the threads. Idempotent.
  void stop() noexcept;

 private:
  ApiServer();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace retina
