#include "capture/secret.hpp"

#include <absl/strings/escaping.h>
#include <fmt/format.h>
#include <simdjson.h>

namespace retina::capture {

Result<std::map<std::string, std::string>> parse_secret_data(std::string_view json) {
  namespace dom = simdjson::dom;
  dom::parser parser;
  dom::element doc;
  if (auto e = parser.parse(simdjson::padded_string(json)).get(doc)) {
    return unexpected(Error::parse(fmt::format("Secret: invalid JSON ({})", simdjson::error_message(e))));
  }
  std::map<std::string, std::string> out;
  dom::element data;
  if (doc.at_key("data").get(data) || data.is_null()) return out;
  dom::object fields;
  if (data.get_object().get(fields)) return unexpected(Error::parse("Secret: data must be an object"));
  for (auto [key, value] : fields) {
    std::string_view encoded;
    if (value.get_string().get(encoded)) {
      return unexpected(Error::parse(fmt::format("Secret: data.{} must be a base64 string", key)));
    }
    std::string decoded;
    if (!absl::Base64Unescape(absl::string_view(encoded.data(), encoded.size()), &decoded)) {
      return unexpected(Error::parse(fmt::format("Secret: data.{} is not valid base64", key)));
    }
    out.insert_or_assign(std::string(key), std::move(decoded));
  }
  return out;
}

namespace {

Status fill_from_secret(Spec& spec, bool s3, std::string_view secret_json) {
  const std::string& name = s3 ? spec.s3.secret_name : spec.blob_secret_name;
  auto data = parse_secret_data(secret_json);
  if (!data) return unexpected(Error::invalid(fmt::format("Secret {}: {}", name, data.error().message)));
  auto take = [&](const char* key, std::string& into) -> Status {
    auto it = data->find(key);
    std::string v = it == data->end() ? std::string() : it->second;
    // Values written with `echo` carry a trailing newline.
    while (!v.empty() && (v.back() == '\n' || v.back() == '\r')) v.pop_back();
    if (v.empty()) return unexpected(Error::invalid(fmt::format("Secret {} has no {} key", name, key)));
    into = std::move(v);
    return ok();
  };
  if (s3) {
    if (auto st = take(kSecretS3AccessKeyId, spec.s3.access_key_id); !st) return st;
    return take(kSecretS3SecretAccessKey, spec.s3.secret_access_key);
  }
  return take(kSecretBlobUploadUrl, spec.blob_sas_url);
}

}  // namespace

Status resolve_secrets(Spec& spec, const std::function<Result<std::string>(const std::string& name)>& read_secret) {
  if (spec.s3.enabled() && !spec.s3.secret_name.empty()) {
    auto json = read_secret(spec.s3.secret_name);
    if (!json) return unexpected(json.error());
    if (auto st = fill_from_secret(spec, true, *json); !st) return st;
  }
  if (!spec.blob_secret_name.empty()) {
    auto json = read_secret(spec.blob_secret_name);
    if (!json) return unexpected(json.error());
    if (auto st = fill_from_secret(spec, false, *json); !st) return st;
  }
  return ok();
}

}  // namespace retina::capture
