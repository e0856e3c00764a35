// retina::Flow: one decoded and enriched event, named after Hubble's flow.
//
// A Flow handed to a sink is a view: `source`, `destination` and `dns`
// point into the IP cache and the decoder's scratch space and stay valid
// only for the duration of the callback. Subscribers that keep flows get
// an OwnedFlow (see pipeline.hpp), which holds its own references.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "retina/endpoint.hpp"
#include "retina/ip.hpp"

namespace retina {

// Hubble's Verdict, with Retina's custom values.
enum class Verdict : uint8_t {
  VERDICT_UNKNOWN = 0,
  FORWARDED = 1,
  DROPPED = 2,
  ERROR = 3,
  RETRANSMISSION = 15,
  DNS = 16,
};

enum class IpVersion : uint8_t { IP_NOT_USED = 0, IPv4 = 1, IPv6 = 2 };

// Hubble's TraceObservationPoint numbering.
enum class TraceObservationPoint : uint8_t {
  UNKNOWN_POINT = 0,
  TO_PROXY = 1,
  TO_HOST = 2,
  TO_STACK = 3,
  TO_OVERLAY = 4,
  FROM_ENDPOINT = 5,
  FROM_PROXY = 6,
  FROM_HOST = 7,
  FROM_STACK = 8,
  FROM_OVERLAY = 9,
  FROM_NETWORK = 10,
  TO_NETWORK = 11,
  TO_ENDPOINT = 101,
};

enum class TrafficDirection : uint8_t { TRAFFIC_DIRECTION_UNKNOWN = 0, INGRESS = 1, EGRESS = 2 };

enum class L4Protocol : uint8_t { kNone = 0, kICMPv4 = 1, kTCP = 6, kUDP = 17, kICMPv6 = 58 };

enum class L7Type : uint8_t { UNKNOWN_L7_TYPE = 0, REQUEST = 1, RESPONSE = 2 };

// Which data source produced the flow.
enum class FlowSource : uint8_t { kPacketParser = 0, kDropReason, kDns, kTcpRetrans, kCount };

// TCP flag bits (RETINA_TCP_* in the ABI) in Hubble's order of names.
enum TcpFlag : uint16_t {
  kFIN = 0x01, kSYN = 0x02, kRST = 0x04, kPSH = 0x08, kACK = 0x10,
  kURG = 0x20, kECE = 0x40, kCWR = 0x80, kNS = 0x100,
};
// Names by flag index (RETINA_FLAG_IDX_*): FIN SYN RST PSH ACK URG ECE CWR NS.
inline constexpr std::array<std::string_view, 9> kTcpFlagNames = {
    "FIN", "SYN", "RST", "PSH", "ACK", "URG", "ECE", "CWR", "NS"};

struct DnsInfo {
  std::string query;            // "example.com." (trailing dot, as Hubble)
  uint16_t id = 0;
  uint16_t qtype = 0;           // numeric; dns_qtype_name() gives "A", "AAAA", ...
  uint16_t rcode = 0;           // numeric; dns_rcode_name() gives "NOERROR", "NXDOMAIN", ...
  uint16_t answer_count = 0;    // ANCOUNT
  bool is_response = false;
  std::vector<IpAddr> ips;      // A / AAAA answers
  void clear() { query.clear(); ips.clear(); id = qtype = rcode = answer_count = 0; is_response = false; }
};

// Static strings: "A", "AAAA", ... and "TYPE<n>" for unlisted types.
const char* dns_qtype_name(uint16_t qtype);
// Static strings: "NOERROR", "NXDOMAIN", ... and "RCODE<n>" for unlisted codes.
const char* dns_rcode_name(uint16_t rcode);

struct Flow {
  uint64_t time_ns = 0;  // unix epoch, nanoseconds
  FlowSource origin = FlowSource::kPacketParser;
  Verdict verdict = Verdict::VERDICT_UNKNOWN;

  // IP
  IpAddr src{};
  IpAddr dst{};
  IpVersion ip_version = IpVersion::IP_NOT_USED;

  // L4
  L4Protocol proto = L4Protocol::kNone;
  uint16_t src_port = 0;
  uint16_t dst_port = 0;
  uint16_t tcp_flags = 0;  // TcpFlag bits of this packet

  TraceObservationPoint observation_point = TraceObservationPoint::UNKNOWN_POINT;
  TrafficDirection direction = TrafficDirection::TRAFFIC_DIRECTION_UNKNOWN;
  bool is_reply = false;
  bool is_reply_known = false;  // false when a connection was picked up mid-stream
  uint8_t event_type = 0;       // Hubble event_type.type: 4 trace, 1 drop, 129 L7
  uint8_t event_sub_type = 0;
  uint32_t ifindex = 0;

  // Counts. A packetparser report stands for prev_packets + 1 packets (or
  // prev_packets alone when has_packet is false) and bytes + prev_bytes bytes.
  bool has_packet = true;
  uint32_t bytes = 0;
  uint64_t prev_packets = 0;
  uint64_t prev_bytes = 0;
  std::array<uint32_t, 9> prev_flag_counts{};  // by RETINA_FLAG_IDX_*
  uint32_t tcp_id = 0;

  // Drops
  uint32_t drop_reason = 0;             // kernel enum skb_drop_reason value
  std::string_view drop_reason_desc{};  // e.g. "NETFILTER_DROP"; static or engine lifetime
  uint32_t suppressed = 0;              // drops of this flow folded into this one by rate limiting

  // TCP retransmission
  uint8_t tcp_state = 0;

  // L7 (DNS)
  L7Type l7_type = L7Type::UNKNOWN_L7_TYPE;
  const DnsInfo* dns = nullptr;

  // Enrichment (IP cache); null when unknown.
  const Endpoint* source = nullptr;
  const Endpoint* destination = nullptr;

  uint64_t packets() const { return prev_packets + (has_packet ? 1 : 0); }
  uint64_t total_bytes() const { return uint64_t{bytes} + prev_bytes; }
};

const char* to_string(Verdict v);
const char* to_string(TraceObservationPoint p);
const char* to_string(TrafficDirection d);
const char* to_string(IpVersion v);
const char* to_string(L4Protocol p);

}  // namespace retina
