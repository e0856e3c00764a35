#include "plugins/linuxutil/proc_parsers.hpp"

#include <fmt/format.h>

#include <charconv>
#include <cstring>

namespace retina::linuxutil {
namespace {

// Walks lines, numbering them from 1 for error messages.
class Lines {
 public:
  explicit Lines(std::string_view text) : rest_(text) {}

  // The next line that is not blank; false at the end.
  bool next(std::string_view& line) {
    while (!rest_.empty()) {
      const size_t nl = rest_.find('\n');
      line = rest_.substr(0, nl);
      rest_ = nl == std::string_view::npos ? std::string_view{} : rest_.substr(nl + 1);
      ++number_;
      if (!trim(line).empty()) return true;
    }
    return false;
  }
  size_t number() const { return number_; }

 private:
  std::string_view rest_;
  size_t number_ = 0;
};

void split(std::string_view line, std::vector<std::string_view>& out) {
  out.clear();
  size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && (line[i] == ' ' || line[i] == '\t' || line[i] == '\r')) ++i;
    const size_t start = i;
    while (i < line.size() && line[i] != ' ' && line[i] != '\t' && line[i] != '\r') ++i;
    if (i > start) out.push_back(line.substr(start, i - start));
  }
}

Error line_error(size_t line, std::string_view what) {
  return Error::parse(fmt::format("line {}: {}", line, what));
}

bool parse_hex(std::string_view s, uint32_t& out) {
  if (s.empty()) return false;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out, 16);
  return ec == std::errc() && p == s.data() + s.size();
}

// "0100007F:0035" or 32 hex digits for IPv6, then ":" and a 4-digit port.
bool parse_endpoint(std::string_view s, IpAddr& addr, uint16_t& port) {
  const size_t colon = s.find(':');
  if (colon == std::string_view::npos) return false;
  const std::string_view hex = s.substr(0, colon);
  const std::string_view port_hex = s.substr(colon + 1);
  uint32_t p = 0;
  if (port_hex.size() != 4 || !parse_hex(port_hex, p)) return false;
  port = static_cast<uint16_t>(p);
  if (hex.size() != 8 && hex.size() != 32) return false;
  uint8_t raw[16];
  for (size_t w = 0; w < hex.size() / 8; ++w) {
    uint32_t word = 0;
    if (!parse_hex(hex.substr(w * 8, 8), word)) return false;
    std::memcpy(raw + 4 * w, &word, 4);  // the kernel printed the word as it lies in memory
  }
  addr = hex.size() == 8 ? IpAddr::from_v4_bytes(raw) : IpAddr::from_v6_bytes(raw);
  return true;
}

}  // namespace

Result<std::vector<StatTable>> parse_proc_tables(std::string_view text) {
  std::vector<StatTable> out;
  Lines lines(text);
  std::vector<std::string_view> names, values;
  std::string_view header, value_line;
  while (lines.next(header)) {
    const size_t header_no = lines.number();
    split(header, names);
    const std::string_view prefix = names.front();
    if (prefix.size() < 2 || prefix.back() != ':')
      return unexpected(line_error(header_no, fmt::format("expected a 'Name:' table header, got {}", quote(prefix))));
    const std::string_view table = prefix.substr(0, prefix.size() - 1);
    if (!lines.next(value_line))
      return unexpected(line_error(header_no, fmt::format("table '{}' has no value line", table)));
    split(value_line, values);
    if (values.front() != prefix)
      return unexpected(line_error(lines.number(), fmt::format("expected the value line of table '{}', got {}",
                                                               table, quote(values.front()))));
    if (values.size() != names.size())
      return unexpected(line_error(lines.number(), fmt::format("table '{}' has {} names but {} values", table,
                                                               names.size() - 1, values.size() - 1)));
    StatTable t;
    t.prefix = std::string(table);
    t.stats.reserve(names.size() - 1);
    for (size_t i = 1; i < names.size(); ++i) {
      auto v = parse_stat_value(values[i]);
      if (!v)
        return unexpected(line_error(lines.number(), fmt::format("table '{}', {}: {}", table,
                                                                 quote(names[i]), v.error().message)));
      t.stats.push_back({std::string(names[i]), *v});
    }
    out.push_back(std::move(t));
  }
  if (out.empty()) return unexpected(Error::parse("empty file: no tables"));
  return out;
}

Result<std::vector<Stat>> parse_proc_snmp6(std::string_view text) {
  std::vector<Stat> out;
  Lines lines(text);
  std::vector<std::string_view> fields;
  std::string_view line;
  while (lines.next(line)) {
    split(line, fields);
    if (fields.size() != 2)
      return unexpected(line_error(lines.number(), fmt::format("expected 'Name value', got {} fields in {}",
                                                               fields.size(), quote(line))));
    auto v = parse_stat_value(fields[1]);
    if (!v) return unexpected(line_error(lines.number(), fmt::format("{}: {}", quote(fields[0]), v.error().message)));
    out.push_back({std::string(fields[0]), *v});
  }
  if (out.empty()) return unexpected(Error::parse("empty file: no counters"));
  return out;
}

const char* tcp_state_name(uint8_t state) {
  static constexpr const char* kNames[] = {
      nullptr,     "ESTABLISHED", "SYN_SENT", "SYN_RECV",   "FIN_WAIT1", "FIN_WAIT2", "TIME_WAIT",
      "CLOSE",     "CLOSE_WAIT",  "LAST_ACK", "LISTEN",     "CLOSING",   "SYN_RECV",
  };
  return state <= kTcpMaxState ? kNames[state] : nullptr;
}

Result<std::vector<SocketEntry>> parse_proc_sockets(std::string_view text) {
  Lines lines(text);
  std::string_view line;
  std::vector<std::string_view> f;
  if (!lines.next(line)) return unexpected(Error::parse("empty file: no header line"));
  split(line, f);
  if (f.front() != "sl")
    return unexpected(line_error(lines.number(), fmt::format("expected the 'sl local_address ...' header, got {}",
                                                             quote(line))));
  std::vector<SocketEntry> out;
  while (lines.next(line)) {
    split(line, f);
    if (f.size() < 4)
      return unexpected(line_error(lines.number(), fmt::format("expected at least 4 fields, got {}", f.size())));
    const std::string_view sl = f[0];
    if (sl.size() < 2 || sl.back() != ':' || !parse_u64(sl.substr(0, sl.size() - 1)))
      return unexpected(line_error(lines.number(), fmt::format("bad slot {}", quote(sl))));
    SocketEntry e;
    if (!parse_endpoint(f[1], e.local, e.local_port))
      return unexpected(line_error(lines.number(), fmt::format("bad local address {}", quote(f[1]))));
    if (!parse_endpoint(f[2], e.remote, e.remote_port))
      return unexpected(line_error(lines.number(), fmt::format("bad remote address {}", quote(f[2]))));
    uint32_t st = 0;
    if (f[3].size() != 2 || !parse_hex(f[3], st) || st == 0 || st > kTcpMaxState)
      return unexpected(line_error(lines.number(), fmt::format("bad socket state {}", quote(f[3]))));
    e.state = static_cast<uint8_t>(st);
    out.push_back(e);
  }
  return out;
}

}  // namespace retina::linuxutil
