// The /proc/net parsers and number parsing of linuxutil: real-looking
// fixtures, then every kind of malformed input.
#include <catch2/catch.hpp>

#include <fstream>
#include <sstream>
#include <string>

#include "plugins/linuxutil/ethtool.hpp"
#include "plugins/linuxutil/proc_parsers.hpp"
#include "plugins/linuxutil/socket_summary.hpp"
#include "plugins/linuxutil/value_parsers.hpp"

using namespace retina;
using namespace retina::linuxutil;

namespace {

std::string fixture(const std::string& rel) {
  std::ifstream in(std::string(RETINA_SOURCE_DIR) + "/tests/fixtures/proc/linuxutil/net/" + rel);
  REQUIRE(in.good());
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

const StatTable* table(const std::vector<StatTable>& tables, std::string_view prefix) {
  for (const auto& t : tables)
    if (t.prefix == prefix) return &t;
  return nullptr;
}

std::optional<StatValue> stat(const std::vector<Stat>& stats, std::string_view name) {
  for (const auto& s : stats)
    if (s.name == name) return s.value;
  return std::nullopt;
}

StatValue u(uint64_t v) { return StatValue{v, false}; }

}  // namespace

TEST_CASE("parse_u64 and parse_stat_value accept plain decimals up to 2^64-1", "[linuxutil][parsers]") {
  CHECK(parse_u64("0").value() == 0);
  CHECK(parse_u64("18446744073709551615").value() == UINT64_MAX);
  CHECK(parse_stat_value("-1").value() == StatValue{1, true});
  CHECK(parse_stat_value("-0").value() == StatValue{0, false});
  CHECK(parse_stat_value("18446744073709551615").value() == u(UINT64_MAX));

  for (std::string_view bad : {"", "18446744073709551616", "99999999999999999999999", "+1", " 1", "1 ", "0x10",
                               "12a", "-", "--1", "1.5", "1e3"}) {
    INFO(bad);
    CHECK_FALSE(parse_u64(bad));
  }
  CHECK_FALSE(parse_stat_value("--1"));
  CHECK_FALSE(parse_stat_value("-"));
  CHECK_FALSE(parse_stat_value("-18446744073709551616"));
  CHECK(parse_u64("18446744073709551616").error().message.find("exceeds 2^64-1") != std::string::npos);
  CHECK(parse_u64("12a").error().kind == Error::Kind::kParse);
}

TEST_CASE("sysfs numbers: trailing newline allowed, garbage rejected", "[linuxutil][parsers]") {
  CHECK(parse_sysfs_u64("42\n").value() == 42);
  CHECK(parse_sysfs_u64("18446744073709551615\n").value() == UINT64_MAX);
  CHECK(parse_sysfs_i64("-1\n").value() == -1);
  CHECK(parse_sysfs_i64("-9223372036854775808").value() == INT64_MIN);
  CHECK_FALSE(parse_sysfs_i64("9223372036854775808"));
  CHECK_FALSE(parse_sysfs_i64("-9223372036854775809"));
  CHECK_FALSE(parse_sysfs_u64(""));
  CHECK_FALSE(parse_sysfs_u64("\n"));
  CHECK_FALSE(parse_sysfs_u64("1 2\n"));
  CHECK_FALSE(parse_sysfs_u64("18446744073709551616\n"));
}

TEST_CASE("quote() bounds and escapes untrusted text", "[linuxutil][parsers]") {
  CHECK(quote("abc") == "'abc'");
  CHECK(quote(std::string_view("a\0\x7f\n", 4)) == "'a\\x00\\x7f\\x0a'");
  CHECK(quote(std::string(100, 'x')) == "'" + std::string(40, 'x') + "'...");
}

TEST_CASE("parse_proc_tables reads /proc/net/snmp", "[linuxutil][parsers]") {
  auto tables = parse_proc_tables(fixture("snmp"));
  REQUIRE(tables);
  const StatTable* tcp = table(*tables, "Tcp");
  REQUIRE(tcp);
  CHECK(tcp->stats.front().name == "RtoAlgorithm");
  CHECK(stat(tcp->stats, "RetransSegs") == u(42));
  CHECK(stat(tcp->stats, "CurrEstab") == u(7));
  CHECK(stat(tcp->stats, "MaxConn") == StatValue{1, true});  // the kernel prints -1
  REQUIRE(table(*tables, "Ip"));
  CHECK(stat(table(*tables, "Ip")->stats, "InReceives") == u(1234567));
  REQUIRE(table(*tables, "Udp"));
  CHECK(stat(table(*tables, "Udp")->stats, "RcvbufErrors") == u(4));
  CHECK(table(*tables, "Icmp"));
  CHECK(table(*tables, "IcmpMsg"));
  CHECK(table(*tables, "UdpLite"));
}

TEST_CASE("parse_proc_tables reads /proc/net/netstat, new columns included", "[linuxutil][parsers]") {
  auto tables = parse_proc_tables(fixture("netstat"));
  REQUIRE(tables);
  const StatTable* ext = table(*tables, "TcpExt");
  REQUIRE(ext);
  CHECK(ext->stats.size() > 100);
  CHECK(stat(ext->stats, "TCPTimeouts") == u(7));
  CHECK(stat(ext->stats, "ListenDrops") == u(6));
  CHECK(stat(table(*tables, "IpExt")->stats, "InOctets") == u(UINT64_MAX));
  CHECK(table(*tables, "MPTcpExt"));

  // A table and a column this parser has never heard of.
  auto t = parse_proc_tables("FutureExt: NewThing Other\nFutureExt: 5 6\n");
  REQUIRE(t);
  REQUIRE(t->size() == 1);
  CHECK((*t)[0].prefix == "FutureExt");
  CHECK((*t)[0].stats == std::vector<Stat>{{"NewThing", u(5)}, {"Other", u(6)}});
}

TEST_CASE("parse_proc_tables rejects malformed input with clear errors", "[linuxutil][parsers]") {
  const auto err = [](std::string_view text) {
    auto r = parse_proc_tables(text);
    REQUIRE_FALSE(r);
    CHECK(r.error().kind == Error::Kind::kParse);
    return r.error().message;
  };
  CHECK(err("") == "empty file: no tables");
  CHECK(err("\n\n") == "empty file: no tables");
  CHECK(err("Tcp: A B C\n") == "line 1: table 'Tcp' has no value line");
  CHECK(err("Tcp: A B C\nTcp: 1 2\n") == "line 2: table 'Tcp' has 3 names but 2 values");
  CHECK(err("Tcp: A B\nTcp: 1 2 3\n") == "line 2: table 'Tcp' has 2 names but 3 values");
  CHECK(err("Tcp: A B\nUdp: 1 2\n") == "line 2: expected the value line of table 'Tcp', got 'Udp:'");
  CHECK(err("Tcp: A B\nTcp: 1 x2\n") == "line 2: table 'Tcp', 'B': 'x2' is not a decimal number");
  CHECK(err("Tcp: A\nTcp: 18446744073709551616\n") ==
        "line 2: table 'Tcp', 'A': number '18446744073709551616' exceeds 2^64-1");
  CHECK(err("Tcp A B\nTcp 1 2\n") == "line 1: expected a 'Name:' table header, got 'Tcp'");
  CHECK(err(":\n:\n") == "line 1: expected a 'Name:' table header, got ':'");
  // Truncated in the middle of the second table.
  std::string snmp = fixture("snmp");
  const size_t cut = snmp.find("Tcp: 1");
  CHECK(err(std::string_view(snmp).substr(0, cut + 8)).find("table 'Tcp' has 15 names but 2 values") !=
        std::string::npos);
}

TEST_CASE("parse_proc_snmp6 reads the name/value list", "[linuxutil][parsers]") {
  auto stats = parse_proc_snmp6(fixture("snmp6"));
  REQUIRE(stats);
  CHECK(stats->front().name == "Ip6InReceives");
  CHECK(stat(*stats, "Ip6InReceives") == u(4321));
  CHECK(stat(*stats, "Udp6InDatagrams") == u(77));
  CHECK(stat(*stats, "UdpLite6InDatagrams") == u(0));

  CHECK(parse_proc_snmp6("").error().message == "empty file: no counters");
  CHECK(parse_proc_snmp6("Ip6InReceives\n").error().message ==
        "line 1: expected 'Name value', got 1 fields in 'Ip6InReceives'");
  CHECK(parse_proc_snmp6("A 1\nB 2 3\n").error().message == "line 2: expected 'Name value', got 3 fields in 'B 2 3'");
  CHECK(parse_proc_snmp6("A 1\nB two\n").error().message == "line 2: 'B': 'two' is not a decimal number");
  CHECK(parse_proc_snmp6("A 18446744073709551615\n")->front().value == u(UINT64_MAX));
}

TEST_CASE("parse_proc_sockets decodes /proc/net/tcp and tcp6", "[linuxutil][parsers]") {
  auto v4 = parse_proc_sockets(fixture("tcp"));
  REQUIRE(v4);
  REQUIRE(v4->size() == 12);
  const SocketEntry& e = (*v4)[2];
  CHECK(e.local.to_string() == "10.0.0.4");
  CHECK(e.local_port == 22);
  CHECK(e.remote.to_string() == "10.0.0.9");
  CHECK(e.remote_port == 51000);
  CHECK(e.state == kTcpEstablished);
  CHECK((*v4)[0].state == kTcpListen);
  CHECK((*v4)[0].local.is_unspecified());

  auto v6 = parse_proc_sockets(fixture("tcp6"));
  REQUIRE(v6);
  REQUIRE(v6->size() == 8);
  CHECK((*v6)[1].remote.to_string() == "10.0.0.9");  // v4-mapped
  CHECK((*v6)[2].local.to_string() == "fd00::4");
  CHECK((*v6)[2].remote.to_string() == "fd00::9");
  CHECK((*v6)[2].remote_port == 52100);

  auto udp = parse_proc_sockets(fixture("udp"));
  REQUIRE(udp);
  REQUIRE(udp->size() == 2);
  CHECK((*udp)[0].local.to_string() == "127.0.0.53");
  CHECK((*udp)[0].state == kTcpClose);

  // Header only: no sockets, not an error.
  auto empty = parse_proc_sockets("  sl  local_address rem_address   st tx_queue\n");
  REQUIRE(empty);
  CHECK(empty->empty());
}

TEST_CASE("parse_proc_sockets rejects malformed lines", "[linuxutil][parsers]") {
  const std::string hdr = "  sl  local_address rem_address   st tx_queue rx_queue\n";
  const auto err = [&](std::string_view body, bool with_header = true) {
    auto r = parse_proc_sockets(with_header ? hdr + std::string(body) : std::string(body));
    REQUIRE_FALSE(r);
    return r.error().message;
  };
  CHECK(err("", false) == "empty file: no header line");
  CHECK(err("   0: 0100007F:0035 00000000:0000 0A\n", false) ==
        "line 1: expected the 'sl local_address ...' header, got '   0: 0100007F:0035 00000000:0000 0A'");
  CHECK(err("   0: 0100007F:0035 00000000:0000\n") == "line 2: expected at least 4 fields, got 3");
  CHECK(err("   x: 0100007F:0035 00000000:0000 0A\n") == "line 2: bad slot 'x:'");
  CHECK(err("   0 0100007F:0035 00000000:0000 0A\n") == "line 2: bad slot '0'");
  CHECK(err("   0: 0100007F0035 00000000:0000 0A\n") == "line 2: bad local address '0100007F0035'");
  CHECK(err("   0: 0100007:0035 00000000:0000 0A\n") == "line 2: bad local address '0100007:0035'");
  CHECK(err("   0: 0100007G:0035 00000000:0000 0A\n") == "line 2: bad local address '0100007G:0035'");
  CHECK(err("   0: 0100007F:35 00000000:0000 0A\n") == "line 2: bad local address '0100007F:35'");
  CHECK(err("   0: 0100007F:0035 00000000:00000 0A\n") == "line 2: bad remote address '00000000:00000'");
  CHECK(err("   0: 0100007F:0035 00000000:0000 0Z\n") == "line 2: bad socket state '0Z'");
  CHECK(err("   0: 0100007F:0035 00000000:0000 00\n") == "line 2: bad socket state '00'");
  CHECK(err("   0: 0100007F:0035 00000000:0000 0D\n") == "line 2: bad socket state '0D'");
  CHECK(err("   0: 0100007F:0035 00000000:0000 A\n") == "line 2: bad socket state 'A'");
}

TEST_CASE("TcpTally counts states and top remote addresses", "[linuxutil][parsers]") {
  auto v4 = parse_proc_sockets(fixture("tcp"));
  auto v6 = parse_proc_sockets(fixture("tcp6"));
  REQUIRE(v4);
  REQUIRE(v6);

  TcpTally all;
  all.add(*v4);
  all.add(*v6);
  TcpSummary s = std::move(all).finish(100);
  CHECK(s.by_state[kTcpEstablished] == 7);
  CHECK(s.by_state[kTcpListen] == 3);
  CHECK(s.by_state[kTcpTimeWait] == 2);
  CHECK(s.by_state[kTcpSynSent] == 1);
  CHECK(s.by_state[kTcpSynRecv] == 1);
  CHECK(s.by_state[kTcpFinWait1] == 1);
  CHECK(s.by_state[kTcpFinWait2] == 1);
  CHECK(s.by_state[kTcpClose] == 1);
  CHECK(s.by_state[kTcpCloseWait] == 1);
  CHECK(s.by_state[kTcpLastAck] == 1);
  CHECK(s.by_state[kTcpClosing] == 1);
  REQUIRE(s.remotes.size() == 3);  // loopback connections are not remote
  CHECK(s.remotes[0] == std::pair{*IpAddr::parse("10.0.0.9"), uint64_t{3}});
  CHECK(s.remotes[1] == std::pair{*IpAddr::parse("10.0.0.1"), uint64_t{1}});
  CHECK(s.remotes[2] == std::pair{*IpAddr::parse("fd00::9"), uint64_t{1}});
  CHECK(s.other_remotes == 0);

  TcpTally top1;
  top1.add(*v4);
  top1.add(*v6);
  TcpSummary t = std::move(top1).finish(1);
  REQUIRE(t.remotes.size() == 1);
  CHECK(t.remotes[0].second == 3);
  CHECK(t.other_remotes == 2);

  // Request sockets (NEW_SYN_RECV, from sock_diag) count as SYN_RECV.
  TcpTally req;
  SocketEntry r;
  r.state = kTcpNewSynRecv;
  req.add(std::span(&r, 1));
  CHECK(std::move(req).finish(10).by_state[kTcpSynRecv] == 1);
}

TEST_CASE("TcpTally folds thousands of remotes into the top N", "[linuxutil][parsers]") {
  std::vector<SocketEntry> socks;
  for (uint32_t i = 0; i < 5000; ++i) {
    SocketEntry e;
    e.state = kTcpEstablished;
    e.remote = IpAddr::from_v4(0x0a000000u + i % 1000);  // 1000 addresses, 5 connections each
    socks.push_back(e);
  }
  for (int i = 0; i < 10; ++i) {
    SocketEntry e;
    e.state = kTcpEstablished;
    e.remote = *IpAddr::parse("192.0.2.1");
    socks.push_back(e);
  }
  TcpTally tally;
  tally.add(socks);
  TcpSummary s = std::move(tally).finish(100);
  REQUIRE(s.remotes.size() == 100);
  CHECK(s.remotes[0] == std::pair{*IpAddr::parse("192.0.2.1"), uint64_t{10}});
  CHECK(s.remotes[1] == std::pair{*IpAddr::parse("10.0.0.0"), uint64_t{5}});  // ties by address
  CHECK(s.remotes[99] == std::pair{*IpAddr::parse("10.0.0.98"), uint64_t{5}});
  CHECK(s.other_remotes == 5010 - 10 - 99 * 5);
}

TEST_CASE("is_loopback covers 127/8, v4-mapped and ::1", "[linuxutil][parsers]") {
  CHECK(is_loopback(*IpAddr::parse("127.0.0.1")));
  CHECK(is_loopback(*IpAddr::parse("127.255.0.9")));
  CHECK(is_loopback(*IpAddr::parse("::ffff:127.0.0.1")));
  CHECK(is_loopback(*IpAddr::parse("::1")));
  CHECK_FALSE(is_loopback(*IpAddr::parse("128.0.0.1")));
  CHECK_FALSE(is_loopback(*IpAddr::parse("::2")));
}

TEST_CASE("tcp_state_name uses Retina's state labels", "[linuxutil][parsers]") {
  CHECK(std::string(tcp_state_name(kTcpEstablished)) == "ESTABLISHED");
  CHECK(std::string(tcp_state_name(kTcpFinWait1)) == "FIN_WAIT1");
  CHECK(std::string(tcp_state_name(kTcpClosing)) == "CLOSING");
  CHECK(std::string(tcp_state_name(kTcpNewSynRecv)) == "SYN_RECV");
  CHECK(tcp_state_name(0) == nullptr);
  CHECK(tcp_state_name(13) == nullptr);
}

TEST_CASE("ethtool string decoding and key filter", "[linuxutil][parsers]") {
  std::vector<uint8_t> data(3 * 32, 0);
  std::memcpy(data.data(), "rx_dropped", 10);
  std::memset(data.data() + 32, 'a', 32);  // fills the slot: no NUL
  std::memcpy(data.data() + 64, "tx_packets", 10);
  auto names = decode_gstrings(data, 3);
  REQUIRE(names);
  CHECK(*names == std::vector<std::string>{"rx_dropped", std::string(32, 'a'), "tx_packets"});
  CHECK_FALSE(decode_gstrings(data, 4));
  CHECK(decode_gstrings(data, 4).error().message == "ethtool strings: 4 names need 128 bytes, got 96");
  CHECK(decode_gstrings({}, 0)->empty());

  for (std::string_view k : {"rx_errors", "rx_queue_0_drops", "tx_discards_phy", "rx_missed", "rx_fifo_errors",
                             "tx_timeout", "alloc_fail", "RxErrors", "rx_CRC_ERR"})
    CHECK(is_error_or_drop_key(k));
  for (std::string_view k : {"rx_packets", "tx_bytes", "peer_ifindex", "rx_kicks", ""})
    CHECK_FALSE(is_error_or_drop_key(k));
}
