// Tracks the node's network interfaces through rtnetlink: pod veths (host
// side) appear and disappear, and the default-route interface is known.
// Plugins that attach per interface subscribe here.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "retina/config.hpp"
#include "retina/error.hpp"

namespace retina {

struct InterfaceInfo {
  int ifindex = 0;
  std::string name;
  std::string kind;              // rtnetlink IFLA_INFO_KIND: "veth", "bridge", "" for physical
  bool is_pod_veth = false;      // host side of a pod's veth pair
  bool is_default_route = false; // carries the IPv4 or IPv6 default route
  bool up = false;
};

class InterfaceWatcher {
 public:
  // added=true: the interface appeared (or existed at subscribe time) or
  // changed role; added=false: it went away.
  using Callback = std::function<void(const InterfaceInfo& info, bool added)>;

  static Result<std::unique_ptr<InterfaceWatcher>> create(const Config& config);
  virtual ~InterfaceWatcher() = default;

  // Calls cb for every current interface at once, then for each change,
  // from the watcher's thread.
  virtual uint64_t subscribe(Callback cb) = 0;
  virtual void unsubscribe(uint64_t id) = 0;
  virtual Status start() = 0;
  virtual void stop() noexcept = 0;

  virtual std::vector<InterfaceInfo> snapshot() const = 0;
  virtual std::optional<InterfaceInfo> default_route_interface() const = 0;
};

}  // namespace retina
