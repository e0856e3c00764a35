// Capability sets: names, /proc parsing, dropping every thread's sets, and
// the plugin table against what the DaemonSet asks for and what
// docs/security.md lists.
#include <catch2/catch.hpp>

#include <dirent.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <fstream>
#include <map>
#include <mutex>
#include <regex>
#include <sstream>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include "core/file.hpp"
#include "retina/capabilities.hpp"
#include "retina/capture.hpp"
#include "retina/plugin.hpp"

using namespace retina;
using C = Capability;

namespace {

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

CapabilitySet parse_names(const std::string& list) {
  CapabilitySet out;
  const std::regex name("`([A-Z_]+)`");
  for (std::sregex_iterator it(list.begin(), list.end(), name), end; it != end; ++it) {
    auto c = parse_capability((*it)[1].str());
    REQUIRE(c);
    out |= CapabilitySet{*c};
  }
  return out;
}

}  // namespace

TEST_CASE("capabilities: names, sets and parsing", "[capabilities]") {
  const CapabilitySet s{C::kNetRaw, C::kBpf, C::kNetAdmin};
  CHECK(to_string(s) == "CAP_NET_ADMIN, CAP_NET_RAW, CAP_BPF");
  CHECK(short_names(s) == std::vector<std::string>{"NET_ADMIN", "NET_RAW", "BPF"});
  CHECK(to_string(CapabilitySet{}) == "none");
  CHECK(capability_name(40) == "CAP_CHECKPOINT_RESTORE");
  CHECK(capability_name(50) == "CAP_50");
  CHECK(parse_capability("net_admin") == C::kNetAdmin);
  CHECK(parse_capability("CAP_PERFMON") == C::kPerfmon);
  CHECK(parse_capability("Setpcap") == C::kSetpcap);
  CHECK_FALSE(parse_capability("NET_WIZARD"));
  CHECK(s.contains(CapabilitySet{C::kBpf}));
  CHECK_FALSE(s.contains(CapabilitySet{C::kBpf, C::kPerfmon}));
  CHECK((s - CapabilitySet{C::kBpf}) == CapabilitySet{C::kNetRaw, C::kNetAdmin});
  CHECK((s & CapabilitySet{C::kBpf, C::kPerfmon}) == CapabilitySet{C::kBpf});
  // Kernels with CAP_BPF (this one has it): SYS_ADMIN does not stand in.
  CHECK(missing_capabilities(CapabilitySet{C::kBpf, C::kNetAdmin}, CapabilitySet{C::kNetAdmin}) ==
        CapabilitySet{C::kBpf});
  CHECK(missing_capabilities(CapabilitySet{C::kBpf}, CapabilitySet{C::kBpf, C::kNetRaw}).empty());
}

TEST_CASE("capabilities: /proc status lines parse, and bad ones are refused", "[capabilities]") {
  const std::string status =
      "Name:\tretina-agent\nUmask:\t0022\nCapInh:\t0000000000000000\nCapPrm:\t0000000000003000\n"
      "CapEff:\t0000000000003000\nCapBnd:\t000000c000003100\nCapAmb:\t0000000000000000\nNoNewPrivs:\t1\n";
  auto caps = parse_status_capabilities(status);
  REQUIRE(caps);
  CHECK(caps->effective == CapabilitySet{C::kNetAdmin, C::kNetRaw});
  CHECK(caps->permitted == caps->effective);
  CHECK(caps->bounding == CapabilitySet{C::kNetAdmin, C::kNetRaw, C::kSetpcap, C::kBpf, C::kPerfmon});
  CHECK(caps->inheritable.empty());
  CHECK(caps->ambient.empty());
  CHECK_FALSE(parse_status_capabilities("CapInh:\t0\nCapPrm:\t0\n"));
  auto bad = parse_status_capabilities("CapInh:\tzz\nCapPrm:\t0\nCapEff:\t0\nCapBnd:\t0\nCapAmb:\t0\n");
  REQUIRE_FALSE(bad);
  CHECK(bad.error().message.find("CapInh") != std::string::npos);
}

TEST_CASE("capabilities: the calling thread's sets are what /proc says", "[capabilities]") {
  auto mine = current_capabilities();
  REQUIRE(mine);
  auto text = read_file(fmt::format("/proc/self/task/{}/status", ::syscall(SYS_gettid)));
  REQUIRE(text);
  auto proc = parse_status_capabilities(*text);
  REQUIRE(proc);
  CHECK(mine->effective == proc->effective);
  CHECK(mine->permitted == proc->permitted);
  CHECK(mine->inheritable == proc->inheritable);
  CHECK(mine->bounding == proc->bounding);
  CHECK(mine->ambient == proc->ambient);
}

// In a child process: threads that exist before the drop, one of them
// blocking the drop signal for a while, all end up with the kept set.
TEST_CASE("capabilities: restrict_capabilities lowers every thread of the process", "[capabilities]") {
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    std::mutex mu;
    std::condition_variable cv;
    bool done = false;
    std::vector<std::thread> threads;
    for (int i = 0; i < 4; ++i) {
      threads.emplace_back([&, i] {
        if (i == 0) {
          // Blocks the signal for 200 ms: the drop waits for it.
          sigset_t all;
          sigfillset(&all);
          pthread_sigmask(SIG_BLOCK, &all, nullptr);
          std::this_thread::sleep_for(std::chrono::milliseconds(200));
          pthread_sigmask(SIG_UNBLOCK, &all, nullptr);
        }
        std::unique_lock l(mu);
        cv.wait(l, [&] { return done; });
      });
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    auto before = current_capabilities();
    const CapabilitySet keep{C::kNetRaw};
    auto dropped = restrict_capabilities(keep);
    int rc = 0;
    if (!before || !dropped) rc = 10;
    const CapabilitySet expected = before ? (before->permitted & keep) : CapabilitySet{};
    if (!rc && !(dropped->kept == expected)) rc = 11;
    if (!rc && !(dropped->dropped == (before->permitted - keep))) rc = 12;
    if (!rc) {
      // Every task of this process, read back from /proc.
      std::vector<std::string> tasks;
      if (DIR* d = ::opendir("/proc/self/task")) {
        while (dirent* e = ::readdir(d))
          if (e->d_name[0] != '.') tasks.push_back(e->d_name);
        ::closedir(d);
      }
      if (tasks.size() != 5) rc = 13;
      for (const auto& tid : tasks) {
        auto text = read_file("/proc/self/task/" + tid + "/status");
        auto caps = text ? parse_status_capabilities(*text) : Result<ThreadCapabilities>(unexpected(text.error()));
        if (!caps || !(caps->effective == expected) || !(caps->permitted == expected) || !caps->inheritable.empty())
          rc = 14;
        if (text && text->find("NoNewPrivs:\t1") == std::string::npos) rc = 15;
        if (caps && dropped->bounding_reduced && !((caps->bounding - keep).empty())) rc = 16;
      }
    }
    {
      std::lock_guard l(mu);
      done = true;
    }
    cv.notify_all();
    for (auto& t : threads) t.join();
    ::_exit(rc);
  }
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  REQUIRE(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
}

TEST_CASE("capabilities: the DaemonSet asks for the plugins' start sets and SETPCAP, nothing else", "[capabilities]") {
  CapabilitySet starts;
  for (const PluginInfo& p : builtin_plugins()) {
    INFO(p.name);
    starts |= p.caps.start;
    // Run sets are kept from what the plugin had at start.
    CHECK(p.caps.start.contains(p.caps.run));
  }
  CHECK(starts.contains(capture::kCaptureCapabilities));
  const CapabilitySet expected = starts | CapabilitySet{C::kSetpcap};
  CHECK_FALSE(expected.has(C::kSysAdmin));
  for (const char* file : {"/deploy/kubernetes/daemonset.yaml"}) {
    INFO(file);
    const YAML::Node ds = YAML::LoadFile(std::string(RETINA_SOURCE_DIR) + file);
    const YAML::Node container = ds["spec"]["template"]["spec"]["containers"][0];
    REQUIRE(container["name"].as<std::string>() == "retina");
    const YAML::Node caps = container["securityContext"]["capabilities"];
    CHECK(caps["drop"].as<std::vector<std::string>>() == std::vector<std::string>{"ALL"});
    CapabilitySet add;
    for (const auto& name : caps["add"].as<std::vector<std::string>>()) {
      auto c = parse_capability(name);
      INFO(name);
      REQUIRE(c);
      add |= CapabilitySet{*c};
    }
    CHECK(to_string(add) == to_string(expected));
  }
}

TEST_CASE("capabilities: docs/security.md lists every plugin's start and run sets as the table has them",
          "[capabilities]") {
  const std::string doc = slurp(std::string(RETINA_SOURCE_DIR) + "/docs/security.md");
  REQUIRE_FALSE(doc.empty());
  // | `packetparser` | `BPF`, `PERFMON`, `NET_ADMIN` | `NET_ADMIN` | ...
  const std::regex row(R"(\n\| `([a-z]+)` \| ([^|]*) \| ([^|]*) \|)");
  std::map<std::string, PluginCapabilities> documented;
  for (std::sregex_iterator it(doc.begin(), doc.end(), row), end; it != end; ++it)
    documented[(*it)[1].str()] = {parse_names((*it)[2].str()), parse_names((*it)[3].str())};
  for (const PluginInfo& p : builtin_plugins()) {
    const std::string name(p.name);
    INFO(name);
    REQUIRE(documented.count(name) == 1);
    CHECK(to_string(documented.at(name).start) == to_string(p.caps.start));
    CHECK(to_string(documented.at(name).run) == to_string(p.caps.run));
  }
}
