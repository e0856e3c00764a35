// simdjson (on-demand) parsers for LIST pages, watch-event lines and Status
// bodies. Fields the watcher does not need are skipped, never materialised.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "k8s/objects.hpp"
#include "retina/error.hpp"

namespace retina::k8s {

// One parser per stream thread (not thread safe); it reuses its buffers.
class JsonParser {
 public:
  JsonParser();
  ~JsonParser();
  JsonParser(const JsonParser&) = delete;
  JsonParser& operator=(const JsonParser&) = delete;

  // Parses a LIST response page; items are appended to page.items. The body
  // may be padded in place (its capacity grows), its contents stay the same.
  template <class T>
  Status parse_list(std::string& body, ListPage<T>& page);

  // Parses one watch-event line: {"type":"ADDED","object":{...}}.
  template <class T>
  Result<WatchEvent<T>> parse_event(std::string_view line);

  // A metav1.Status body; all fields empty when it is not one.
  ApiStatus parse_status(std::string_view body);

  // A MetricsConfiguration object or bare spec, validated (see
  // retina::k8s::parse_metrics_configuration).
  Result<MetricsConfigurationSpec> parse_metrics_configuration(std::string_view json);

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace retina::k8s
