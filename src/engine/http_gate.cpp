#include "engine/http_gate.hpp"

#include <errno.h>
#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>
#include <cstring>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "core/fd.hpp"
#include "core/log.hpp"

namespace retina::http {
namespace {

using Clock = std::chrono::steady_clock;

// How long a refused connection may still send (the rest of a body we did
// not want) before it is closed: reading it lets the client see our status
// line instead of a reset.
constexpr std::chrono::milliseconds kDrainTime{1000};
// Deadlines are checked this often; they are coarse on purpose.
constexpr std::chrono::milliseconds kTick{50};

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() &&
         std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) { return std::tolower(x) == std::tolower(y); });
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
  return s;
}

struct Refusal {
  int status;
  const char* reason;
  std::string body;
};

}  // namespace

std::string_view to_string(GateReject r) {
  switch (r) {
    case GateReject::kTooManyConnections: return "too_many_connections";
    case GateReject::kTimeout: return "timeout";
    case GateReject::kHeadersTooLarge: return "headers_too_large";
    case GateReject::kBodyTooLarge: return "body_too_large";
    case GateReject::kLengthRequired: return "length_required";
    case GateReject::kCount: break;
  }
  return "unknown";
}

size_t header_end(std::string_view buf) {
  for (size_t i = buf.find('\n'); i != std::string_view::npos; i = buf.find('\n', i + 1)) {
    if (i + 1 < buf.size() && buf[i + 1] == '\n') return i + 2;
    if (i + 2 < buf.size() && buf[i + 1] == '\r' && buf[i + 2] == '\n') return i + 3;
  }
  return std::string_view::npos;
}

BodyFraming body_framing(std::string_view headers) {
  BodyFraming f;
  size_t pos = headers.find('\n');  // skip the request line
  while (pos != std::string_view::npos && pos + 1 < headers.size()) {
    const size_t next = headers.find('\n', pos + 1);
    std::string_view line = headers.substr(pos + 1, next == std::string_view::npos ? std::string_view::npos : next - pos - 1);
    pos = next;
    const size_t colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    const std::string_view name = trim(line.substr(0, colon));
    const std::string_view value = trim(line.substr(colon + 1));
    if (iequals(name, "transfer-encoding")) {
      f.length_required = true;
    } else if (iequals(name, "content-length")) {
      size_t n = 0;
      const auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), n);
      if (ec != std::errc() || end != value.data() + value.size() || value.empty()) {
        f.length_required = true;
      } else {
        f.length = n;
      }
    }
  }
  return f;
}

struct Gate::Impl {
  struct Conn {
    std::string buf;
    Clock::time_point deadline;
    bool draining = false;
  };

  UniqueFd listen_fd;
  UniqueFd epoll_fd;
  UniqueFd wake_fd;
  GateLimits limits;
  std::function<void(ReadyConnection)> serve;
  std::unordered_map<int, Conn> conns;  // gate thread only
  std::atomic<size_t> open{0};          // waiting + in service
  std::array<std::atomic<uint64_t>, static_cast<size_t>(GateReject::kCount)> rejects{};
  std::atomic<bool> stopping{false};
  bool accept_paused = false;  // out of descriptors; retried each tick
  std::thread thread;
  std::once_flag stopped;

  void run();
  void accept_all();
  void on_readable(int fd);
  void expire(Clock::time_point now);
  void refuse(int fd, Conn& c, GateReject why, const Refusal& r);
  void close_conn(int fd);
  void count(GateReject r) { rejects[static_cast<size_t>(r)].fetch_add(1, std::memory_order_relaxed); }
};

namespace {

void send_status(int fd, const Refusal& r) {
  const std::string body = r.body + "\n";
  const std::string msg = fmt::format(
      "HTTP/1.1 {} {}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
      r.status, r.reason, body.size(), body);
  // Best effort: a fresh socket's send buffer takes it whole.
  (void)::send(fd, msg.data(), msg.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
}

}  // namespace

void Gate::Impl::close_conn(int fd) {
  ::epoll_ctl(epoll_fd.get(), EPOLL_CTL_DEL, fd, nullptr);
  ::close(fd);
  conns.erase(fd);
  open.fetch_sub(1);
}

void Gate::Impl::refuse(int fd, Conn& c, GateReject why, const Refusal& r) {
  count(why);
  log::debug("api", "connection refused", {{"reason", to_string(why)}, {"status", r.status}});
  send_status(fd, r);
  ::shutdown(fd, SHUT_WR);
  c.draining = true;
  c.buf.clear();
  c.buf.shrink_to_fit();
  c.deadline = Clock::now() + kDrainTime;
}

void Gate::Impl::accept_all() {
  for (;;) {
    const int fd = ::accept4(listen_fd.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
        // Waiting clients stay in the backlog until a descriptor frees up.
        log::warn("api", "cannot accept a connection", {{"error", std::string(std::strerror(errno))}});
        ::epoll_ctl(epoll_fd.get(), EPOLL_CTL_DEL, listen_fd.get(), nullptr);
        accept_paused = true;
      }
      return;
    }
    if (open.load() >= limits.max_connections) {
      count(GateReject::kTooManyConnections);
      send_status(fd, {503, "Service Unavailable",
                       fmt::format("too many connections (at most {} at a time)", limits.max_connections)});
      ::close(fd);
      continue;
    }
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLRDHUP;
    ev.data.fd = fd;
    if (::epoll_ctl(epoll_fd.get(), EPOLL_CTL_ADD, fd, &ev) != 0) {
      ::close(fd);
      continue;
    }
    open.fetch_add(1);
    conns[fd] = Conn{{}, Clock::now() + limits.request_timeout, false};
  }
}

void Gate::Impl::on_readable(int fd) {
  auto it = conns.find(fd);
  if (it == conns.end()) return;
  Conn& c = it->second;
  const size_t cap = limits.max_header_bytes + limits.max_body_bytes + 1;
  char chunk[16 * 1024];
  for (;;) {
    const ssize_t n = ::recv(fd, chunk, sizeof chunk, 0);
    if (n == 0) return close_conn(fd);  // the client gave up (or finished after a refusal)
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      return close_conn(fd);
    }
    if (c.draining) continue;
    c.buf.append(chunk, static_cast<size_t>(n));
    if (c.buf.size() >= cap) break;
  }
  if (c.draining) return;

  const size_t end = header_end(c.buf);
  if (end == std::string::npos) {
    if (c.buf.size() <= limits.max_header_bytes) return;  // more to come
    if (c.buf.find('\n') == std::string::npos) {
      return refuse(fd, c, GateReject::kHeadersTooLarge,
                    {414, "URI Too Long", fmt::format("request line exceeds {} bytes", limits.max_header_bytes)});
    }
    return refuse(fd, c, GateReject::kHeadersTooLarge,
                  {431, "Request Header Fields Too Large",
                   fmt::format("request headers exceed {} bytes", limits.max_header_bytes)});
  }
  if (end > limits.max_header_bytes) {
    return refuse(fd, c, GateReject::kHeadersTooLarge,
                  {431, "Request Header Fields Too Large",
                   fmt::format("request headers exceed {} bytes", limits.max_header_bytes)});
  }
  const BodyFraming body = body_framing(std::string_view(c.buf).substr(0, end));
  if (body.length_required) {
    return refuse(fd, c, GateReject::kLengthRequired,
                  {411, "Length Required", "a request body needs a valid Content-Length (chunked bodies are not accepted)"});
  }
  if (body.length > limits.max_body_bytes) {
    return refuse(fd, c, GateReject::kBodyTooLarge,
                  {413, "Payload Too Large", fmt::format("request body exceeds {} bytes", limits.max_body_bytes)});
  }
  if (c.buf.size() < end + body.length) return;  // the body is still arriving

  ::epoll_ctl(epoll_fd.get(), EPOLL_CTL_DEL, fd, nullptr);
  ReadyConnection ready{fd, std::move(c.buf)};
  conns.erase(it);
  serve(std::move(ready));  // `open` stays counted until release()
}

void Gate::Impl::expire(Clock::time_point now) {
  std::vector<int> done;
  for (auto& [fd, c] : conns) {
    if (now < c.deadline) continue;
    if (c.draining) {
      done.push_back(fd);
    } else {
      refuse(fd, c, GateReject::kTimeout,
             {408, "Request Timeout",
              fmt::format("the request did not arrive within {} ms", limits.request_timeout.count())});
    }
  }
  for (int fd : done) close_conn(fd);
}

void Gate::Impl::run() {
  std::array<epoll_event, 64> events;
  auto last_tick = Clock::now();
  while (!stopping.load()) {
    const int n = ::epoll_wait(epoll_fd.get(), events.data(), static_cast<int>(events.size()),
                               static_cast<int>(kTick.count()));
    if (n < 0 && errno != EINTR) {
      log::error("api", "epoll_wait failed", {{"error", std::string(std::strerror(errno))}});
      return;
    }
    for (int i = 0; i < n; ++i) {
      const int fd = events[i].data.fd;
      if (fd == wake_fd.get()) continue;
      if (fd == listen_fd.get()) {
        accept_all();
      } else {
        on_readable(fd);
      }
    }
    const auto now = Clock::now();
    if (now - last_tick >= kTick) {
      last_tick = now;
      expire(now);
      if (accept_paused) {
        epoll_event ev{};
        ev.events = EPOLLIN;
        ev.data.fd = listen_fd.get();
        accept_paused = ::epoll_ctl(epoll_fd.get(), EPOLL_CTL_ADD, listen_fd.get(), &ev) != 0;
      }
    }
  }
  for (auto& [fd, c] : conns) ::close(fd);
  open.fetch_sub(conns.size());
  conns.clear();
}

Gate::Gate() : impl_(std::make_unique<Impl>()) {}

Gate::~Gate() { stop(); }

Result<std::unique_ptr<Gate>> Gate::start(int listen_fd, GateLimits limits, std::function<void(ReadyConnection)> serve) {
  std::unique_ptr<Gate> self(new Gate());
  Impl& g = *self->impl_;
  g.listen_fd.reset(listen_fd);
  g.limits = limits;
  g.serve = std::move(serve);
  if (limits.max_connections == 0) return unexpected(Error::invalid("api server: max_connections must be at least 1"));
  // The backlog holds clients the gate has not accepted yet; keep it deep
  // enough that a burst of connections is not turned away by the kernel.
  if (::listen(listen_fd, SOMAXCONN) != 0) return unexpected(Error::system("listen", errno));
  const int flags = ::fcntl(listen_fd, F_GETFL);
  if (flags < 0 || ::fcntl(listen_fd, F_SETFL, flags | O_NONBLOCK) != 0) {
    return unexpected(Error::system("fcntl(O_NONBLOCK)", errno));
  }
  g.epoll_fd.reset(::epoll_create1(EPOLL_CLOEXEC));
  if (!g.epoll_fd) return unexpected(Error::system("epoll_create1", errno));
  g.wake_fd.reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!g.wake_fd) return unexpected(Error::system("eventfd", errno));
  for (int fd : {g.listen_fd.get(), g.wake_fd.get()}) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = fd;
    if (::epoll_ctl(g.epoll_fd.get(), EPOLL_CTL_ADD, fd, &ev) != 0) return unexpected(Error::system("epoll_ctl", errno));
  }
  g.thread = std::thread([&g] { g.run(); });
  return self;
}

void Gate::release() noexcept { impl_->open.fetch_sub(1); }

void Gate::stop() noexcept {
  if (!impl_) return;
  Impl& g = *impl_;
  std::call_once(g.stopped, [&g] {
    g.stopping.store(true);
    const uint64_t one = 1;
    if (g.wake_fd) (void)::write(g.wake_fd.get(), &one, sizeof one);
    if (g.thread.joinable()) g.thread.join();
    g.listen_fd.reset();
  });
}

uint64_t Gate::rejected(GateReject r) const noexcept {
  return impl_->rejects[static_cast<size_t>(r)].load(std::memory_order_relaxed);
}

size_t Gate::open_connections() const noexcept { return impl_->open.load(); }

}  // namespace retina::http
