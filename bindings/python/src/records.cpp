#include "records.hpp"

#include <fmt/format.h>

namespace retina::py {

namespace {

bool is_buffer(py::handle h) { return PyObject_CheckBuffer(h.ptr()) != 0; }

std::span<const std::byte> span_of(const py::buffer_info& info) {
  return {static_cast<const std::byte*>(info.ptr), static_cast<size_t>(info.size * info.itemsize)};
}

}  // namespace

RecordSet::RecordSet(py::handle data, size_t align) {
  if (align < 1 || align > 4096) raise_invalid(fmt::format("align: {} is not from 1 to 4096", align));
  if (is_buffer(data)) {
    py::buffer buf = py::reinterpret_borrow<py::buffer>(data);
    buffers_.push_back(buf.request());
    keep_ = buf;
    if (!PyBuffer_IsContiguous(buffers_.back().view(), 'C')) raise_invalid("records: the buffer is not contiguous");
    split(span_of(buffers_.back()), align);
    return;
  }
  if (py::isinstance<py::str>(data) || !py::isinstance<py::iterable>(data)) {
    raise_invalid("records: expected bytes-like data or an iterable of bytes-like records");
  }
  // A tuple copy keeps every item alive however the caller's list changes.
  py::tuple items(py::reinterpret_borrow<py::iterable>(data));
  keep_ = items;
  buffers_.reserve(items.size());
  for (size_t i = 0; i < items.size(); ++i) {
    py::handle item = items[i];
    if (!is_buffer(item) || py::isinstance<py::str>(item)) {
      raise_invalid(fmt::format("records[{}]: expected a bytes-like record, got {}", i,
                                py::str(py::type::handle_of(item).attr("__name__")).cast<std::string>()));
    }
    buffers_.push_back(py::reinterpret_borrow<py::buffer>(item).request());
    if (!PyBuffer_IsContiguous(buffers_.back().view(), 'C')) {
      raise_invalid(fmt::format("records[{}]: the buffer is not contiguous", i));
    }
    add(span_of(buffers_.back()), i, 0);
  }
}

// A batch's records are taken one by one; a batch that cannot be split is
// kept whole, for decode() to say why.
void RecordSet::add(std::span<const std::byte> rec, size_t index, size_t offset) {
  if (is_batch(rec)) {
    if (auto batch = split_batch(rec)) {
      for (size_t i = 0; i < batch->count; ++i)
        records_.push_back({batch->record(i), index, offset + sizeof(retina_batch_hdr) + i * batch->stride});
      return;
    }
  }
  records_.push_back({rec, index, offset});
}

void RecordSet::split(std::span<const std::byte> buf, size_t align) {
  size_t off = 0;
  size_t index = 0;
  while (off < buf.size()) {
    const size_t left = buf.size() - off;
    if (left < sizeof(retina_event_hdr)) {
      framing_ = FramingError{DecodeError::kTooShort,
                              fmt::format("record {} at offset {}: {} bytes left, shorter than a record header "
                                          "({} bytes)",
                                          index, off, left, sizeof(retina_event_hdr))};
      return;
    }
    uint16_t len = 0;
    std::memcpy(&len, buf.data() + off + offsetof(retina_event_hdr, len), sizeof len);
    if (len < sizeof(retina_event_hdr) || len > left) {
      framing_ = FramingError{DecodeError::kLengthMismatch,
                              fmt::format("record {} at offset {}: header length {} does not fit ({} bytes left, "
                                          "header {} bytes); cannot find the next record",
                                          index, off, len, left, sizeof(retina_event_hdr))};
      return;
    }
    add(buf.subspan(off, len), index, off);
    const size_t step = (static_cast<size_t>(len) + align - 1) / align * align;
    off = std::min(buf.size(), off + step);
    ++index;
  }
}

py::dict RejectCounts::to_dict() const {
  py::dict d;
  for (size_t i = 0; i < static_cast<size_t>(DecodeError::kCount); ++i) {
    if (by_reason[i]) d[to_string(static_cast<DecodeError>(i))] = by_reason[i];
  }
  return d;
}

}  // namespace retina::py
