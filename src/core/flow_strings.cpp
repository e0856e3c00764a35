// Names of the Flow enums (Hubble's spelling) and of DNS types and codes.
#include <array>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <mutex>

#include "retina/flow.hpp"

namespace retina {

const char* to_string(Verdict v) {
  switch (v) {
    case Verdict::VERDICT_UNKNOWN: return "VERDICT_UNKNOWN";
    case Verdict::FORWARDED: return "FORWARDED";
    case Verdict::DROPPED: return "DROPPED";
    case Verdict::ERROR: return "ERROR";
    case Verdict::RETRANSMISSION: return "RETRANSMISSION";
    case Verdict::DNS: return "DNS";
  }
  return "VERDICT_UNKNOWN";
}

const char* to_string(TraceObservationPoint p) {
  switch (p) {
    case TraceObservationPoint::UNKNOWN_POINT: return "UNKNOWN_POINT";
    case TraceObservationPoint::TO_PROXY: return "TO_PROXY";
    case TraceObservationPoint::TO_HOST: return "TO_HOST";
    case TraceObservationPoint::TO_STACK: return "TO_STACK";
    case TraceObservationPoint::TO_OVERLAY: return "TO_OVERLAY";
    case TraceObservationPoint::FROM_ENDPOINT: return "FROM_ENDPOINT";
    case TraceObservationPoint::FROM_PROXY: return "FROM_PROXY";
    case TraceObservationPoint::FROM_HOST: return "FROM_HOST";
    case TraceObservationPoint::FROM_STACK: return "FROM_STACK";
    case TraceObservationPoint::FROM_OVERLAY: return "FROM_OVERLAY";
    case TraceObservationPoint::FROM_NETWORK: return "FROM_NETWORK";
    case TraceObservationPoint::TO_NETWORK: return "TO_NETWORK";
    case TraceObservationPoint::TO_ENDPOINT: return "TO_ENDPOINT";
  }
  return "UNKNOWN_POINT";
}

const char* to_string(TrafficDirection d) {
  switch (d) {
    case TrafficDirection::TRAFFIC_DIRECTION_UNKNOWN: return "TRAFFIC_DIRECTION_UNKNOWN";
    case TrafficDirection::INGRESS: return "INGRESS";
    case TrafficDirection::EGRESS: return "EGRESS";
  }
  return "TRAFFIC_DIRECTION_UNKNOWN";
}

const char* to_string(IpVersion v) {
  switch (v) {
    case IpVersion::IP_NOT_USED: return "IP_NOT_USED";
    case IpVersion::IPv4: return "IPv4";
    case IpVersion::IPv6: return "IPv6";
  }
  return "IP_NOT_USED";
}

const char* to_string(L4Protocol p) {
  switch (p) {
    case L4Protocol::kNone: return "NONE";
    case L4Protocol::kICMPv4: return "ICMPv4";
    case L4Protocol::kTCP: return "TCP";
    case L4Protocol::kUDP: return "UDP";
    case L4Protocol::kICMPv6: return "ICMPv6";
  }
  return "NONE";
}

namespace {

// "<PREFIX><n>" for every value of a 16-bit code, built once on first use
// so that unknown codes still get a stable, static name.
class NumberedNames {
 public:
  explicit NumberedNames(const char* prefix) : prefix_(prefix) {}
  const char* get(uint16_t n) {
    std::call_once(once_, [this] {
      table_ = std::make_unique<Entry[]>(65536);
      for (uint32_t i = 0; i < 65536; ++i) std::snprintf(table_[i].s, sizeof table_[i].s, "%s%u", prefix_, i);
    });
    return table_[n].s;
  }

 private:
  struct Entry {
    char s[12];
  };
  const char* prefix_;
  std::once_flag once_;
  std::unique_ptr<Entry[]> table_;
};

const char* qtype_known(uint16_t t) {
  switch (t) {
    case 1: return "A";
    case 2: return "NS";
    case 3: return "MD";
    case 4: return "MF";
    case 5: return "CNAME";
    case 6: return "SOA";
    case 7: return "MB";
    case 8: return "MG";
    case 9: return "MR";
    case 10: return "NULL";
    case 11: return "WKS";
    case 12: return "PTR";
    case 13: return "HINFO";
    case 14: return "MINFO";
    case 15: return "MX";
    case 16: return "TXT";
    case 17: return "RP";
    case 18: return "AFSDB";
    case 19: return "X25";
    case 20: return "ISDN";
    case 21: return "RT";
    case 23: return "NSAP-PTR";
    case 24: return "SIG";
    case 25: return "KEY";
    case 26: return "PX";
    case 27: return "GPOS";
    case 28: return "AAAA";
    case 29: return "LOC";
    case 30: return "NXT";
    case 31: return "EID";
    case 32: return "NIMLOC";
    case 33: return "SRV";
    case 34: return "ATMA";
    case 35: return "NAPTR";
    case 36: return "KX";
    case 37: return "CERT";
    case 38: return "A6";
    case 39: return "DNAME";
    case 41: return "OPT";
    case 42: return "APL";
    case 43: return "DS";
    case 44: return "SSHFP";
    case 45: return "IPSECKEY";
    case 46: return "RRSIG";
    case 47: return "NSEC";
    case 48: return "DNSKEY";
    case 49: return "DHCID";
    case 50: return "NSEC3";
    case 51: return "NSEC3PARAM";
    case 52: return "TLSA";
    case 53: return "SMIMEA";
    case 55: return "HIP";
    case 56: return "NINFO";
    case 57: return "RKEY";
    case 58: return "TALINK";
    case 59: return "CDS";
    case 60: return "CDNSKEY";
    case 61: return "OPENPGPKEY";
    case 62: return "CSYNC";
    case 63: return "ZONEMD";
    case 64: return "SVCB";
    case 65: return "HTTPS";
    case 99: return "SPF";
    case 100: return "UINFO";
    case 101: return "UID";
    case 102: return "GID";
    case 103: return "UNSPEC";
    case 104: return "NID";
    case 105: return "L32";
    case 106: return "L64";
    case 107: return "LP";
    case 108: return "EUI48";
    case 109: return "EUI64";
    case 249: return "TKEY";
    case 250: return "TSIG";
    case 251: return "IXFR";
    case 252: return "AXFR";
    case 253: return "MAILB";
    case 254: return "MAILA";
    case 255: return "ANY";
    case 256: return "URI";
    case 257: return "CAA";
    case 258: return "AVC";
    case 260: return "AMTRELAY";
    case 32768: return "TA";
    case 32769: return "DLV";
    default: return nullptr;
  }
}

const char* rcode_known(uint16_t r) {
  switch (r) {
    case 0: return "NOERROR";
    case 1: return "FORMERR";
    case 2: return "SERVFAIL";
    case 3: return "NXDOMAIN";
    case 4: return "NOTIMP";
    case 5: return "REFUSED";
    case 6: return "YXDOMAIN";
    case 7: return "YXRRSET";
    case 8: return "NXRRSET";
    case 9: return "NOTAUTH";
    case 10: return "NOTZONE";
    case 16: return "BADSIG";
    case 17: return "BADKEY";
    case 18: return "BADTIME";
    case 19: return "BADMODE";
    case 20: return "BADNAME";
    case 21: return "BADALG";
    case 22: return "BADTRUNC";
    case 23: return "BADCOOKIE";
    default: return nullptr;
  }
}

}  // namespace

const char* dns_qtype_name(uint16_t qtype) {
  if (const char* s = qtype_known(qtype)) return s;
  static NumberedNames names("TYPE");
  return names.get(qtype);
}

const char* dns_rcode_name(uint16_t rcode) {
  if (const char* s = rcode_known(rcode)) return s;
  static NumberedNames names("RCODE");
  return names.get(rcode);
}

}  // namespace retina
