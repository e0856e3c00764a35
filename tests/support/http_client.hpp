// A minimal HTTP/1.1 client over a raw TCP socket, for tests that scrape
// the agent: it sends exactly the bytes given (so tests can send malformed
// or oversized requests) and reads until the server closes the connection.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace retina::test {

struct HttpResponse {
  int status = 0;  // 0: no parsable response (connection refused, closed early)
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;  // de-chunked when Transfer-Encoding is chunked
  std::string error; // why status is 0

  // First header named `name` (case-insensitive); empty when absent.
  std::string header(std::string_view name) const;
};

// Sends `request` verbatim to host:port and reads the whole response.
HttpResponse http_raw(const std::string& host, uint16_t port, std::string_view request,
                      std::chrono::milliseconds timeout = std::chrono::seconds(10));

// GET (or another method) with "Connection: close".
HttpResponse http_request(uint16_t port, std::string_view method, std::string_view target,
                          std::chrono::milliseconds timeout = std::chrono::seconds(10));
inline HttpResponse http_get(uint16_t port, std::string_view target,
                             std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
  return http_request(port, "GET", target, timeout);
}

}  // namespace retina::test
