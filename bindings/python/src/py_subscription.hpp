// The Python holder of a Subscription and the popping loop shared by
// engines and offline pipelines.
#pragma once

#include <memory>

#include "bindings.hpp"

namespace retina::py {

struct PySubscription {
  std::shared_ptr<Subscription> sub;
  std::shared_ptr<PyStringTable> strings = std::make_shared<PyStringTable>();
};

FlowBatch pop_flows(Subscription& sub, py::handle max, py::handle timeout, py::handle duration);

}  // namespace retina::py
