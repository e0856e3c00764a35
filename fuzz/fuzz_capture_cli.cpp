// `retina capture create` flags: the input is a NUL-separated argument
// list. Every input either parses to a spec the agent would accept as
// JSON, or gives a usage error; nothing crashes.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "capture/cli_flags.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::vector<std::string> args = {"create"};
  std::string cur;
  for (size_t i = 0; i < size; ++i) {
    if (data[i] == 0) {
      args.push_back(cur);
      cur.clear();
    } else {
      cur.push_back(static_cast<char>(data[i]));
    }
  }
  if (!cur.empty()) args.push_back(cur);
  if (args.size() > 64) return 0;
  CLI::App app{"fuzz"};
  retina::capture::CliFlags flags;
  retina::capture::add_create_flags(app, flags);
  std::vector<const char*> argv;
  for (const auto& a : args) argv.push_back(a.c_str());
  try {
    app.parse(static_cast<int>(argv.size()), argv.data());
  } catch (const CLI::Error&) {
    return 0;
  }
  auto spec = retina::capture::spec_from_flags(flags);
  if (!spec) return 0;
  const std::string body = retina::capture::capture_object_json(*spec, flags.namespace_);
  if (!retina::capture::parse_request_json(body)) __builtin_trap();
  return 0;
}
