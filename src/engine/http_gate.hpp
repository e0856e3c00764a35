// The HTTP API's front door: one thread accepts connections and holds each
// in epoll, costing a descriptor and its bytes but no thread, until its
// whole request (headers, and the body its Content-Length announces) has
// arrived. Only then is it handed to a worker. Idle and slow clients
// (slowloris) therefore never occupy the threads that serve /metrics; each
// is bounded in bytes, in time and in number, and refused with a status
// line that says which bound it crossed.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "retina/error.hpp"

namespace retina::http {

struct GateLimits {
  size_t max_connections = 1024;        // open at once, waiting or in service
  size_t max_header_bytes = 16 * 1024;  // request line and headers
  size_t max_body_bytes = 4096;         // announced by Content-Length
  std::chrono::milliseconds request_timeout{10000};  // whole request must arrive within it
};

// Why the gate closed a connection without serving it; the labels of
// retina_api_rejected_connections_total.
enum class GateReject : uint8_t { kTooManyConnections, kTimeout, kHeadersTooLarge, kBodyTooLarge, kLengthRequired, kCount };
std::string_view to_string(GateReject r);

// A request whose bytes have all arrived. `prefix` holds what the gate
// read; the socket holds nothing more of this request.
struct ReadyConnection {
  int fd = -1;
  std::string prefix;
};

class Gate {
 public:
  // Takes ownership of the listening socket `listen_fd`. `serve` runs on
  // the gate thread and must not block (it queues the work); it owns the
  // descriptor and calls release() once it closed it.
  static Result<std::unique_ptr<Gate>> start(int listen_fd, GateLimits limits,
                                             std::function<void(ReadyConnection)> serve);
  ~Gate();  // stops
  Gate(const Gate&) = delete;
  Gate& operator=(const Gate&) = delete;

  void release() noexcept;  // a served connection closed
  // Stops accepting and closes every connection still waiting. Idempotent.
  void stop() noexcept;

  uint64_t rejected(GateReject r) const noexcept;
  size_t open_connections() const noexcept;

 private:
  Gate();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Where a request's header block ends (the index just past its blank
// line), or npos while it is incomplete. Accepts CRLF and bare LF lines.
size_t header_end(std::string_view buf);

// What the header block says about the body: its Content-Length (0 when
// absent), or kLengthRequired for a chunked or unparsable length.
struct BodyFraming {
  size_t length = 0;
  bool length_required = false;
};
BodyFraming body_framing(std::string_view headers);

}  // namespace retina::http
