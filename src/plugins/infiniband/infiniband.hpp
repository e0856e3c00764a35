// infiniband: per-port InfiniBand counters from
// /sys/class/infiniband/<device>/ports/<port>/{counters,hw_counters}/* and
// IPoIB interface parameters from /sys/class/net/<if>/. A polling plugin;
// disabled (kUnsupported) on nodes without /sys/class/infiniband. See
// docs/plugins/infiniband.md.
#pragma once

#include <memory>

#include "retina/plugin.hpp"

namespace retina {

std::unique_ptr<Plugin> make_infiniband_plugin();

}  // namespace retina
