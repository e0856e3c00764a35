// The HTTP API against hostile clients: idle and slow connections, too many
// connections, unframed bodies. Each is refused with its own status and
// counted, and none holds up a /metrics scrape.
#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <map>
#include <optional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "core/fd.hpp"
#include "engine/http_gate.hpp"
#include "retina/api_server.hpp"
#include "support/http_client.hpp"
#include "support/prom_text.hpp"

using retina::UniqueFd;
using retina::test::http_get;
using retina::test::http_raw;
using namespace std::chrono_literals;

namespace {

std::unique_ptr<retina::ApiServer> start_server(retina::ApiServerOptions opts) {
  retina::ApiServerBackend b;
  b.metrics = [](std::string& out) { out += "# HELP up Up\n# TYPE up gauge\nup 1\n"; };
  b.plugins = [] { return std::vector<retina::PluginStatus>{}; };
  b.ready = [] { return true; };
  opts.host = "127.0.0.1";
  opts.port = 0;
  auto s = retina::ApiServer::start(std::move(b), std::move(opts));
  REQUIRE(s.has_value());
  return std::move(*s);
}

UniqueFd connect_to(uint16_t port) {
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  REQUIRE(fd);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::connect(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  return fd;
}

void send_all(int fd, std::string_view s) {
  while (!s.empty()) {
    const ssize_t n = ::send(fd, s.data(), s.size(), MSG_NOSIGNAL);
    REQUIRE(n > 0);
    s.remove_prefix(static_cast<size_t>(n));
  }
}

// Everything the server sends until it closes, or until `timeout`.
std::string read_until_close(int fd, std::chrono::milliseconds timeout) {
  std::string out;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  char buf[4096];
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) break;
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) break;
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

std::optional<double> prom_value(const std::string& text, std::string_view name,
                                 const std::map<std::string, std::string>& labels) {
  const auto parsed = retina::test::parse_prom_text(text);
  REQUIRE(parsed.error.empty());
  return parsed.value(name, labels);
}

double rejected(uint16_t port, std::string_view reason) {
  auto r = http_get(port, "/metrics");
  REQUIRE(r.status == 200);
  auto v = prom_value(r.body, "retina_api_rejected_connections_total", {{"reason", std::string(reason)}});
  REQUIRE(v.has_value());
  return *v;
}

}  // namespace

TEST_CASE("api: a thousand idle and slow connections do not hold up /metrics", "[api][hostile]") {
  retina::ApiServerOptions opts;
  opts.max_connections = 1100;
  auto server = start_server(opts);
  const uint16_t port = server->port();

  std::vector<UniqueFd> clients;
  clients.reserve(1000);
  for (int i = 0; i < 1000; ++i) {
    clients.push_back(connect_to(port));
    // Half idle, half slowloris: a request that never finishes its headers.
    if (i % 2 == 1) send_all(clients.back().get(), "GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: a");
  }
  // The scrape answers while every one of them is still open; the bound is
  // generous (the slow clients themselves are only cut at request_timeout).
  const auto t0 = std::chrono::steady_clock::now();
  auto r = http_get(port, "/metrics", 8s);
  REQUIRE(r.status == 200);
  CHECK(r.body.find("up 1\n") != std::string::npos);
  CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::milliseconds(opts.request_timeout) / 2);
  auto open = prom_value(r.body, "retina_api_open_connections", {});
  REQUIRE(open.has_value());
  CHECK(*open >= 1001);  // the thousand and the scrape itself

  // A trickle keeps the slow ones alive on the wire, still without a thread.
  for (int i = 1; i < 1000; i += 2) send_all(clients[static_cast<size_t>(i)].get(), "b");
  CHECK(http_get(port, "/healthz", 8s).status == 200);
  clients.clear();
}

TEST_CASE("api: a request that does not arrive in time gets 408", "[api][hostile]") {
  retina::ApiServerOptions opts;
  opts.request_timeout = 300ms;
  auto server = start_server(opts);
  auto fd = connect_to(server->port());
  send_all(fd.get(), "GET /metrics HTTP/1.1\r\nHost: x\r\n");
  const std::string reply = read_until_close(fd.get(), 5s);
  CHECK(reply.rfind("HTTP/1.1 408 ", 0) == 0);
  CHECK(reply.find("did not arrive within 300 ms") != std::string::npos);
  CHECK(rejected(server->port(), "timeout") == 1);
}

TEST_CASE("api: connections beyond max_connections get 503 and close", "[api][hostile]") {
  retina::ApiServerOptions opts;
  opts.max_connections = 3;
  auto server = start_server(opts);
  std::vector<UniqueFd> idle;
  for (int i = 0; i < 3; ++i) idle.push_back(connect_to(server->port()));
  auto extra = connect_to(server->port());
  const std::string reply = read_until_close(extra.get(), 5s);
  CHECK(reply.rfind("HTTP/1.1 503 ", 0) == 0);
  CHECK(reply.find("too many connections (at most 3 at a time)") != std::string::npos);
  idle.clear();
  // Closed connections free their places; the counter remembers the refusal.
  double refused = -1;
  for (int i = 0; i < 50 && refused < 0; ++i) {
    auto r = http_get(server->port(), "/metrics");
    if (r.status == 200) {
      refused = prom_value(r.body, "retina_api_rejected_connections_total",
                                         {{"reason", "too_many_connections"}})
                    .value_or(-1);
    } else {
      std::this_thread::sleep_for(20ms);
    }
  }
  CHECK(refused >= 1);
}

TEST_CASE("api: bodies need a Content-Length within the limit", "[api][hostile]") {
  auto server = start_server({});
  auto r = http_raw("127.0.0.1", server->port(),
                    "POST /captures HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
                    "5\r\nhello\r\n0\r\n\r\n");
  CHECK(r.status == 411);
  r = http_raw("127.0.0.1", server->port(),
               "POST /captures HTTP/1.1\r\nHost: x\r\nContent-Length: 12x\r\nConnection: close\r\n\r\n");
  CHECK(r.status == 411);
  r = http_raw("127.0.0.1", server->port(),
               "POST /captures HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999999\r\nConnection: close\r\n\r\n");
  CHECK(r.status == 411);
  r = http_raw("127.0.0.1", server->port(),
               "POST /captures HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\nConnection: close\r\n\r\n");
  CHECK(r.status == 413);
  CHECK(rejected(server->port(), "length_required") == 3);
  CHECK(rejected(server->port(), "body_too_large") == 1);
}

TEST_CASE("api: the request line alone may not exceed the header limit", "[api][hostile]") {
  retina::ApiServerOptions opts;
  opts.max_header_bytes = 1024;
  auto server = start_server(opts);
  auto fd = connect_to(server->port());
  send_all(fd.get(), "GET /flows?" + std::string(4000, 'a'));
  const std::string reply = read_until_close(fd.get(), 5s);
  CHECK(reply.rfind("HTTP/1.1 414 ", 0) == 0);
  CHECK(rejected(server->port(), "headers_too_large") == 1);
}

TEST_CASE("http gate: header end and body framing", "[api][hostile]") {
  using retina::http::body_framing;
  using retina::http::header_end;
  CHECK(header_end("GET / HTTP/1.1\r\nHost: x\r\n\r\n") == 27);
  CHECK(header_end("GET / HTTP/1.1\nHost: x\n\nrest") == 24);
  CHECK(header_end("GET / HTTP/1.1\r\nHost: x\r\n") == std::string::npos);
  CHECK(header_end("") == std::string::npos);
  CHECK(body_framing("POST / HTTP/1.1\r\ncontent-LENGTH:  42 \r\n\r\n").length == 42);
  CHECK(body_framing("GET / HTTP/1.1\r\n\r\n").length == 0);
  CHECK(body_framing("POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n").length_required);
  CHECK(body_framing("POST / HTTP/1.1\r\nContent-Length:\r\n\r\n").length_required);
  CHECK(body_framing("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n").length_required);
}
