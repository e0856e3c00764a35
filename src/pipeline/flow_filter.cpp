#include <algorithm>

#include "retina/pipeline.hpp"

namespace retina {

namespace {

template <class T, class V>
bool contains(const std::vector<T>& list, const V& v) {
  return std::find(list.begin(), list.end(), v) != list.end();
}

bool in_namespace(const Endpoint* ep, const std::vector<std::string>& namespaces) {
  return ep && contains(namespaces, ep->namespace_);
}

// "ns/name" matches namespace and name; "name" matches the name alone.
bool is_pod(const Endpoint* ep, std::string_view want) {
  if (!ep) return false;
  const size_t slash = want.find('/');
  if (slash == std::string_view::npos) return ep->name == want;
  return ep->namespace_ == want.substr(0, slash) && ep->name == want.substr(slash + 1);
}

}  // namespace

bool FlowFilter::matches(const Flow& f) const noexcept {
  if (!verdicts.empty() && !contains(verdicts, f.verdict)) return false;
  if (!origins.empty() && !contains(origins, f.origin)) return false;
  if (!namespaces.empty() && !in_namespace(f.source, namespaces) && !in_namespace(f.destination, namespaces))
    return false;
  if (!pod_names.empty()) {
    bool any = false;
    for (const std::string& p : pod_names)
      if (is_pod(f.source, p) || is_pod(f.destination, p)) {
        any = true;
        break;
      }
    if (!any) return false;
  }
  if (!ips.empty() && !contains(ips, f.src) && !contains(ips, f.dst)) return false;
  if (!ports.empty() && !contains(ports, f.src_port) && !contains(ports, f.dst_port)) return false;
  return true;
}

}  // namespace retina
