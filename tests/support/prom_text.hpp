// Parses Prometheus text exposition (0.0.4) strictly, for tests: every
// sample must belong to a family announced by HELP and TYPE lines, and a
// family's samples must be contiguous.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace retina::test {

struct PromSample {
  std::string name;
  std::map<std::string, std::string> labels;
  double value = 0;
};

struct PromFamily {
  std::string name, help, type;
  std::vector<PromSample> samples;
};

struct PromText {
  std::vector<PromFamily> families;
  // Empty on success; otherwise the first problem with its line number.
  std::string error;

  const PromFamily* family(std::string_view name) const;
  // Value of the one sample of `name` whose labels include all of `labels`;
  // nullopt if none. Sums when several match and `sum` is true.
  std::optional<double> value(std::string_view name, const std::map<std::string, std::string>& labels = {},
                              bool sum = false) const;
};

PromText parse_prom_text(std::string_view text);

}  // namespace retina::test
