#include "support/forward_totals.hpp"

namespace retina::test {

ForwardTotals forward_totals(const PromText& m) {
  ForwardTotals t;
  const char* dirs[2] = {"ingress", "egress"};
  for (int d = 0; d < 2; ++d) {
    t.packets[d] = static_cast<uint64_t>(
        m.value("networkobservability_forward_count", {{"direction", dirs[d]}}).value_or(0));
    t.bytes[d] = static_cast<uint64_t>(
        m.value("networkobservability_forward_bytes", {{"direction", dirs[d]}}).value_or(0));
  }
  return t;
}

ForwardTotals forward_totals(const LinkCounters& c) {
  ForwardTotals t;
  t.packets[0] = c.rx_packets;
  t.packets[1] = c.tx_packets;
  t.bytes[0] = c.rx_bytes;
  t.bytes[1] = c.tx_bytes;
  return t;
}

ForwardTotals operator-(const ForwardTotals& a, const ForwardTotals& b) {
  ForwardTotals t;
  for (int d = 0; d < 2; ++d) {
    t.packets[d] = a.packets[d] - b.packets[d];
    t.bytes[d] = a.bytes[d] - b.bytes[d];
  }
  return t;
}

std::ostream& operator<<(std::ostream& os, const ForwardTotals& t) {
  return os << "ingress " << t.packets[0] << " packets / " << t.bytes[0] << " bytes, egress " << t.packets[1]
            << " packets / " << t.bytes[1] << " bytes";
}

}  // namespace retina::test
