// retina._retina: the C++ half of the retina Python package.
#include "bindings.hpp"

PYBIND11_MODULE(_retina, m) {
  using namespace retina::py;
  m.doc() = "retina's C++ engine, decoder, pipeline and IP cache (use the retina package).";
  register_errors(m);
  register_abi(m);
  register_config(m);
  register_endpoint(m);
  register_flow(m);
  register_batch(m);
  register_subscription(m);
  register_pipeline(m);
  register_engine(m);
}
