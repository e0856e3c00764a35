#include "core/flow_fields.hpp"

#include <utility>

namespace retina::flow_fields {

namespace {

struct HubbleReason {
  uint32_t value;
  std::string_view name;
};

// Hubble's DropReason values that a kernel drop reason means.
constexpr HubbleReason kPolicyDenied{133, "POLICY_DENIED"};
constexpr HubbleReason kInvalidPacket{134, "INVALID_PACKET_DROPPED"};
constexpr HubbleReason kInvalidSourceIp{132, "INVALID_SOURCE_IP"};
constexpr HubbleReason kUnsupportedL3{139, "UNSUPPORTED_L3_PROTOCOL"};
constexpr HubbleReason kUnknownL4{142, "UNKNOWN_L4_PROTOCOL"};
constexpr HubbleReason kFibLookupFailed{169, "FIB_LOOKUP_FAILED"};
constexpr HubbleReason kSocketLookupFailed{178, "SOCKET_LOOKUP_FAILED"};
constexpr HubbleReason kFragmentation{157, "IP_FRAGMENTATION_NOT_SUPPORTED"};

// Kernel skb_drop_reason names (without SKB_DROP_REASON_) with a Cilium
// counterpart. Everything else is DROP_REASON_UNKNOWN.
constexpr std::pair<std::string_view, HubbleReason> kKernelToHubble[] = {
    {"NETFILTER_DROP", kPolicyDenied},
    {"TC_INGRESS", kPolicyDenied},
    {"TC_EGRESS", kPolicyDenied},
    {"PKT_TOO_SMALL", kInvalidPacket},
    {"IP_CSUM", kInvalidPacket},
    {"IP_INHDR", kInvalidPacket},
    {"TCP_CSUM", kInvalidPacket},
    {"UDP_CSUM", kInvalidPacket},
    {"ICMP_CSUM", kInvalidPacket},
    {"IP_RPFILTER", kInvalidSourceIp},
    {"IPV6DISABLED", kUnsupportedL3},
    {"UNHANDLED_PROTO", kUnsupportedL3},
    {"IP_NOPROTO", kUnknownL4},
    {"IP_OUTNOROUTES", kFibLookupFailed},
    {"IP_INNOROUTES", kFibLookupFailed},
    {"NO_SOCKET", kSocketLookupFailed},
    {"FRAG_REASM_TIMEOUT", kFragmentation},
    {"FRAG_TOO_FAR", kFragmentation},
};

constexpr HubbleReason kAll[] = {kPolicyDenied,     kInvalidPacket,       kInvalidSourceIp, kUnsupportedL3,
                                 kUnknownL4,        kFibLookupFailed,     kSocketLookupFailed, kFragmentation};

}  // namespace

uint32_t hubble_drop_reason(std::string_view kernel_name) noexcept {
  for (const auto& [name, reason] : kKernelToHubble)
    if (name == kernel_name) return reason.value;
  return 0;
}

std::string_view hubble_drop_reason_name(uint32_t value) noexcept {
  for (const auto& r : kAll)
    if (r.value == value) return r.name;
  return {};
}

}  // namespace retina::flow_fields
