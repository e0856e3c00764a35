#include "metrics/adv_plan.hpp"

#include <algorithm>
#include <optional>

#include "core/strings.hpp"
#include "metrics/adv_metrics.hpp"

namespace retina::metrics::adv {
namespace {

constexpr size_t kGroups = 6;


void append_group_labels(std::vector<std::string>& out, Group g, bool is_reply) {
  switch (g) {
    case Group::kForward:
      out.emplace_back("direction");
      if (is_reply) out.emplace_back("is_reply");
      break;
    case Group::kDrop:
      out.emplace_back("reason");
      out.emplace_back("direction");
      break;
    case Group::kTcpFlags: out.emplace_back("flag"); break;
    case Group::kTcpRetrans: out.emplace_back("direction"); break;
    case Group::kDnsRequest:
      out.emplace_back("query_type");
      out.emplace_back("query");
      break;
    case Group::kDnsResponse:
      out.emplace_back("return_code");
      out.emplace_back("query_type");
      out.emplace_back("query");
      out.emplace_back("response");
      out.emplace_back("num_response");
      break;
  }
}

// The label part of one metric's configuration.
struct MetricLabels {
  uint8_t src = 0, dst = 0;
  bool is_reply = false;
  std::chrono::seconds ttl{0};
  friend bool operator==(const MetricLabels&, const MetricLabels&) = default;
};

MetricLabels labels_of(const MetricsContextOption& o, bool remote, Group g) {
  MetricLabels l;
  if (remote) {
    l.src = ctx_bits(o.source_labels);
    l.dst = ctx_bits(o.destination_labels);
  } else {
    // Retina reads only sourceLabels in local context; a configuration that
    // gives only destinationLabels gets those.
    l.src = o.source_labels.empty() ? ctx_bits(o.destination_labels) : ctx_bits(o.source_labels);
  }
  l.is_reply = g == Group::kForward &&
               std::find(o.additional_labels.begin(), o.additional_labels.end(), "is_reply") !=
                   o.additional_labels.end();
  l.ttl = o.ttl;
  return l;
}

}  // namespace

uint8_t ctx_bits(const std::vector<std::string>& names) {
  uint8_t bits = 0;
  for (const auto& raw : names) {
    const std::string n = text::lower(raw);
    if (n == "ip") bits |= kCtxIp;
    else if (n == "namespace") bits |= kCtxNamespace;
    else if (n == "podname") bits |= kCtxPodname;
    else if (n == "workload") bits |= kCtxWorkload;
    else if (n == "service") bits |= kCtxService;
    else if (n == "port") bits |= kCtxPort;
    else if (n == "zone") bits |= kCtxZone;
  }
  return bits;
}

void append_ctx_labels(std::vector<std::string>& out, uint8_t bits, std::string_view prefix) {
  const auto add = [&](std::string_view name) { out.push_back(std::string(prefix) + std::string(name)); };
  if (bits & kCtxIp) add("ip");
  if (bits & kCtxNamespace) add("namespace");
  if (bits & kCtxPodname) add("podname");
  if (bits & kCtxWorkload) {
    add("workload_kind");
    add("workload_name");
  }
  if (bits & kCtxService) add("service");
  if (bits & kCtxPort) add("port");
  if (bits & kCtxZone) add("zone");
}

size_t ctx_value_count(uint8_t bits) {
  size_t n = 0;
  for (uint8_t b = bits; b; b &= static_cast<uint8_t>(b - 1)) ++n;
  return n + ((bits & kCtxWorkload) ? 1 : 0);
}

Plan make_plan(const AdvancedOptions& options) {
  Plan p;
  p.remote = options.remote_context;
  p.annotations = options.enable_annotations;
  p.kernel_drop_reasons = options.kernel_drop_reasons;
  p.separate_syn_ack = options.tcp_flags_separate_syn_ack;
  p.node_name = options.node_name;
  p.include.insert(options.namespaces.include.begin(), options.namespaces.include.end());
  p.exclude.insert(options.namespaces.exclude.begin(), options.namespaces.exclude.end());
  p.cap = std::max<uint32_t>(1, options.max_series_per_metric);
  for (auto& g : p.by_group) g = {-1, -1};

  // Each metric's labels: the option naming it, else its group's option.
  std::array<std::optional<MetricLabels>, kAdvMetricCount> per_metric;
  if (options.context_options.empty()) {
    // Retina: nothing until a MetricsConfiguration names metrics.
    if (!options.default_context) return p;
    for (size_t i = 0; i < kAdvMetricCount; ++i) {
      MetricLabels l;
      l.src = kDefaultCtx;
      l.dst = p.remote ? kDefaultCtx : 0;
      per_metric[i] = l;
    }
  } else {
    std::array<bool, kAdvMetricCount> specific{};
    for (const auto& o : options.context_options) {
      const std::string name = text::lower(o.metric_name);
      for (const MetricInfo& m : metric_table()) {
        const bool alone = std::find(m.aliases.begin(), m.aliases.end(), name) != m.aliases.end();
        if (!alone && (m.group_alias.empty() || m.group_alias != name)) continue;
        const auto idx = static_cast<size_t>(m.metric);
        if (specific[idx] && !alone) continue;  // forward_count beats forward
        per_metric[idx] = labels_of(o, p.remote, m.group);
        specific[idx] = specific[idx] || alone;
      }
    }
  }

  for (size_t i = 0; i < kAdvMetricCount; ++i) {
    if (!per_metric[i]) continue;
    const auto m = static_cast<AdvMetric>(i);
    const Group g = info(m).group;
    const MetricLabels& l = *per_metric[i];
    // The pair partner (count/bytes) with the same labels shares the table.
    int8_t shared = -1;
    for (int8_t t : p.by_group[static_cast<size_t>(g)]) {
      if (t < 0) continue;
      const TableSpec& ts = p.tables[static_cast<size_t>(t)];
      if (ts.src_ctx == l.src && ts.dst_ctx == l.dst && ts.is_reply == l.is_reply && ts.ttl == l.ttl) shared = t;
    }
    if (shared >= 0) {
      TableSpec& ts = p.tables[static_cast<size_t>(shared)];
      ts.slot[i] = 1;
      p.table_of[i] = shared;
      continue;
    }
    TableSpec ts;
    ts.group = g;
    ts.slot[i] = 0;
    ts.src_ctx = l.src;
    ts.dst_ctx = l.dst;
    ts.is_reply = l.is_reply;
    ts.ttl = l.ttl;
    append_group_labels(ts.label_names, g, l.is_reply);
    if (p.remote) {
      append_ctx_labels(ts.label_names, l.src, "source_");
      append_ctx_labels(ts.label_names, l.dst, "destination_");
    } else {
      append_ctx_labels(ts.label_names, l.src, "");
    }
    const auto idx = static_cast<int8_t>(p.tables.size());
    p.tables.push_back(std::move(ts));
    p.table_of[i] = idx;
    auto& slots = p.by_group[static_cast<size_t>(g)];
    (slots[0] < 0 ? slots[0] : slots[1]) = idx;
  }
  static_assert(kGroups == std::tuple_size_v<decltype(Plan::by_group)>);
  return p;
}

}  // namespace retina::metrics::adv
