// Arbitrary GetFlowsRequest bytes: the filters compile or are rejected with
// a message (INVALID_ARGUMENT), never a crash; compiled filters match any
// flow without crashing.
#include <cstddef>
#include <cstdint>

#include "hubble/filter.hpp"
#include "observer/observer.pb.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  ::observer::GetFlowsRequest req;
  if (!req.ParseFromArray(data, static_cast<int>(size))) return 0;
  auto filters = retina::hubble::FlowFilters::compile(req.whitelist(), req.blacklist());
  if (!filters) {
    if (filters.error().message.empty()) __builtin_trap();
    return 0;
  }
  retina::Endpoint ep;
  ep.kind = retina::EndpointKind::kPod;
  ep.namespace_ = "default";
  ep.name = "web-0";
  ep.labels = {"app=web"};
  ep.workloads = {{"Deployment", "web"}};
  retina::DnsInfo dns;
  dns.query = "example.com.";
  retina::Flow f;
  f.src = *retina::IpAddr::parse("10.0.0.1");
  f.dst = *retina::IpAddr::parse("fd00::1");
  f.proto = retina::L4Protocol::kTCP;
  f.tcp_flags = retina::kSYN;
  f.source = &ep;
  (void)filters->matches(f, "node-1");
  f.destination = &ep;
  f.dns = &dns;
  f.is_reply_known = true;
  (void)filters->matches(f, "default/node-1");
  return 0;
}
