#include <utility>

#include "retina/pipeline.hpp"

namespace retina {

OwnedFlow::OwnedFlow(const Flow& view)
    : OwnedFlow(view, view.source ? std::make_shared<const Endpoint>(*view.source) : nullptr,
                view.destination ? std::make_shared<const Endpoint>(*view.destination) : nullptr) {}

OwnedFlow::OwnedFlow(const Flow& view, EndpointPtr source, EndpointPtr destination)
    : flow_(view), source_(std::move(source)), destination_(std::move(destination)) {
  if (view.dns) dns_.emplace(*view.dns);
  drop_reason_desc_.assign(view.drop_reason_desc.data(), view.drop_reason_desc.size());
  repoint();
}

OwnedFlow& OwnedFlow::operator=(const OwnedFlow& o) {
  if (this == &o) return *this;
  flow_ = o.flow_;
  source_ = o.source_;
  destination_ = o.destination_;
  dns_ = o.dns_;
  drop_reason_desc_ = o.drop_reason_desc_;
  repoint();
  return *this;
}

OwnedFlow& OwnedFlow::operator=(OwnedFlow&& o) noexcept {
  if (this == &o) return *this;
  flow_ = o.flow_;
  source_ = std::move(o.source_);
  destination_ = std::move(o.destination_);
  dns_ = std::move(o.dns_);
  drop_reason_desc_ = std::move(o.drop_reason_desc_);
  repoint();
  o.dns_.reset();
  o.drop_reason_desc_.clear();
  o.repoint();
  return *this;
}

void OwnedFlow::repoint() {
  flow_.source = source_.get();
  flow_.destination = destination_.get();
  flow_.dns = dns_ ? &*dns_ : nullptr;
  flow_.drop_reason_desc = drop_reason_desc_;
}

}  // namespace retina
