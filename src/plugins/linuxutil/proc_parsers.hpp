// Pure parsers for the /proc/net files linuxutil reads. Each takes the file
// text and either returns every row or an error naming the line and what is
// wrong with it; nothing is half-parsed. Unknown columns and tables are kept
// (new kernels add counters), malformed ones are rejected.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "plugins/linuxutil/value_parsers.hpp"
#include "retina/error.hpp"
#include "retina/ip.hpp"

namespace retina::linuxutil {

struct Stat {
  std::string name;
  StatValue value;

  friend bool operator==(const Stat&, const Stat&) = default;
};

// One "Prefix: name name ...\nPrefix: value value ...\n" pair of
// /proc/net/snmp or /proc/net/netstat. `prefix` has no colon ("TcpExt").
struct StatTable {
  std::string prefix;
  std::vector<Stat> stats;
};

// /proc/net/snmp, /proc/net/netstat: header/value line pairs, in file order.
Result<std::vector<StatTable>> parse_proc_tables(std::string_view text);

// /proc/net/snmp6: one "Name value" per line ("Udp6InDatagrams  12").
Result<std::vector<Stat>> parse_proc_snmp6(std::string_view text);

// Kernel TCP state numbers (include/net/tcp_states.h), as /proc/net/tcp
// prints them in hex and sock_diag reports them.
enum TcpState : uint8_t {
  kTcpEstablished = 1,
  kTcpSynSent,
  kTcpSynRecv,
  kTcpFinWait1,
  kTcpFinWait2,
  kTcpTimeWait,
  kTcpClose,
  kTcpCloseWait,
  kTcpLastAck,
  kTcpListen,
  kTcpClosing,
  kTcpNewSynRecv,  // request sockets; reported as SYN_RECV
  kTcpMaxState = kTcpNewSynRecv,
};

// "ESTABLISHED", "SYN_SENT", ... as Retina labels them; nullptr outside 1..12.
const char* tcp_state_name(uint8_t state);

struct SocketEntry {
  IpAddr local;
  IpAddr remote;
  uint16_t local_port = 0;
  uint16_t remote_port = 0;
  uint8_t state = 0;  // TcpState; UDP sockets use the same numbers

  friend bool operator==(const SocketEntry&, const SocketEntry&) = default;
};

// /proc/net/tcp, tcp6, udp, udp6: a header line starting with "sl", then one
// socket per line. Addresses are the kernel's hex dump of the address words
// in host byte order, so this decodes them for the machine it runs on.
Result<std::vector<SocketEntry>> parse_proc_sockets(std::string_view text);

}  // namespace retina::linuxutil
