// Arbitrary bytes as the start of an HTTP request, as the API's gate sees
// them before a worker does: where the headers end and what framing the
// body announces. Never a crash; the header end lies within the input and
// after a line break.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "engine/http_gate.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view buf(reinterpret_cast<const char*>(data), size);
  const size_t end = retina::http::header_end(buf);
  if (end != std::string_view::npos) {
    if (end > buf.size() || end < 2 || buf[end - 1] != '\n') __builtin_trap();
    const auto framing = retina::http::body_framing(buf.substr(0, end));
    (void)framing;
  } else {
    (void)retina::http::body_framing(buf);
  }
  return 0;
}
