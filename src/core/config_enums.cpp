// The Config's enums as the text config.yaml and logs use. Core code (the
// logger) prints them; reading config.yaml belongs to the engine layer.
#include "retina/config.hpp"

namespace retina {

const char* to_string(LogLevel l) {
  switch (l) {
    case LogLevel::kTrace: return "trace";
    case LogLevel::kDebug: return "debug";
    case LogLevel::kInfo: return "info";
    case LogLevel::kWarn: return "warn";
    case LogLevel::kError: return "error";
  }
  return "info";
}

const char* to_string(AggregationLevel a) { return a == AggregationLevel::kLow ? "low" : "high"; }

}  // namespace retina
