// What the advanced aggregator counts, derived once per configuration from
// AdvancedOptions: which metrics are on, and for each a table spec (its
// label names and which context values fill them). Metrics configured with
// the same labels and ttl share a table (forward_count and forward_bytes,
// drop_count and drop_bytes), so one lookup serves both.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <absl/container/flat_hash_set.h>

#include "retina/metrics/advanced.hpp"

namespace retina::metrics::adv {

// Context options, in Retina's label order.
enum CtxBit : uint8_t {
  kCtxIp = 1 << 0,
  kCtxNamespace = 1 << 1,
  kCtxPodname = 1 << 2,
  kCtxWorkload = 1 << 3,  // workload_kind, workload_name
  kCtxService = 1 << 4,
  kCtxPort = 1 << 5,
  kCtxZone = 1 << 6,
};
inline constexpr uint8_t kDefaultCtx = kCtxIp | kCtxNamespace | kCtxPodname | kCtxWorkload;

// Which flows a table counts and which metric labels precede the context.
enum class Group : uint8_t { kForward, kDrop, kTcpFlags, kTcpRetrans, kDnsRequest, kDnsResponse };

struct TableSpec {
  Group group = Group::kForward;
  // Metrics served, and the value slot (0 or 1) of each.
  std::array<int8_t, kAdvMetricCount> slot{-1, -1, -1, -1, -1, -1, -1, -1};
  uint8_t src_ctx = 0;  // remote: source_* labels; local: the unprefixed labels
  uint8_t dst_ctx = 0;  // remote only
  bool is_reply = false;
  std::chrono::seconds ttl{0};
  std::vector<std::string> label_names;  // metric labels, then context labels

  // Same series identity: a table can be kept across configurations.
  bool same_labels(const TableSpec& o) const {
    return group == o.group && slot == o.slot && src_ctx == o.src_ctx && dst_ctx == o.dst_ctx &&
           is_reply == o.is_reply;
  }
};

struct Plan {
  bool remote = false;
  bool annotations = false;
  bool kernel_drop_reasons = false;
  bool separate_syn_ack = false;
  std::string node_name;
  absl::flat_hash_set<std::string> include, exclude;
  uint32_t cap = 10000;
  std::vector<TableSpec> tables;
  std::array<int8_t, kAdvMetricCount> table_of{-1, -1, -1, -1, -1, -1, -1, -1};
  // Tables by group, for the flow dispatch (-1: none). Forward and drop may
  // have two tables when count and bytes are configured differently.
  std::array<std::array<int8_t, 2>, 6> by_group{};

  bool filtered() const { return annotations || !include.empty() || !exclude.empty(); }
};

// Bits of one list of context option names ("workload" -> kCtxWorkload).
uint8_t ctx_bits(const std::vector<std::string>& names);
// The label names of a context bit set with a prefix, in Retina's order.
void append_ctx_labels(std::vector<std::string>& out, uint8_t bits, std::string_view prefix);
// The number of values a context bit set contributes (workload gives two).
size_t ctx_value_count(uint8_t bits);

// Assumes validate(options) passed.
Plan make_plan(const AdvancedOptions& options);

}  // namespace retina::metrics::adv
