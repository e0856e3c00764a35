#include "capture/upload.hpp"

#include <curl/curl.h>
#include <sys/stat.h>

#include <cstdio>
#include <functional>
#include <memory>

#include <fmt/format.h>

namespace retina::capture {
namespace {

struct CurlDeleter {
  void operator()(CURL* c) const { curl_easy_cleanup(c); }
};
struct SlistDeleter {
  void operator()(curl_slist* s) const { curl_slist_free_all(s); }
};
struct FileDeleter {
  void operator()(std::FILE* f) const { std::fclose(f); }
};

size_t collect(char* data, size_t size, size_t n, void* user) {
  auto* out = static_cast<std::string*>(user);
  if (out->size() < 4096) out->append(data, size * n);
  return size * n;
}

// Keeps '/' and unreserved characters; S3 keys and SigV4 canonical paths
// expect the rest percent-encoded.
std::string encode_path(std::string_view s) {
  std::string out;
  for (unsigned char c : s) {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
        c == '.' || c == '~' || c == '/') {
      out.push_back(static_cast<char>(c));
    } else {
      out += fmt::format("%{:02X}", c);
    }
  }
  return out;
}

std::string trim_slashes(std::string s) {
  while (!s.empty() && s.front() == '/') s.erase(s.begin());
  while (!s.empty() && s.back() == '/') s.pop_back();
  return s;
}

// One PUT of a file; `setup` adds the storage-specific options.
Result<std::string> put_file(const std::string& url, const std::string& file_path, curl_slist* headers,
                             const std::function<void(CURL*)>& setup, std::string_view what) {
  std::unique_ptr<std::FILE, FileDeleter> f(std::fopen(file_path.c_str(), "rb"));
  if (!f) return unexpected(Error::system(fmt::format("{}: open({})", what, file_path), errno));
  struct stat st{};
  if (::fstat(fileno(f.get()), &st) != 0) return unexpected(Error::system(fmt::format("{}: stat", what), errno));
  std::unique_ptr<CURL, CurlDeleter> c(curl_easy_init());
  if (!c) return unexpected(Error::internal(fmt::format("{}: curl_easy_init failed", what)));
  std::string body;
  char errbuf[CURL_ERROR_SIZE] = {};
  curl_easy_setopt(c.get(), CURLOPT_URL, url.c_str());
  curl_easy_setopt(c.get(), CURLOPT_UPLOAD, 1L);
  curl_easy_setopt(c.get(), CURLOPT_READDATA, f.get());
  curl_easy_setopt(c.get(), CURLOPT_INFILESIZE_LARGE, static_cast<curl_off_t>(st.st_size));
  curl_easy_setopt(c.get(), CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(c.get(), CURLOPT_WRITEFUNCTION, &collect);
  curl_easy_setopt(c.get(), CURLOPT_WRITEDATA, &body);
  curl_easy_setopt(c.get(), CURLOPT_ERRORBUFFER, errbuf);
  curl_easy_setopt(c.get(), CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c.get(), CURLOPT_CONNECTTIMEOUT, 10L);
  curl_easy_setopt(c.get(), CURLOPT_TIMEOUT, 600L);
  curl_easy_setopt(c.get(), CURLOPT_PROTOCOLS_STR, "http,https");
  setup(c.get());
  const CURLcode rc = curl_easy_perform(c.get());
  if (rc != CURLE_OK) {
    return unexpected(Error::internal(fmt::format("{}: {}", what, errbuf[0] ? errbuf : curl_easy_strerror(rc))));
  }
  long status = 0;
  curl_easy_getinfo(c.get(), CURLINFO_RESPONSE_CODE, &status);
  if (status < 200 || status >= 300) {
    return unexpected(Error::internal(fmt::format("{}: HTTP {}: {}", what, status, body.substr(0, 512))));
  }
  return url;
}

}  // namespace

Result<std::string> upload_s3(const S3Upload& s3, const std::string& file_path, const std::string& file_name) {
  if (s3.access_key_id.empty() || s3.secret_access_key.empty()) {
    return unexpected(Error::invalid("s3Upload: no credentials (access key id and secret access key)"));
  }
  std::string endpoint = s3.endpoint.empty() ? fmt::format("https://s3.{}.amazonaws.com", s3.region) : s3.endpoint;
  while (!endpoint.empty() && endpoint.back() == '/') endpoint.pop_back();
  std::string key = trim_slashes(s3.path);
  key = key.empty() ? file_name : key + "/" + file_name;
  const std::string url = fmt::format("{}/{}/{}", endpoint, encode_path(s3.bucket), encode_path(key));
  const std::string sigv4 = fmt::format("aws:amz:{}:s3", s3.region);
  const std::string userpwd = s3.access_key_id + ":" + s3.secret_access_key;
  // S3 requires the payload hash header; an unsigned payload lets the file
  // stream without being read twice.
  std::unique_ptr<curl_slist, SlistDeleter> headers(curl_slist_append(nullptr, "x-amz-content-sha256: UNSIGNED-PAYLOAD"));
  headers.reset(curl_slist_append(headers.release(), "Content-Type: application/gzip"));
  return put_file(url, file_path, headers.get(),
                  [&](CURL* c) {
                    curl_easy_setopt(c, CURLOPT_AWS_SIGV4, sigv4.c_str());
                    curl_easy_setopt(c, CURLOPT_USERPWD, userpwd.c_str());
                  },
                  "s3 upload");
}

Result<std::string> upload_blob(const std::string& sas_url, const std::string& file_path, const std::string& file_name) {
  const size_t q = sas_url.find('?');
  if (q == std::string::npos || !(sas_url.starts_with("https://") || sas_url.starts_with("http://"))) {
    return unexpected(Error::invalid("blobUpload: expected a container SAS URL (https://...?sv=...)"));
  }
  std::string base = sas_url.substr(0, q);
  while (!base.empty() && base.back() == '/') base.pop_back();
  const std::string url = fmt::format("{}/{}{}", base, encode_path(file_name), sas_url.substr(q));
  std::unique_ptr<curl_slist, SlistDeleter> headers(curl_slist_append(nullptr, "x-ms-blob-type: BlockBlob"));
  headers.reset(curl_slist_append(headers.release(), "Content-Type: application/gzip"));
  auto r = put_file(url, file_path, headers.get(), [](CURL*) {}, "blob upload");
  if (!r) return unexpected(r.error());
  return base + "/" + encode_path(file_name);  // without the SAS token
}

}  // namespace retina::capture
