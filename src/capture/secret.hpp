// Upload credentials from Kubernetes Secrets, under the keys Retina's
// capture Secrets use. A Capture object names the Secret; only the agent
// reads it, so the keys never appear in the object.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <string_view>

#include "retina/capture.hpp"

namespace retina::capture {

constexpr const char* kSecretS3AccessKeyId = "s3-access-key-id";
constexpr const char* kSecretS3SecretAccessKey = "s3-secret-access-key";
constexpr const char* kSecretBlobUploadUrl = "blob-upload-url";

// A Secret object's `data`, base64-decoded, by key.
Result<std::map<std::string, std::string>> parse_secret_data(std::string_view json);

// Fills the spec's S3 keys and blob SAS URL from the Secrets it names
// (s3Upload.secretName; blobUpload when it is a Secret name rather than a
// URL). `read_secret(name)` returns the Secret's JSON from the capture's
// namespace.
Status resolve_secrets(Spec& spec, const std::function<Result<std::string>(const std::string& name)>& read_secret);

}  // namespace retina::capture
