// dnsmasq serving fixed answers in a pod namespace, for DNS traffic tests:
//   *.exists.test  A 10.9.9.9
//   *.v6.test      AAAA fd00::99
//   *.missing.test NXDOMAIN
// Stopped and its files removed on destruction.
#pragma once

#include <filesystem>
#include <functional>
#include <string>

#include "support/netns.hpp"

namespace retina::test {

class Dnsmasq {
 public:
  // `wrap` turns the command line into the one to run (e.g. to start it in
  // a cgroup); none runs it as is.
  explicit Dnsmasq(const Pod& pod, const std::function<std::string(const std::string&)>& wrap = {});
  ~Dnsmasq();
  Dnsmasq(const Dnsmasq&) = delete;
  Dnsmasq& operator=(const Dnsmasq&) = delete;
  std::string log() const;

 private:
  std::filesystem::path dir_;
  int pid_ = 0;
};

}  // namespace retina::test
