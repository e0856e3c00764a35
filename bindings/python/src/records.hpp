// Splitting Python input into ring-buffer records: a bytes-like buffer of
// records back to back (each hdr.len bytes, rounded up to `align`), or an
// iterable of bytes-like objects holding one record each. A batch record
// counts as the records it holds (RecordRef::index is the batch's).
#pragma once

#include <cstddef>
#include <cstring>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "bindings.hpp"
#include "retina/abi/events.h"

namespace retina::py {

struct RecordRef {
  std::span<const std::byte> bytes;
  size_t index = 0;
  size_t offset = 0;  // in the buffer; 0 for list items
};

// Why a buffer could not be split; framing cannot resume after one.
struct FramingError {
  DecodeError reason;
  std::string message;
};

// Holds the Python objects the spans point into.
class RecordSet {
 public:
  // Accepts a bytes-like object or an iterable of them.
  RecordSet(py::handle data, size_t align);
  const std::vector<RecordRef>& records() const { return records_; }
  const std::optional<FramingError>& framing_error() const { return framing_; }

 private:
  void split(std::span<const std::byte> buf, size_t align);
  void add(std::span<const std::byte> rec, size_t index, size_t offset);
  std::vector<py::buffer_info> buffers_;
  py::object keep_;
  std::vector<RecordRef> records_;
  std::optional<FramingError> framing_;
};

// Per-reason counts of rejected records, named as DecodeError's to_string.
struct RejectCounts {
  uint64_t by_reason[static_cast<size_t>(DecodeError::kCount)] = {};
  uint64_t total() const {
    uint64_t t = 0;
    for (uint64_t n : by_reason) t += n;
    return t;
  }
  py::dict to_dict() const;
};

}  // namespace retina::py
