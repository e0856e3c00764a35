// A small S3-compatible endpoint for tests: accepts PUT /<bucket>/<key> on
// 127.0.0.1 (a free port) and checks each request's AWS Signature Version
// 4 by recomputing it from the request with the known secret key. Also
// takes Azure blob PUTs (x-ms-blob-type) with a fixed SAS token.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace retina::test {

struct S3Object {
  std::string path;     // "/bucket/key"
  std::string body;
  bool signature_ok = false;
  std::string problem;  // why the signature did not check out
  std::string authorization;
};

class FakeS3 {
 public:
  FakeS3(std::string access_key, std::string secret_key, std::string region);
  ~FakeS3();
  FakeS3(const FakeS3&) = delete;
  FakeS3& operator=(const FakeS3&) = delete;

  std::string url() const;  // "http://127.0.0.1:<port>"
  std::vector<S3Object> objects() const;

  struct State;

 private:
  std::unique_ptr<State> s_;
};

}  // namespace retina::test
