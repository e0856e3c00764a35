// Capture specs as JSON: the agent API body and whole Capture objects.
// Every input either parses or gives an error; a parsed spec writes JSON
// that parses back to the same JSON, and its filter shortcuts either build
// or give an error. The same input is read as a Secret holding upload
// credentials: decoded keys fill a spec or give an error.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "capture/secret.hpp"
#include "retina/capture.hpp"

namespace {

void secret(std::string_view json) {
  (void)retina::capture::parse_secret_data(json);
  retina::capture::Spec spec;
  spec.s3.bucket = "b";
  spec.s3.secret_name = "s3";
  spec.blob_secret_name = "blob";
  auto st = retina::capture::resolve_secrets(spec, [&](const std::string&) -> retina::Result<std::string> {
    return std::string(json);
  });
  if (st && (spec.s3.access_key_id.empty() || spec.s3.secret_access_key.empty() || spec.blob_sas_url.empty())) {
    __builtin_trap();
  }
  // Files others read never hold the keys.
  const auto clean = retina::capture::without_credentials(spec);
  if (!clean.s3.access_key_id.empty() || clean.blob_sas_url.find('?') != std::string::npos) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view json(reinterpret_cast<const char*>(data), size);
  secret(json);
  auto spec = retina::capture::parse_request_json(json);
  if (!spec) return 0;
  const std::string out = retina::capture::spec_to_json(*spec);
  auto again = retina::capture::parse_spec_json(out, spec->name);
  if (!again || retina::capture::spec_to_json(*again) != out) __builtin_trap();
  (void)retina::capture::build_filter(*spec);
  for (const auto& r : spec->pod_selector.requirements) {
    if (r.key.empty()) __builtin_trap();
  }
  return 0;
}
