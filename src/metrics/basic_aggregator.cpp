#include "retina/metrics/aggregator.hpp"

#include "retina/metrics/names.hpp"
#include "retina/metrics/registry.hpp"

namespace retina::metrics {

namespace {

constexpr size_t kDirs = 3;  // TrafficDirection: unknown, ingress, egress
constexpr std::string_view kDirNames[kDirs] = {"unknown", "ingress", "egress"};

size_t dir_index(TrafficDirection d) {
  const auto i = static_cast<size_t>(d);
  return i < kDirs ? i : 0;
}

}  // namespace

struct BasicAggregator::Impl {
  // Registry series, resolved once.
  Family<Counter>* families[3] = {};  // forward_count, forward_bytes (when counted), tcpretrans_count
  Counter* fwd_count[kDirs] = {};
  Counter* fwd_bytes[kDirs] = {};
  Counter* retrans[kDirs] = {};
  Counter* dns_req;
  Counter* dns_resp;
  bool count_forward;

  // Per-batch accumulation on the pipeline thread.
  struct Local {
    uint64_t fwd_packets[kDirs] = {};
    uint64_t fwd_bytes[kDirs] = {};
    uint64_t retrans[kDirs] = {};
    uint64_t dns_req = 0;
    uint64_t dns_resp = 0;
    bool dirty = false;
  } local;

  static void publish(Counter*& c, Family<Counter>* fam, size_t dir, uint64_t n) {
    if (!n) return;  // always so for a family not registered
    if (!c) c = &fam->with({kDirNames[dir]});
    c->add(n);
  }

  Impl(Registry& r, bool forward) : count_forward(forward) {
    auto& rt = r.counter(names::kTcpRetransCount, "Total TCP retransmitted segments",
                         {std::string(names::kDirection)});
    families[2] = &rt;
    if (count_forward) {
      families[0] = &r.counter(names::kForwardCount, "Total forwarded packets", {std::string(names::kDirection)});
      families[1] = &r.counter(names::kForwardBytes, "Total forwarded bytes", {std::string(names::kDirection)});
    }
    // "unknown" appears only if such a flow ever arrives (see publish()).
    for (size_t i = 1; i < kDirs; ++i) {
      if (count_forward) {
        fwd_count[i] = &families[0]->with({kDirNames[i]});
        fwd_bytes[i] = &families[1]->with({kDirNames[i]});
      }
      retrans[i] = &rt.with({kDirNames[i]});
    }
    dns_req = &r.counter(names::kDnsRequestCount, "Total DNS requests").with({});
    dns_resp = &r.counter(names::kDnsResponseCount, "Total DNS responses").with({});
  }
};

BasicAggregator::BasicAggregator(Registry& registry, bool count_forward)
    : impl_(std::make_unique<Impl>(registry, count_forward)) {}
BasicAggregator::~BasicAggregator() { on_batch_end(); }

void BasicAggregator::on_flow(const Flow& f) noexcept {
  auto& l = impl_->local;
  switch (f.origin) {
    case FlowSource::kPacketParser:
      if (f.verdict == Verdict::FORWARDED && impl_->count_forward) {
        const size_t d = dir_index(f.direction);
        l.fwd_packets[d] += f.packets();
        l.fwd_bytes[d] += f.total_bytes();
        l.dirty = true;
      }
      break;
    case FlowSource::kDns:
      if (f.l7_type == L7Type::REQUEST) ++l.dns_req;
      else if (f.l7_type == L7Type::RESPONSE) ++l.dns_resp;
      l.dirty = true;
      break;
    case FlowSource::kTcpRetrans:
      ++l.retrans[dir_index(f.direction)];
      l.dirty = true;
      break;
    default:
      break;  // drops are counted in kernel by the dropreason plugin
  }
}

void BasicAggregator::on_batch_end() noexcept {
  auto& l = impl_->local;
  if (!l.dirty) return;
  for (size_t i = 0; i < kDirs; ++i) {
    Impl::publish(impl_->fwd_count[i], impl_->families[0], i, l.fwd_packets[i]);
    Impl::publish(impl_->fwd_bytes[i], impl_->families[1], i, l.fwd_bytes[i]);
    Impl::publish(impl_->retrans[i], impl_->families[2], i, l.retrans[i]);
  }
  if (l.dns_req) impl_->dns_req->add(l.dns_req);
  if (l.dns_resp) impl_->dns_resp->add(l.dns_resp);
  l = Impl::Local{};
}

BasicAggregator::Totals BasicAggregator::totals() const {
  Totals t;
  for (size_t i = 0; i < kDirs; ++i) {
    t.forward_packets[i] = impl_->fwd_count[i] ? impl_->fwd_count[i]->value() : 0;
    t.forward_bytes[i] = impl_->fwd_bytes[i] ? impl_->fwd_bytes[i]->value() : 0;
    t.tcp_retransmissions[i] = impl_->retrans[i] ? impl_->retrans[i]->value() : 0;
  }
  t.dns_requests = impl_->dns_req->value();
  t.dns_responses = impl_->dns_resp->value();
  return t;
}

}  // namespace retina::metrics
