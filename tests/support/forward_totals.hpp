// forward_count / forward_bytes by direction, as scraped or as an
// interface's counters, so tests compare exact deltas of the two.
#pragma once

#include <cstdint>
#include <ostream>

#include "support/netns.hpp"
#include "support/prom_text.hpp"

namespace retina::test {

struct ForwardTotals {
  uint64_t packets[2] = {};  // [0] ingress, [1] egress
  uint64_t bytes[2] = {};
  bool operator==(const ForwardTotals&) const = default;
};

// networkobservability_forward_count/_bytes{direction}; absent series count 0.
ForwardTotals forward_totals(const PromText& m);
// An interface's counters: what it received is ingress, what it sent egress.
ForwardTotals forward_totals(const LinkCounters& c);
ForwardTotals operator-(const ForwardTotals& a, const ForwardTotals& b);
std::ostream& operator<<(std::ostream& os, const ForwardTotals& t);

}  // namespace retina::test
