// kubeconfig documents: every input either resolves or gives an error.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "retina/k8s/watcher.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view yaml(reinterpret_cast<const char*>(data), size);
  auto r = retina::k8s::parse_kubeconfig(yaml, "/fuzz");
  if (!r) return 0;
  // A resolved config always names an http(s) server.
  if (!r->server.starts_with("https://") && !r->server.starts_with("http://")) __builtin_trap();
  (void)retina::k8s::parse_kubeconfig(yaml, "/fuzz", "other");
  return 0;
}
