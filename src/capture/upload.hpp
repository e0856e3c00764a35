// Uploads of a finished bundle: S3-compatible storage signed with AWS SigV4
// (libcurl's CURLOPT_AWS_SIGV4) and Azure blob storage through a SAS URL.
#pragma once

#include <string>

#include "retina/capture.hpp"

namespace retina::capture {

// PUT <endpoint>/<bucket>/<path>/<file name>; returns the object URL.
Result<std::string> upload_s3(const S3Upload& s3, const std::string& file_path, const std::string& file_name);
// PUT <container URL>/<file name>?<sas> with x-ms-blob-type: BlockBlob.
Result<std::string> upload_blob(const std::string& sas_url, const std::string& file_path, const std::string& file_name);

}  // namespace retina::capture
