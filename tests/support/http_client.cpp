#include "support/http_client.hpp"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>

#include <fmt/format.h>

namespace retina::test {
namespace {

struct Socket {
  int fd = -1;
  ~Socket() {
    if (fd >= 0) ::close(fd);
  }
};

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// Decodes a chunked body; false when it is malformed or cut short.
bool dechunk(std::string_view in, std::string& out) {
  out.clear();
  while (true) {
    const size_t eol = in.find("\r\n");
    if (eol == std::string_view::npos) return false;
    size_t len = 0;
    const std::string size_line(in.substr(0, eol));
    if (std::sscanf(size_line.c_str(), "%zx", &len) != 1) return false;
    in.remove_prefix(eol + 2);
    if (len == 0) return true;
    if (in.size() < len + 2) return false;
    out.append(in.substr(0, len));
    in.remove_prefix(len + 2);
  }
}

// True once `raw` holds a whole response: by Content-Length, or up to the
// last chunk. Servers may keep the connection open after answering (httplib
// does after a 400), so waiting for the close alone would stall.
bool complete(const std::string& raw) {
  const size_t head_end = raw.find("\r\n\r\n");
  if (head_end == std::string::npos) return false;
  const std::string head = lower(std::string_view(raw).substr(0, head_end + 2));
  const size_t body_len = raw.size() - head_end - 4;
  if (head.find("\r\ntransfer-encoding: chunked\r\n") != std::string::npos) {
    std::string body;
    return dechunk(std::string_view(raw).substr(head_end + 4), body);
  }
  const size_t cl = head.find("\r\ncontent-length:");
  if (cl == std::string::npos) return false;  // read until the server closes
  size_t want = 0;
  if (std::sscanf(head.c_str() + cl + 17, " %zu", &want) != 1) return false;
  return body_len >= want;
}

}  // namespace

std::string HttpResponse::header(std::string_view name) const {
  const std::string want = lower(name);
  for (const auto& [k, v] : headers) {
    if (lower(k) == want) return v;
  }
  return {};
}

HttpResponse http_raw(const std::string& host, uint16_t port, std::string_view request,
                      std::chrono::milliseconds timeout) {
  HttpResponse r;
  Socket s;
  s.fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (s.fd < 0) {
    r.error = fmt::format("socket: {}", std::strerror(errno));
    return r;
  }
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  if (::inet_pton(AF_INET, host.c_str(), &addr.sin_addr) != 1) {
    r.error = "bad address " + host;
    return r;
  }
  if (::connect(s.fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    r.error = fmt::format("connect: {}", std::strerror(errno));
    return r;
  }
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  const auto remaining_ms = [&] {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    return static_cast<int>(std::max<int64_t>(0, left.count()));
  };
  size_t off = 0;
  while (off < request.size()) {
    const ssize_t n = ::send(s.fd, request.data() + off, request.size() - off, MSG_NOSIGNAL);
    if (n <= 0) break;  // the server may answer (413, 431) before reading everything
    off += static_cast<size_t>(n);
  }
  std::string raw;
  char buf[16384];
  while (!complete(raw)) {
    pollfd p{s.fd, POLLIN, 0};
    const int ms = remaining_ms();
    if (ms == 0 || ::poll(&p, 1, ms) <= 0) {
      r.error = "timed out";
      break;
    }
    const ssize_t n = ::recv(s.fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    raw.append(buf, static_cast<size_t>(n));
  }
  const size_t head_end = raw.find("\r\n\r\n");
  if (head_end == std::string::npos) {
    if (r.error.empty()) r.error = raw.empty() ? "connection closed without a response" : "incomplete headers";
    return r;
  }
  std::string_view head(raw.data(), head_end);
  const size_t line_end = head.find("\r\n");
  const std::string status_line(head.substr(0, line_end));
  if (std::sscanf(status_line.c_str(), "HTTP/%*d.%*d %d", &r.status) != 1) {
    r.error = "bad status line: " + status_line;
    r.status = 0;
    return r;
  }
  head.remove_prefix(line_end == std::string_view::npos ? head.size() : line_end + 2);
  while (!head.empty()) {
    const size_t e = head.find("\r\n");
    const std::string_view line = head.substr(0, e);
    const size_t colon = line.find(':');
    if (colon != std::string_view::npos) {
      std::string_view v = line.substr(colon + 1);
      while (!v.empty() && v.front() == ' ') v.remove_prefix(1);
      r.headers.emplace_back(std::string(line.substr(0, colon)), std::string(v));
    }
    if (e == std::string_view::npos) break;
    head.remove_prefix(e + 2);
  }
  const std::string_view body(raw.data() + head_end + 4, raw.size() - head_end - 4);
  if (lower(r.header("Transfer-Encoding")) == "chunked") {
    if (!dechunk(body, r.body) && r.error.empty()) r.error = "malformed or truncated chunked body";
  } else {
    r.body.assign(body);
  }
  return r;
}

HttpResponse http_request(uint16_t port, std::string_view method, std::string_view target,
                          std::chrono::milliseconds timeout) {
  // Bodiless methods other than GET and HEAD still say so, as curl does.
  const bool no_body_expected = method == "GET" || method == "HEAD";
  const std::string req =
      fmt::format("{} {} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\n{}\r\n", method, target, port,
                  no_body_expected ? "" : "Content-Length: 0\r\n");
  return http_raw("127.0.0.1", port, req, timeout);
}

}  // namespace retina::test
