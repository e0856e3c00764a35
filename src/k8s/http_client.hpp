// libcurl transport for the watcher: one easy handle per stream (driven by a
// private multi handle so another thread can wake it), HTTP/1.1, TLS and
// credentials from a ClientConfig, streaming bodies to a callback.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "retina/error.hpp"
#include "retina/k8s/watcher.hpp"

namespace retina::k8s {

// The bearer token, re-read from its file (bound service-account tokens
// rotate). Shared by every stream.
class Credentials {
 public:
  explicit Credentials(const ClientConfig& c) : token_(c.token), token_file_(c.token_file) {}
  // Re-reads the token file, if there is one. On failure the old token stays.
  Status reload();
  std::string token() const;
  bool from_file() const { return !token_file_.empty(); }

 private:
  mutable std::mutex mu_;
  std::string token_;
  const std::string token_file_;
};

struct HttpResponse {
  long status = 0;          // HTTP status; 0 when no response arrived
  std::string error;        // transport failure (connect, TLS, reset, timeout); empty when complete
  bool timed_out = false;   // the transfer hit its timeout
  bool stopped = false;     // aborted by interrupt()
  bool sink_aborted = false;  // the body sink asked to stop
  std::string body;         // the body, unless a sink consumed it (non-2xx bodies are capped at 64 KiB)
  bool ok() const { return error.empty() && !stopped && status >= 200 && status < 300; }
};

struct HttpRequest {
  std::string path;  // "/api/v1/pods?watch=1&..."
  // Writes (Capture objects and their status): another method with a body.
  std::string method = "GET";
  std::string body;
  std::string content_type = "application/json";
  std::chrono::milliseconds timeout{0};  // whole transfer; 0: none
  bool gzip = false;
  // Called once the status line and headers arrived.
  std::function<void(long status)> on_headers;
  // Receives 2xx body bytes as they arrive; false aborts the transfer. Without
  // it the body is collected in HttpResponse::body, up to max_body bytes
  // (0: no limit); a longer one ends the transfer with an error.
  std::function<bool(std::string_view)> on_body;
  size_t max_body = 0;
};

class HttpStream {
 public:
  static Result<std::unique_ptr<HttpStream>> create(const ClientConfig& config,
                                                    std::shared_ptr<Credentials> credentials,
                                                    std::chrono::milliseconds connect_timeout);
  ~HttpStream();
  HttpStream(const HttpStream&) = delete;
  HttpStream& operator=(const HttpStream&) = delete;

  // Blocks until the transfer ends or interrupt() is called. Never throws;
  // an exception inside a callback aborts the transfer and is reported in
  // HttpResponse::error.
  HttpResponse get(const HttpRequest& req);

  // Any thread: makes the current and every later get() return at once
  // (stopped=true).
  void interrupt();

 private:
  HttpStream() = default;
  struct Handles;
  std::unique_ptr<Handles> h_;
  std::shared_ptr<Credentials> credentials_;
  std::string server_;
  std::atomic<bool> interrupted_{false};
};

// curl_global_init, once per process.
void ensure_curl_initialized();

}  // namespace retina::k8s
