// `retina observe` filter flags: one "name=value" per line. Every input
// gives whitelist filters the server accepts, or an error naming a flag;
// never a crash.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "hubble/filter.hpp"
#include "hubble/observe_filters.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  retina::hubble::ObserveFlags flags;
  while (!in.empty()) {
    const size_t nl = in.find('\n');
    const std::string_view line = in.substr(0, nl);
    const size_t eq = line.find('=');
    if (eq != std::string_view::npos) (void)retina::hubble::add_flag(flags, line.substr(0, eq), std::string(line.substr(eq + 1)));
    if (nl == std::string_view::npos) break;
    in.remove_prefix(nl + 1);
  }
  auto whitelist = retina::hubble::build_whitelist(flags);
  if (!whitelist) {
    if (whitelist.error().message.empty()) __builtin_trap();
    return 0;
  }
  if (whitelist->size() > 2) __builtin_trap();
  google::protobuf::RepeatedPtrField<::flow::FlowFilter> w(whitelist->begin(), whitelist->end());
  if (!retina::hubble::FlowFilters::compile(w, {})) __builtin_trap();  // built filters always compile
  return 0;
}
