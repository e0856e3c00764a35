// Python-side holders for endpoints and the IP cache.
#pragma once

#include <memory>

#include "bindings.hpp"
#include "retina/ip_cache.hpp"

namespace retina::py {

struct PyEndpoint {
  EndpointPtr ep;
};

struct PyIpCache {
  std::shared_ptr<IpCache> cache;
};

EndpointPtr endpoint_from_kwargs(const py::kwargs& kw);
py::dict endpoint_dict(const Endpoint& ep);

}  // namespace retina::py
