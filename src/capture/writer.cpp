#include "capture/writer.hpp"

#include <errno.h>

#include <cstring>
#include <vector>

#include <fmt/format.h>

namespace retina::capture {
namespace {

constexpr size_t kPcapFileHeader = 24;
constexpr size_t kPcapRecordHeader = 16;
constexpr size_t kEpbOverhead = 32;  // block header(8) + ifid, ts(12) + lens(8) + trailing length(4)

size_t pad4(size_t n) { return (n + 3) & ~size_t{3}; }

void put32(std::vector<uint8_t>& b, uint32_t v) {
  const auto* p = reinterpret_cast<const uint8_t*>(&v);
  b.insert(b.end(), p, p + 4);
}
void put16(std::vector<uint8_t>& b, uint16_t v) {
  const auto* p = reinterpret_cast<const uint8_t*>(&v);
  b.insert(b.end(), p, p + 2);
}
void put_option(std::vector<uint8_t>& b, uint16_t code, const void* data, size_t len) {
  put16(b, code);
  put16(b, static_cast<uint16_t>(len));
  const auto* p = static_cast<const uint8_t*>(data);
  b.insert(b.end(), p, p + len);
  b.resize(pad4(b.size()), 0);
}
// Sets the two length fields of a block built in `b` (first and last word).
void close_block(std::vector<uint8_t>& b) {
  put32(b, 0);
  const uint32_t len = static_cast<uint32_t>(b.size());
  std::memcpy(b.data() + 4, &len, 4);
  std::memcpy(b.data() + b.size() - 4, &len, 4);
}

}  // namespace

Result<std::unique_ptr<PacketWriter>> PacketWriter::open(FileFormat format, const std::string& path, pcap_t* live,
                                                         const std::string& interface_name) {
  std::unique_ptr<PacketWriter> w(new PacketWriter());
  w->format_ = format;
  w->path_ = path;
  if (format == FileFormat::kPcap) {
    w->dumper_ = pcap_dump_open(live, path.c_str());
    if (!w->dumper_) return unexpected(Error::internal(fmt::format("pcap_dump_open({}): {}", path, pcap_geterr(live))));
    w->header_size_ = kPcapFileHeader;
    return w;
  }
  w->file_ = std::fopen(path.c_str(), "wbx");
  if (!w->file_) return unexpected(Error::system(fmt::format("fopen({})", path), errno));
  // Section Header Block, then one Interface Description Block naming the interface.
  std::vector<uint8_t> b;
  put32(b, 0x0A0D0D0A);
  put32(b, 0);
  put32(b, 0x1A2B3C4D);
  put16(b, 1);
  put16(b, 0);
  put32(b, 0xFFFFFFFF);  // section length unknown
  put32(b, 0xFFFFFFFF);
  const char* app = "retina";
  put_option(b, 4 /* shb_userappl */, app, std::strlen(app));
  put_option(b, 0, nullptr, 0);
  close_block(b);
  const size_t shb = b.size();
  put32(b, 1);  // IDB
  put32(b, 0);
  put16(b, static_cast<uint16_t>(pcap_datalink(live)));
  put16(b, 0);
  put32(b, static_cast<uint32_t>(pcap_snapshot(live)));
  put_option(b, 2 /* if_name */, interface_name.data(), interface_name.size());
  const uint8_t tsresol = 6;  // microseconds, as pcap_pkthdr carries
  put_option(b, 9 /* if_tsresol */, &tsresol, 1);
  put_option(b, 0, nullptr, 0);
  {
    put32(b, 0);
    const uint32_t len = static_cast<uint32_t>(b.size() - shb);
    std::memcpy(b.data() + shb + 4, &len, 4);
    std::memcpy(b.data() + b.size() - 4, &len, 4);
  }
  if (std::fwrite(b.data(), 1, b.size(), w->file_) != b.size()) {
    const int err = errno;
    std::fclose(w->file_);
    w->file_ = nullptr;
    return unexpected(Error::system(fmt::format("write({})", path), err));
  }
  w->header_size_ = b.size();
  return w;
}

PacketWriter::~PacketWriter() { (void)close(); }

size_t PacketWriter::record_size(const pcap_pkthdr& h) const {
  return format_ == FileFormat::kPcap ? kPcapRecordHeader + h.caplen : kEpbOverhead + pad4(h.caplen);
}

void PacketWriter::write(const pcap_pkthdr& h, const u_char* data) {
  if (failed_) return;
  if (dumper_) {
    pcap_dump(reinterpret_cast<u_char*>(dumper_), &h, data);
    return;
  }
  uint32_t head[7];
  const uint32_t len = static_cast<uint32_t>(record_size(h));
  const uint64_t ts = static_cast<uint64_t>(h.ts.tv_sec) * 1000000u + static_cast<uint64_t>(h.ts.tv_usec);
  head[0] = 6;  // Enhanced Packet Block
  head[1] = len;
  head[2] = 0;  // interface 0
  head[3] = static_cast<uint32_t>(ts >> 32);
  head[4] = static_cast<uint32_t>(ts);
  head[5] = h.caplen;
  head[6] = h.len;
  static constexpr uint8_t kZero[4] = {};
  const size_t pad = pad4(h.caplen) - h.caplen;
  if (std::fwrite(head, 1, sizeof head, file_) != sizeof head || std::fwrite(data, 1, h.caplen, file_) != h.caplen ||
      std::fwrite(kZero, 1, pad, file_) != pad || std::fwrite(&len, 1, 4, file_) != 4) {
    failed_ = true;
    error_ = errno;
  }
}

bool PacketWriter::failed() {
  if (!failed_ && dumper_) {
    // pcap_dump reports nothing; the stdio stream remembers the error.
    std::FILE* f = pcap_dump_file(dumper_);
    if (f && std::ferror(f)) {
      failed_ = true;
      error_ = errno ? errno : EIO;
    }
  }
  return failed_;
}

retina::Status PacketWriter::close() {
  int err = error_;
  if (dumper_) {
    if (pcap_dump_flush(dumper_) != 0 && err == 0) err = errno ? errno : EIO;
    std::FILE* f = pcap_dump_file(dumper_);
    if (f && std::ferror(f) && err == 0) err = errno ? errno : EIO;
    pcap_dump_close(dumper_);
    dumper_ = nullptr;
  }
  if (file_) {
    if (std::fflush(file_) != 0 && err == 0) err = errno;
    if (std::fclose(file_) != 0 && err == 0) err = errno;
    file_ = nullptr;
  }
  error_ = 0;
  failed_ = false;
  if (err) return unexpected(Error::system(fmt::format("write({})", path_), err));
  return ok();
}

}  // namespace retina::capture
