// Splits a streamed body into newline-delimited lines. A line may arrive
// split across any number of chunks; the unfinished tail is kept until its
// newline arrives.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace retina::k8s {

class LineBuffer {
 public:
  enum class Result { kOk, kStopped, kTooLong };

  explicit LineBuffer(size_t max_line) : max_line_(max_line) {}

  // Calls fn(line) for every complete line, without its "\n" or "\r\n";
  // blank lines are skipped. Stops when fn returns false (kStopped) or when
  // a line grows past max_line (kTooLong; the buffer is then cleared).
  template <class F>
  Result feed(std::string_view chunk, F&& fn) {
    while (!chunk.empty()) {
      const size_t nl = chunk.find('\n');
      if (nl == std::string_view::npos) {
        if (partial_.size() + chunk.size() > max_line_) {
          partial_.clear();
          return Result::kTooLong;
        }
        partial_.append(chunk);
        return Result::kOk;
      }
      std::string_view line = chunk.substr(0, nl);
      chunk.remove_prefix(nl + 1);
      if (!partial_.empty()) {
        if (partial_.size() + line.size() > max_line_) {
          partial_.clear();
          return Result::kTooLong;
        }
        partial_.append(line);
        line = partial_;
      } else if (line.size() > max_line_) {
        return Result::kTooLong;
      }
      if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
      const bool blank = line.find_first_not_of(" \t") == std::string_view::npos;
      const bool keep_going = blank || fn(line);
      partial_.clear();
      if (!keep_going) return Result::kStopped;
    }
    return Result::kOk;
  }

  size_t pending() const { return partial_.size(); }
  void clear() { partial_.clear(); }

 private:
  std::string partial_;
  size_t max_line_;
};

}  // namespace retina::k8s
