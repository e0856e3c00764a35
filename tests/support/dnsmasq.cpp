#include "support/dnsmasq.hpp"

#include <signal.h>

#include <chrono>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <thread>

#include <fmt/format.h>

namespace retina::test {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

Dnsmasq::Dnsmasq(const Pod& pod, const std::function<std::string(const std::string&)>& wrap)
    : dir_(fs::temp_directory_path() / fmt::format("retina-dnsmasq-{}", unique_tag())) {
  fs::create_directories(dir_);
  const std::string cmd = fmt::format(
      "ip netns exec {} dnsmasq --no-resolv --no-hosts --port=53 --bind-interfaces --listen-address={} "
      "--listen-address={} --address=/exists.test/10.9.9.9 --address=/v6.test/fd00::99 --address=/missing.test/ "
      "--user=root --pid-file={}/pid --log-facility={}/log --log-queries",
      pod.ns, pod.ipv4, pod.ipv6, dir_.string(), dir_.string());
  sh(wrap ? wrap(cmd) : cmd);
  for (int i = 0; i < 200 && pid_ <= 0; ++i) {
    std::ifstream f(dir_ / "pid");
    if (!(f >> pid_)) std::this_thread::sleep_for(10ms);
  }
  if (pid_ <= 0) throw std::runtime_error("dnsmasq wrote no pid file");
}

Dnsmasq::~Dnsmasq() {
  if (pid_ > 0) {
    ::kill(pid_, SIGTERM);
    for (int i = 0; i < 200 && ::kill(pid_, 0) == 0; ++i) std::this_thread::sleep_for(10ms);
    if (::kill(pid_, 0) == 0) ::kill(pid_, SIGKILL);
  }
  std::error_code ec;
  fs::remove_all(dir_, ec);
}

std::string Dnsmasq::log() const {
  std::ifstream f(dir_ / "log");
  return std::string(std::istreambuf_iterator<char>(f), {});
}

}  // namespace retina::test
