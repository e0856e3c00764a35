// The HTTP API on cpp-httplib. Every route lives in this file: the handlers
// are thin, the work is in the backend (registry, engine, pipeline).
#include "retina/api_server.hpp"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <exception>
#include <filesystem>
#include <fstream>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include <fmt/format.h>
#include <httplib.h>

#include "core/best_effort.hpp"
#include "core/log.hpp"
#include "engine/http_gate.hpp"
#include "engine/http_query.hpp"
#include "core/flow_json.hpp"
#include "retina/flow_json.hpp"
#include "retina/metrics/registry.hpp"

namespace retina {
namespace {

constexpr const char* kPrometheusContentType = "text/plain; version=0.0.4; charset=utf-8";
constexpr const char* kTextContentType = "text/plain; charset=utf-8";
constexpr const char* kJsonContentType = "application/json";
constexpr const char* kJsonLinesContentType = "application/x-ndjson";

void text(httplib::Response& res, int status, std::string body) {
  res.status = status;
  if (!body.empty() && body.back() != '\n') body.push_back('\n');
  res.set_content(body, kTextContentType);
}

// Bodies for the errors httplib answers by itself.
std::string status_text(int status) {
  switch (status) {
    case 400: return "400 bad request";
    case 404: return "404 not found";
    case 413: return "413 request body too large";
    case 414: return "414 request URI too long";
    case 416: return "416 range not satisfiable";
    case 500: return "500 internal error";
    default: return fmt::format("{} error", status);
  }
}

// The raw query of a request target ("/flows?a=b" -> "a=b").
std::string_view query_of(const httplib::Request& req) {
  std::string_view t = req.target;
  const size_t q = t.find('?');
  if (q == std::string_view::npos) return {};
  t.remove_prefix(q + 1);
  const size_t frag = t.find('#');
  return t.substr(0, frag);
}

// A connection the gate handed over: its request bytes first, then the
// socket, each wait bounded by the read or write timeout.
class GatedStream final : public httplib::Stream {
 public:
  GatedStream(int fd, std::string prefix, std::chrono::seconds read_timeout, std::chrono::seconds write_timeout)
      : fd_(fd), prefix_(std::move(prefix)), read_ms_(ms(read_timeout)), write_ms_(ms(write_timeout)) {}

  bool is_readable() const override { return pos_ < prefix_.size() || wait(POLLIN, read_ms_); }
  bool is_writable() const override { return wait(POLLOUT, write_ms_); }

  ssize_t read(char* ptr, size_t size) override {
    if (pos_ < prefix_.size()) {
      const size_t n = std::min(size, prefix_.size() - pos_);
      std::memcpy(ptr, prefix_.data() + pos_, n);
      pos_ += n;
      return static_cast<ssize_t>(n);
    }
    for (;;) {
      if (!wait(POLLIN, read_ms_)) return -1;
      const ssize_t n = ::recv(fd_, ptr, size, 0);
      if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
      return n;
    }
  }
  using httplib::Stream::write;
  ssize_t write(const char* ptr, size_t size) override {
    for (;;) {
      if (!wait(POLLOUT, write_ms_)) return -1;
      const ssize_t n = ::send(fd_, ptr, size, MSG_NOSIGNAL);
      if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
      return n;
    }
  }
  void get_remote_ip_and_port(std::string& ip, int& port) const override { address(::getpeername, ip, port); }
  void get_local_ip_and_port(std::string& ip, int& port) const override { address(::getsockname, ip, port); }
  int socket() const override { return fd_; }

 private:
  static int ms(std::chrono::seconds s) { return static_cast<int>(std::chrono::milliseconds(s).count()); }
  bool wait(short events, int timeout_ms) const {
    pollfd p{fd_, events, 0};
    for (;;) {
      const int r = ::poll(&p, 1, timeout_ms);
      if (r < 0 && errno == EINTR) continue;
      return r > 0 && (p.revents & (events | POLLHUP | POLLERR)) != 0;
    }
  }
  void address(int (*get)(int, sockaddr*, socklen_t*), std::string& ip, int& port) const {
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    if (get(fd_, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return;
    char buf[INET6_ADDRSTRLEN] = {};
    if (ss.ss_family == AF_INET) {
      const auto* a = reinterpret_cast<const sockaddr_in*>(&ss);
      ::inet_ntop(AF_INET, &a->sin_addr, buf, sizeof buf);
      port = ntohs(a->sin_port);
    } else if (ss.ss_family == AF_INET6) {
      const auto* a = reinterpret_cast<const sockaddr_in6*>(&ss);
      ::inet_ntop(AF_INET6, &a->sin6_addr, buf, sizeof buf);
      port = ntohs(a->sin6_port);
    }
    ip = buf;
  }

  int fd_;
  std::string prefix_;
  size_t pos_ = 0;
  int read_ms_;
  int write_ms_;
};

// httplib's router and response writer, fed one request at a time by the
// gate instead of httplib's own accept loop (which gives every connection
// a thread from the moment it is accepted).
class GatedServer final : public httplib::Server {
 public:
  // A duplicate of the socket bind_to_port() bound; the gate accepts on it.
  // svr_sock_ itself stays set: httplib's content providers (/flows
  // streams) stop once it is invalid, which close_listen_socket() does.
  int take_listen_socket() { return ::fcntl(svr_sock_, F_DUPFD_CLOEXEC, 0); }
  void close_listen_socket() {
    const int fd = svr_sock_.exchange(INVALID_SOCKET);
    if (fd != INVALID_SOCKET) ::close(fd);
  }
  void serve_one(httplib::Stream& strm) {
    bool closed = false;
    process_request(strm, /*close_connection=*/true, closed, nullptr);
  }
};

}  // namespace

// httplib's task queue, elastic: `base` threads always, and one more for
// each connection that would otherwise wait, up to `max`. A /flows
// follower holds its thread for as long as it stays, so with `max` =
// `base` + the follower limit, followers never take the threads that
// serve /metrics. Threads that were added stay for reuse.
class ElasticPool final : public httplib::TaskQueue {
 public:
  ElasticPool(size_t base, size_t max) : max_(max) {
    std::lock_guard lock(mu_);
    for (size_t i = 0; i < base; ++i) threads_.emplace_back([this] { work(); });
  }
  ~ElasticPool() override { shutdown(); }

  void enqueue(std::function<void()> fn) override {
    std::lock_guard lock(mu_);
    jobs_.push_back(std::move(fn));
    if (idle_ < jobs_.size() && threads_.size() < max_) threads_.emplace_back([this] { work(); });
    cv_.notify_one();
  }

  void shutdown() override {
    {
      std::lock_guard lock(mu_);
      if (shutdown_) return;
      shutdown_ = true;
    }
    cv_.notify_all();
    for (auto& t : threads_) t.join();  // no enqueue() after shutdown(): the gate stops first
  }

 private:
  void work() {
    for (;;) {
      std::function<void()> fn;
      {
        std::unique_lock lock(mu_);
        ++idle_;
        cv_.wait(lock, [&] { return shutdown_ || !jobs_.empty(); });
        --idle_;
        if (jobs_.empty()) return;  // shutting down with nothing left
        fn = std::move(jobs_.front());
        jobs_.pop_front();
      }
      fn();
    }
  }

  const size_t max_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> jobs_;
  std::vector<std::thread> threads_;
  size_t idle_ = 0;
  bool shutdown_ = false;
};

ApiServerOptions ApiServerOptions::from(const Config& config) {
  ApiServerOptions o;
  o.host = config.api_server_host;
  o.port = config.api_server_port;
  o.node_name = config.node_name;
  return o;
}

struct ApiServer::Impl {
  ApiServerBackend backend;
  ApiServerOptions options;
  GatedServer server;
  std::unique_ptr<ElasticPool> pool;
  std::unique_ptr<http::Gate> gate;
  // `gate` once set: the gate thread hands over connections it accepted
  // before Gate::start returned, whose serving must not see it unset.
  std::atomic<http::Gate*> gate_ready{nullptr};
  http::Gate& started_gate() const {
    http::Gate* g;
    while (!(g = gate_ready.load(std::memory_order_acquire))) std::this_thread::yield();
    return *g;
  }
  uint16_t port = 0;
  std::atomic<bool> stopping{false};
  std::atomic<size_t> flow_streams{0};
  std::once_flag stopped;

  void routes();
  void serve(http::ReadyConnection conn);
  void gate_metrics(std::string& out) const;
  void handle_get(const httplib::Request& req, httplib::Response& res);
  void handle_other(const httplib::Request& req, httplib::Response& res);
  void metrics(httplib::Response& res);
  void healthz(httplib::Response& res);
  void readyz(httplib::Response& res);
  void flows(const httplib::Request& req, httplib::Response& res);
  bool headers_too_large(const httplib::Request& req, httplib::Response& res) const;
  bool backend_route(const httplib::Request& req, httplib::Response& res);
};

namespace {

bool known_path(std::string_view path) {
  return path == "/metrics" || path == "/healthz" || path == "/readyz" || path == "/flows";
}

}  // namespace

bool ApiServer::Impl::headers_too_large(const httplib::Request& req, httplib::Response& res) const {
  size_t bytes = req.target.size();
  for (const auto& [k, v] : req.headers) bytes += k.size() + v.size() + 4;
  if (bytes <= options.max_header_bytes) return false;
  text(res, 431, fmt::format("request headers exceed {} bytes", options.max_header_bytes));
  return true;
}

// Routes the backend serves (the capture API); files are streamed.
bool ApiServer::Impl::backend_route(const httplib::Request& req, httplib::Response& res) {
  if (!backend.routes) return false;
  RouteReply reply;
  if (!backend.routes(req.method, req.path, req.body, reply)) return false;
  res.status = reply.status;
  if (reply.file_path.empty()) {
    res.set_content(reply.body, reply.content_type);
    return true;
  }
  auto file = std::make_shared<std::ifstream>(reply.file_path, std::ios::binary);
  std::error_code ec;
  const auto size = std::filesystem::file_size(reply.file_path, ec);
  if (!*file || ec) {
    text(res, 404, fmt::format("cannot open {}", reply.file_name));
    return true;
  }
  if (!reply.file_name.empty()) {
    res.set_header("Content-Disposition", fmt::format("attachment; filename=\"{}\"", reply.file_name));
  }
  res.set_content_provider(static_cast<size_t>(size), reply.content_type,
                           [file](size_t offset, size_t length, httplib::DataSink& sink) {
                             char buf[64 * 1024];
                             file->seekg(static_cast<std::streamoff>(offset));
                             file->read(buf, static_cast<std::streamsize>(std::min(length, sizeof buf)));
                             const auto n = file->gcount();
                             return n > 0 && sink.write(buf, static_cast<size_t>(n));
                           });
  return true;
}

void ApiServer::Impl::handle_get(const httplib::Request& req, httplib::Response& res) {
  if (headers_too_large(req, res)) return;
  if (backend_route(req, res)) return;
  const std::string_view path = req.path;
  if (path == "/metrics") return metrics(res);
  if (path == "/healthz") return healthz(res);
  if (path == "/readyz") return readyz(res);
  if (path == "/flows") return flows(req, res);
  text(res, 404, "not found; try /metrics, /healthz, /readyz or /flows");
}

void ApiServer::Impl::handle_other(const httplib::Request& req, httplib::Response& res) {
  if (headers_too_large(req, res)) return;
  if (backend_route(req, res)) return;
  if (!known_path(req.path)) {
    text(res, 404, "not found; try /metrics, /healthz, /readyz or /flows");
    return;
  }
  res.set_header("Allow", "GET, HEAD");
  text(res, 405, fmt::format("method {} not allowed; use GET", req.method));
}

void ApiServer::Impl::serve(http::ReadyConnection conn) {
  try {
    GatedStream strm(conn.fd, std::move(conn.prefix), options.read_timeout, options.write_timeout);
    server.serve_one(strm);
  } catch (const std::exception& e) {
    log::error("api", "request failed", {{"error", std::string(e.what())}});
  } catch (...) {
    log::error("api", "request failed", {{"error", "unknown exception"}});
  }
  ::shutdown(conn.fd, SHUT_RDWR);
  ::close(conn.fd);
  started_gate().release();
}

void ApiServer::Impl::gate_metrics(std::string& out) const {
  out += "# HELP retina_api_rejected_connections_total HTTP API connections closed unserved, by the bound they crossed\n";
  out += "# TYPE retina_api_rejected_connections_total counter\n";
  for (size_t i = 0; i < static_cast<size_t>(http::GateReject::kCount); ++i) {
    const auto r = static_cast<http::GateReject>(i);
    out += fmt::format("retina_api_rejected_connections_total{{reason=\"{}\"}} {}\n", http::to_string(r), started_gate().rejected(r));
  }
  out += "# HELP retina_api_open_connections HTTP API connections open, waiting for their request or in service\n";
  out += "# TYPE retina_api_open_connections gauge\n";
  out += fmt::format("retina_api_open_connections {}\n", started_gate().open_connections());
}

void ApiServer::Impl::metrics(httplib::Response& res) {
  std::string body;
  body.reserve(64 * 1024);
  backend.metrics(body);
  gate_metrics(body);
  res.status = 200;
  res.set_content(body, kPrometheusContentType);
}

void ApiServer::Impl::healthz(httplib::Response& res) {
  const auto plugins = backend.plugins();
  bool failed = false;
  for (const auto& p : plugins) failed = failed || p.state == PluginState::kFailed;
  std::string details;
  if (backend.health_details && !backend.health_details(details)) failed = true;
  std::string body = "{\"status\":";
  json::append_string(body, failed ? "failed" : "ok");
  body += ",\"plugins\":[";
  bool first = true;
  for (const auto& p : plugins) {
    if (!first) body.push_back(',');
    first = false;
    body += "{\"name\":";
    json::append_string(body, p.name);
    body += ",\"state\":";
    json::append_string(body, to_string(p.state));
    body += ",\"reason\":";
    json::append_string(body, p.reason);
    body.push_back('}');
  }
  body.push_back(']');
  body += details;
  body += "}\n";
  res.status = failed ? 503 : 200;
  res.set_content(body, kJsonContentType);
}

void ApiServer::Impl::readyz(httplib::Response& res) {
  if (backend.ready()) {
    text(res, 200, "ready");
  } else {
    text(res, 503, "not ready");
  }
}

void ApiServer::Impl::flows(const httplib::Request& req, httplib::Response& res) {
  auto query = http::parse_flow_query(query_of(req));
  if (!query) {
    text(res, 400, fmt::format("bad query: {}", query.error().message));
    return;
  }
  if (!backend.subscribe) {
    text(res, 503, "flows are not available from this server");
    return;
  }
  const bool follow = query->follow;
  // A follower holds a thread of its own for as long as it stays (the pool
  // grows for it); the limit bounds those threads.
  if (follow) {
    size_t n = flow_streams.load();
    do {
      if (n >= options.max_flow_streams) {
        text(res, 503, fmt::format("too many flow streams (at most {} at a time)", options.max_flow_streams));
        return;
      }
    } while (!flow_streams.compare_exchange_weak(n, n + 1));
  }
  // One stable name for every API subscriber: the pipeline labels its drop
  // counter with it, and a per-request name would add a series per request.
  std::shared_ptr<Subscription> sub = backend.subscribe("api_flows", options.flow_queue_capacity, std::move(query->filter));
  log::debug("api", "flow subscriber", {{"remote", req.remote_addr}, {"follow", follow}, {"max", query->max}});
  const size_t max = query->max;  // 0: unbounded (follow only)
  const auto deadline = std::chrono::steady_clock::now() + options.flow_collect_window;

  auto sent = std::make_shared<size_t>(0);
  res.status = 200;
  res.set_chunked_content_provider(
      kJsonLinesContentType,
      [this, sub, sent, max, follow, deadline](size_t, httplib::DataSink& sink) {
        if (follow) make_this_thread_best_effort();
        std::vector<OwnedFlow> batch;
        std::string out;
        const FlowJsonOptions json{options.node_name};
        while (!stopping.load(std::memory_order_relaxed)) {
          if (!follow && std::chrono::steady_clock::now() >= deadline) break;
          if (max != 0 && *sent >= max) break;
          if (sink.is_writable && !sink.is_writable()) return false;
          const size_t want = max == 0 ? 256 : std::min<size_t>(256, max - *sent);
          batch.clear();
          sub->pop_batch(batch, want, std::chrono::milliseconds(100));
          if (batch.empty()) continue;
          out.clear();
          for (const auto& f : batch) {
            append_flow_json(out, f.flow(), json);
            out.push_back('\n');
          }
          *sent += batch.size();
          if (!sink.write(out.data(), out.size())) return false;
        }
        sink.done();
        return true;
      },
      [this, sub, follow](bool) {
        sub->close();
        if (follow) flow_streams.fetch_sub(1);
      });
}

void ApiServer::Impl::routes() {
  server.Get(".*", [this](const httplib::Request& req, httplib::Response& res) { handle_get(req, res); });
  const auto other = [this](const httplib::Request& req, httplib::Response& res) { handle_other(req, res); };
  server.Post(".*", other);
  server.Put(".*", other);
  server.Patch(".*", other);
  server.Delete(".*", other);
  server.Options(".*", other);
  server.set_exception_handler([](const httplib::Request& req, httplib::Response& res, std::exception_ptr ep) {
    std::string what = "unknown exception";
    try {
      if (ep) std::rethrow_exception(ep);
    } catch (const std::exception& e) {
      what = e.what();
    } catch (...) {
    }
    log::error("api", "request failed", {{"path", req.path}, {"error", what}});
    text(res, 500, "internal error");
  });
  // Errors httplib answers by itself (413, 414, 400) get a text body too.
  server.set_error_handler([](const httplib::Request&, httplib::Response& res) {
    if (res.body.empty() && !res.content_provider_) text(res, res.status, status_text(res.status));
  });
  server.set_logger([](const httplib::Request& req, const httplib::Response& res) {
    log::debug("api", "request", {{"method", req.method}, {"path", req.path}, {"status", res.status},
                                  {"remote", req.remote_addr}});
  });
}

ApiServer::ApiServer() : impl_(std::make_unique<Impl>()) {}

ApiServer::~ApiServer() { stop(); }

Result<std::unique_ptr<ApiServer>> ApiServer::start(ApiServerBackend backend, ApiServerOptions options) {
  if (!backend.metrics || !backend.plugins || !backend.ready) {
    return unexpected(Error::invalid("api server: backend needs metrics, plugins and ready functions"));
  }
  if (options.threads < 2) return unexpected(Error::invalid("api server: needs at least 2 threads"));
  std::unique_ptr<ApiServer> self(new ApiServer());
  Impl& s = *self->impl_;
  s.backend = std::move(backend);
  s.options = std::move(options);
  s.server.set_payload_max_length(s.options.max_body_bytes);
  // httplib's default also sets SO_REUSEPORT, which would let a second agent
  // share the port silently; a port in use must be an error.
  s.server.set_socket_options([](int sock) {
    const int yes = 1;
    ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
  });
  s.routes();

  errno = 0;
  int port = -1;
  if (s.options.port == 0) {
    port = s.server.bind_to_any_port(s.options.host);
  } else {
    port = s.server.bind_to_port(s.options.host, s.options.port) ? s.options.port : -1;
  }
  if (port <= 0) {
    const int err = errno;
    const std::string call = fmt::format("bind({}:{})", s.options.host, s.options.port);
    if (err != 0) return unexpected(Error::system(call, err));
    return unexpected(Error::invalid(call + ": cannot resolve or bind the address"));
  }
  s.port = static_cast<uint16_t>(port);
  // followers hold a thread each; the pool grows for them beyond `threads`
  s.pool = std::make_unique<ElasticPool>(s.options.threads, s.options.threads + s.options.max_flow_streams);
  http::GateLimits limits;
  limits.max_connections = s.options.max_connections;
  limits.max_header_bytes = s.options.max_header_bytes;
  limits.max_body_bytes = s.options.max_body_bytes;
  limits.request_timeout = s.options.request_timeout;
  auto gate = http::Gate::start(s.server.take_listen_socket(), limits, [&s](http::ReadyConnection c) {
    s.pool->enqueue([&s, c = std::move(c)]() mutable { s.serve(std::move(c)); });
  });
  if (!gate) return unexpected(gate.error());
  s.gate = std::move(*gate);
  s.gate_ready.store(s.gate.get(), std::memory_order_release);
  log::info("api", "listening", {{"host", s.options.host}, {"port", s.port}});
  return self;
}

uint16_t ApiServer::port() const { return impl_->port; }

void ApiServer::stop() noexcept {
  if (!impl_) return;
  Impl& s = *impl_;
  std::call_once(s.stopped, [&s] {
    s.stopping.store(true);
    if (s.gate) s.gate->stop();
    s.server.close_listen_socket();
    if (s.pool) s.pool->shutdown();  // open flow streams see `stopping` and end
  });
}

}  // namespace retina
