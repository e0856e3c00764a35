// Packet files: classic pcap through libpcap's pcap_dump, or pcapng (which
// libpcap reads but cannot write) with the interface name in its
// Interface Description Block.
#pragma once

#include <pcap/pcap.h>

#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>

#include "retina/capture.hpp"

namespace retina::capture {

class PacketWriter {
 public:
  // `live` gives the link type and snap length.
  static Result<std::unique_ptr<PacketWriter>> open(FileFormat format, const std::string& path, pcap_t* live,
                                                    const std::string& interface_name);
  ~PacketWriter();
  PacketWriter(const PacketWriter&) = delete;
  PacketWriter& operator=(const PacketWriter&) = delete;

  // Bytes one packet adds to the file.
  size_t record_size(const pcap_pkthdr& h) const;
  // Bytes written before the first packet.
  size_t header_size() const { return header_size_; }
  void write(const pcap_pkthdr& h, const u_char* data);
  // A write failed (ENOSPC...): later packets are not written.
  bool failed();
  // Flushes and closes; the write error (ENOSPC...) of any write, if one happened.
  retina::Status close();

 private:
  PacketWriter() = default;
  FileFormat format_ = FileFormat::kPcap;
  pcap_dumper_t* dumper_ = nullptr;  // pcap
  std::FILE* file_ = nullptr;        // pcapng
  size_t header_size_ = 0;
  bool failed_ = false;
  int error_ = 0;
  std::string path_;
};

}  // namespace retina::capture
