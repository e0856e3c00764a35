// RFC 1035 message parser: header, first question, A/AAAA answers.
//
// Every read is bounds-checked against the message. Compression pointers
// must point strictly before the segment that holds them and not into the
// header, so following them always terminates (no loop can be formed) and
// never leaves the message. Names are limited to 255 wire bytes and labels
// to 63. The query name is written in presentation form with a trailing
// dot; '.', '\\' and non-printable bytes inside labels are escaped ("\.",
// "\\", "\DDD") the way common resolvers print them, so names stay ASCII.
#include "decoder/dns_parse.hpp"

#include <array>
#include <cstdint>
#include <cstring>

namespace retina {

const char* to_string(DnsError e) {
  switch (e) {
    case DnsError::kTooShort: return "too short for a DNS header";
    case DnsError::kNoQuestion: return "no question";
    case DnsError::kBadName: return "malformed name";
    case DnsError::kTruncatedRecord: return "record runs past the end of the message";
    case DnsError::kCount: break;
  }
  return "unknown DNS error";
}

namespace dns_detail {
namespace {

constexpr size_t kHeaderLen = 12;
constexpr size_t kMaxNameWire = 255;
constexpr size_t kMaxLabel = 63;
constexpr uint16_t kTypeA = 1;
constexpr uint16_t kTypeAAAA = 28;
constexpr uint16_t kClassIN = 1;

// Presentation form of the longest name: 253 label bytes of up to 4
// characters each, plus dots.
constexpr size_t kMaxNameText = 4 * kMaxNameWire + 8;

inline uint16_t rd16(const uint8_t* p) { return static_cast<uint16_t>((p[0] << 8) | p[1]); }

// Character classes for the presentation form: 0 copy, 1 backslash-escape,
// 2 decimal escape.
constexpr auto kEscape = [] {
  std::array<uint8_t, 256> t{};
  for (int c = 0; c < 256; ++c) {
    if (c < 0x21 || c > 0x7e) t[c] = 2;
    else if (c == '.' || c == '\\') t[c] = 1;
  }
  return t;
}();

inline size_t append_label(char* out, const uint8_t* label, size_t len) {
  size_t n = 0;
  for (size_t i = 0; i < len; ++i) {
    const uint8_t c = label[i];
    switch (kEscape[c]) {
      case 0: out[n++] = static_cast<char>(c); break;
      case 1:
        out[n++] = '\\';
        out[n++] = static_cast<char>(c);
        break;
      default:
        out[n++] = '\\';
        out[n++] = static_cast<char>('0' + c / 100);
        out[n++] = static_cast<char>('0' + (c / 10) % 10);
        out[n++] = static_cast<char>('0' + c % 10);
        break;
    }
  }
  return n;
}

struct Reader {
  const uint8_t* m;
  size_t n;

  // Reads the name starting at `pos`, following compression pointers.
  // On success `*end` is the offset just past the name where it started
  // (after the first pointer, if any). With `text` non-null the
  // presentation form is written there and its length to `*text_len`.
  bool read_name(size_t pos, size_t* end, char* text, size_t* text_len, DnsError* err) const {
    size_t p = pos;
    size_t bound = pos;  // a pointer must target an offset below this
    size_t wire = 0;
    size_t tn = 0;
    bool jumped = false;
    for (;;) {
      if (p >= n) {
        // Only reachable in place: pointer targets are below `bound`.
        *err = DnsError::kTruncatedRecord;
        return false;
      }
      const uint8_t c = m[p];
      if (c == 0) {
        if (!jumped) *end = p + 1;
        break;
      }
      const uint8_t kind = c & 0xC0;
      if (kind == 0xC0) {
        if (p + 1 >= n) {
          *err = DnsError::kTruncatedRecord;
          return false;
        }
        const size_t off = (static_cast<size_t>(c & 0x3F) << 8) | m[p + 1];
        if (!jumped) *end = p + 2;
        if (off >= bound || off < kHeaderLen) {
          *err = DnsError::kBadName;
          return false;
        }
        jumped = true;
        bound = off;
        p = off;
        continue;
      }
      if (kind != 0) {  // 0x40 and 0x80: extended and obsolete label types
        *err = DnsError::kBadName;
        return false;
      }
      const size_t len = c;  // <= 63 by the two zero top bits
      wire += 1 + len;
      if (wire + 1 > kMaxNameWire) {
        *err = DnsError::kBadName;
        return false;
      }
      if (p + 1 + len > n) {
        *err = jumped ? DnsError::kBadName : DnsError::kTruncatedRecord;
        return false;
      }
      if (text) {
        tn += append_label(text + tn, m + p + 1, len);
        text[tn++] = '.';
      }
      p += 1 + len;
    }
    if (text) {
      if (tn == 0) text[tn++] = '.';  // the root
      *text_len = tn;
    }
    return true;
  }

  // Skips a name without following pointers: only its in-place extent
  // matters. Labels and the pointer are still checked.
  bool skip_name(size_t pos, size_t* end, DnsError* err) const {
    size_t p = pos;
    size_t wire = 0;
    for (;;) {
      if (p >= n) {
        *err = DnsError::kTruncatedRecord;
        return false;
      }
      const uint8_t c = m[p];
      if (c == 0) {
        *end = p + 1;
        return true;
      }
      const uint8_t kind = c & 0xC0;
      if (kind == 0xC0) {
        if (p + 1 >= n) {
          *err = DnsError::kTruncatedRecord;
          return false;
        }
        const size_t off = (static_cast<size_t>(c & 0x3F) << 8) | m[p + 1];
        if (off >= p || off < kHeaderLen) {
          *err = DnsError::kBadName;
          return false;
        }
        *end = p + 2;
        return true;
      }
      if (kind != 0) {
        *err = DnsError::kBadName;
        return false;
      }
      wire += 1 + c;
      if (wire + 1 > kMaxNameWire) {
        *err = DnsError::kBadName;
        return false;
      }
      p += 1 + c;
    }
  }
};

static_assert(kMaxLabel == 0x3F);

}  // namespace

expected<void, DnsError> parse(std::span<const std::byte> msg, DnsInfo& out,
                               bool captured_prefix) noexcept {
  const Reader r{reinterpret_cast<const uint8_t*>(msg.data()), msg.size()};
  if (r.n < kHeaderLen) return unexpected(DnsError::kTooShort);

  out.ips.clear();
  out.id = rd16(r.m);
  const uint16_t flags = rd16(r.m + 2);
  const uint16_t qdcount = rd16(r.m + 4);
  const uint16_t ancount = rd16(r.m + 6);
  out.is_response = (flags & 0x8000) != 0;
  out.rcode = flags & 0x000F;
  out.answer_count = ancount;
  if (qdcount == 0) return unexpected(DnsError::kNoQuestion);

  // First question: its name becomes the query.
  DnsError err = DnsError::kBadName;
  char text[kMaxNameText];
  size_t text_len = 0;
  size_t pos = kHeaderLen;
  if (!r.read_name(pos, &pos, text, &text_len, &err)) return unexpected(err);
  if (pos + 4 > r.n) return unexpected(DnsError::kTruncatedRecord);
  out.qtype = rd16(r.m + pos);
  pos += 4;  // QTYPE, QCLASS
  out.query.assign(text, text_len);  // reuses capacity

  // Further questions (rare) are skipped.
  for (uint32_t q = 1; q < qdcount; ++q) {
    if (!r.skip_name(pos, &pos, &err)) {
      if (captured_prefix && err == DnsError::kTruncatedRecord) return {};
      return unexpected(err);
    }
    if (pos + 4 > r.n) {
      if (captured_prefix) return {};
      return unexpected(DnsError::kTruncatedRecord);
    }
    pos += 4;
  }

  for (uint32_t a = 0; a < ancount; ++a) {
    size_t rr = pos;
    if (!r.skip_name(pos, &rr, &err)) {
      if (captured_prefix && err == DnsError::kTruncatedRecord) return {};
      return unexpected(err);
    }
    if (rr + 10 > r.n) {
      if (captured_prefix) return {};
      return unexpected(DnsError::kTruncatedRecord);
    }
    const uint16_t type = rd16(r.m + rr);
    const uint16_t klass = rd16(r.m + rr + 2) & 0x7FFF;  // top bit: mDNS cache flush
    const uint16_t rdlen = rd16(r.m + rr + 8);
    const size_t rdata = rr + 10;
    if (rdata + rdlen > r.n) {
      if (captured_prefix) return {};
      return unexpected(DnsError::kTruncatedRecord);
    }
    if (klass == kClassIN) {
      if (type == kTypeA && rdlen == 4) out.ips.push_back(IpAddr::from_v4_bytes(r.m + rdata));
      else if (type == kTypeAAAA && rdlen == 16) out.ips.push_back(IpAddr::from_v6_bytes(r.m + rdata));
    }
    pos = rdata + rdlen;
  }
  return {};
}

}  // namespace dns_detail

expected<void, DnsError> parse_dns(std::span<const std::byte> msg, DnsInfo& out) noexcept {
  return dns_detail::parse(msg, out, false);
}

}  // namespace retina
