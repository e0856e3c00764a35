#include "support/fake_s3.hpp"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#include <algorithm>
#include <map>
#include <sstream>
#include <thread>

#include <fmt/format.h>
#include <httplib.h>

namespace retina::test {
namespace {

std::string hex(const unsigned char* d, size_t n) {
  std::string out;
  for (size_t i = 0; i < n; ++i) out += fmt::format("{:02x}", d[i]);
  return out;
}

std::string sha256_hex(std::string_view s) {
  unsigned char d[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(s.data()), s.size(), d);
  return hex(d, sizeof d);
}

std::string hmac(std::string_view key, std::string_view msg) {
  unsigned char d[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), reinterpret_cast<const unsigned char*>(msg.data()),
       msg.size(), d, &n);
  return std::string(reinterpret_cast<char*>(d), n);
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

std::string trim(std::string s) {
  while (!s.empty() && s.front() == ' ') s.erase(s.begin());
  while (!s.empty() && s.back() == ' ') s.pop_back();
  return s;
}

}  // namespace

struct FakeS3::State {
  std::string access_key, secret_key, region;
  httplib::Server server;
  std::thread thread;
  int port = 0;
  mutable std::mutex mu;
  std::vector<S3Object> objects;

  // Recomputes the request's SigV4 signature; empty when it matches.
  std::string check(const httplib::Request& req) const {
    const std::string auth = req.get_header_value("Authorization");
    const std::string prefix = "AWS4-HMAC-SHA256 ";
    if (auth.rfind(prefix, 0) != 0) return "Authorization is not AWS4-HMAC-SHA256: " + auth;
    std::map<std::string, std::string> parts;
    std::istringstream in(auth.substr(prefix.size()));
    for (std::string part; std::getline(in, part, ',');) {
      part = trim(part);
      const size_t eq = part.find('=');
      if (eq != std::string::npos) parts[part.substr(0, eq)] = part.substr(eq + 1);
    }
    const std::string date = req.get_header_value("x-amz-date");
    if (date.size() != 16) return "x-amz-date missing or malformed: " + date;
    const std::string day = date.substr(0, 8);
    const std::string scope = fmt::format("{}/{}/s3/aws4_request", day, region);
    if (parts["Credential"] != access_key + "/" + scope) return "unexpected Credential " + parts["Credential"];
    const std::string payload_hash = req.get_header_value("x-amz-content-sha256");
    if (payload_hash.empty()) return "x-amz-content-sha256 missing";
    if (payload_hash != "UNSIGNED-PAYLOAD" && payload_hash != sha256_hex(req.body)) return "payload hash mismatch";
    std::string canonical_headers;
    std::istringstream sh(parts["SignedHeaders"]);
    bool has_host = false;
    for (std::string h; std::getline(sh, h, ';');) {
      has_host = has_host || h == "host";
      canonical_headers += lower(h) + ":" + trim(req.get_header_value(h.c_str())) + "\n";
    }
    if (!has_host) return "host is not signed";
    std::string target = req.target;
    std::string query;
    if (const size_t q = target.find('?'); q != std::string::npos) {
      query = target.substr(q + 1);
      target.resize(q);
    }
    const std::string canonical = fmt::format("{}\n{}\n{}\n{}\n{}\n{}", req.method, target, query, canonical_headers,
                                              parts["SignedHeaders"], payload_hash);
    const std::string to_sign = fmt::format("AWS4-HMAC-SHA256\n{}\n{}\n{}", date, scope, sha256_hex(canonical));
    std::string key = hmac("AWS4" + secret_key, day);
    key = hmac(key, region);
    key = hmac(key, "s3");
    key = hmac(key, "aws4_request");
    const std::string sig = hmac(key, to_sign);
    const std::string expected = hex(reinterpret_cast<const unsigned char*>(sig.data()), sig.size());
    if (parts["Signature"] != expected) return "signature mismatch; canonical request was:\n" + canonical;
    return {};
  }
};

FakeS3::FakeS3(std::string access_key, std::string secret_key, std::string region) : s_(std::make_unique<State>()) {
  s_->access_key = std::move(access_key);
  s_->secret_key = std::move(secret_key);
  s_->region = std::move(region);
  s_->server.Put(".*", [this](const httplib::Request& req, httplib::Response& res) {
    S3Object o;
    o.path = req.path;
    o.body = req.body;
    o.authorization = req.get_header_value("Authorization");
    if (req.has_header("x-ms-blob-type")) {
      o.signature_ok = req.get_param_value("sig") == "fakesig" && req.get_header_value("x-ms-blob-type") == "BlockBlob";
      if (!o.signature_ok) o.problem = "bad SAS token or blob type";
    } else {
      o.problem = s_->check(req);
      o.signature_ok = o.problem.empty();
    }
    res.status = o.signature_ok ? 200 : 403;
    {
      std::lock_guard lock(s_->mu);
      s_->objects.push_back(std::move(o));
    }
  });
  s_->port = s_->server.bind_to_any_port("127.0.0.1");
  if (s_->port <= 0) throw std::runtime_error("fake S3: cannot bind");
  s_->thread = std::thread([this] { s_->server.listen_after_bind(); });
  while (!s_->server.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
}

FakeS3::~FakeS3() {
  s_->server.stop();
  if (s_->thread.joinable()) s_->thread.join();
}

std::string FakeS3::url() const { return fmt::format("http://127.0.0.1:{}", s_->port); }

std::vector<S3Object> FakeS3::objects() const {
  std::lock_guard lock(s_->mu);
  return s_->objects;
}

}  // namespace retina::test
