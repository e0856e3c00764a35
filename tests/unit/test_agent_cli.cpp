// Runs the built retina-agent binary (RETINA_AGENT_PATH) as a user would.
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <regex>
#include <string>
#include <vector>

#include "support/http_client.hpp"

extern char** environ;

namespace {

struct Child {
  pid_t pid = -1;
  int out = -1;  // stdout and stderr together
  std::string output;

  ~Child() {
    if (pid > 0) {
      ::kill(pid, SIGKILL);
      int st;
      ::waitpid(pid, &st, 0);
    }
    if (out >= 0) ::close(out);
  }

  // Reads output until `needle` appears or the child closes it.
  bool read_until(const std::string& needle, std::chrono::milliseconds limit = std::chrono::seconds(20)) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    char buf[4096];
    while (output.find(needle) == std::string::npos) {
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now()).count();
      if (left <= 0) return false;
      pollfd p{out, POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(left)) <= 0) return false;
      const ssize_t n = ::read(out, buf, sizeof buf);
      if (n <= 0) return output.find(needle) != std::string::npos;
      output.append(buf, static_cast<size_t>(n));
    }
    return true;
  }

  // Waits for exit, collecting the rest of the output; returns the exit code.
  int wait() {
    read_until("\x01never\x01", std::chrono::seconds(30));
    int st = 0;
    ::waitpid(pid, &st, 0);
    pid = -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  }
};

std::unique_ptr<Child> spawn(const std::vector<std::string>& args) {
  auto c = std::make_unique<Child>();
  int fds[2];
  REQUIRE(::pipe2(fds, O_CLOEXEC) == 0);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
  posix_spawn_file_actions_adddup2(&fa, fds[1], 2);
  std::vector<char*> argv;
  std::string path = RETINA_AGENT_PATH;
  argv.push_back(path.data());
  std::vector<std::string> copy = args;
  for (auto& a : copy) argv.push_back(a.data());
  argv.push_back(nullptr);
  const int rc = posix_spawn(&c->pid, path.c_str(), &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  ::close(fds[1]);
  c->out = fds[0];
  REQUIRE(rc == 0);
  return c;
}

int run(const std::vector<std::string>& args, std::string& output) {
  auto c = spawn(args);
  const int code = c->wait();
  output = c->output;
  return code;
}

struct TempFile {
  std::string path;
  explicit TempFile(const std::string& content) {
    char tmpl[] = "/tmp/retina-agent-cli-XXXXXX";
    const int fd = ::mkstemp(tmpl);
    REQUIRE(fd >= 0);
    ::close(fd);
    path = tmpl;
    std::ofstream(path) << content;
  }
  ~TempFile() { ::unlink(path.c_str()); }
};

}  // namespace

TEST_CASE("agent: --version", "[agent]") {
  std::string out;
  CHECK(run({"--version"}, out) == 0);
  CHECK(out.rfind("retina-agent ", 0) == 0);
}

TEST_CASE("agent: a bad config exits 2 with every problem named", "[agent]") {
  TempFile cfg("logLevel: loud\nenablePodLevle: true\napiServer:\n  port: 99999\n");
  std::string out;
  CHECK(run({"--config", cfg.path}, out) == 2);
  CHECK(out.find("invalid configuration") != std::string::npos);
  CHECK(out.find(cfg.path + ": logLevel: expected one of") != std::string::npos);
  CHECK(out.find(cfg.path + ": enablePodLevle: unknown key (did you mean enablePodLevel?)") != std::string::npos);
  CHECK(out.find(cfg.path + ": apiServer.port: expected an integer from 0 to 65535") != std::string::npos);
}

TEST_CASE("agent: a missing config file and bad options exit 2", "[agent]") {
  std::string out;
  CHECK(run({"--config", "/nonexistent/retina.yaml"}, out) == 2);
  CHECK(out.find("/nonexistent/retina.yaml") != std::string::npos);
  CHECK(run({"--port", "70000"}, out) == 2);
  CHECK(run({"--log-level", "loud"}, out) == 2);
  CHECK(run({"--no-such-flag"}, out) == 2);
  CHECK(run({"--health-probe-bind-address", "18081"}, out) == 2);
  CHECK(out.find("--health-probe-bind-address: bind address \"18081\"") != std::string::npos);
  CHECK(run({"--metrics-bind-address", "[::1:80"}, out) == 2);
  CHECK(out.find("--metrics-bind-address") != std::string::npos);
  TempFile bad_yaml("apiServer: [unclosed\n");
  CHECK(run({"--config", bad_yaml.path}, out) == 2);
  CHECK(out.find("yaml: line") != std::string::npos);
}

TEST_CASE("agent: serves the API and exits 0 on SIGTERM", "[agent]") {
  // No plugins: runs unprivileged, with nothing attached.
  TempFile cfg("apiServer:\n  host: 127.0.0.1\nenabledPlugin: []\nenableTelemetry: false\n");
  // Retina's chart flags too; the probe address is a free loopback port.
  auto agent = spawn({"--config", cfg.path, "--port", "0", "--log-level", "debug",
                      "--health-probe-bind-address=127.0.0.1:0", "--leader-elect=false"});
  REQUIRE(agent->read_until("msg=listening"));
  std::smatch m;
  const std::regex port_re("msg=listening host=127\\.0\\.0\\.1 port=([0-9]+)");
  REQUIRE(std::regex_search(agent->output, m, port_re));
  const auto port = static_cast<uint16_t>(std::stoi(m[1]));
  CHECK(agent->output.find("key=enableTelemetry") != std::string::npos);  // ignored with a warning

  auto r = retina::test::http_get(port, "/metrics");
  CHECK(r.status == 200);
  CHECK(r.header("Content-Type") == "text/plain; version=0.0.4; charset=utf-8");
  CHECK(retina::test::http_get(port, "/healthz").status == 200);
  CHECK(retina::test::http_get(port, "/readyz").status == 503);  // nothing runs

  REQUIRE(::kill(agent->pid, SIGTERM) == 0);
  CHECK(agent->wait() == 0);
  CHECK(agent->output.find("msg=\"shutting down\" signal=SIGTERM") != std::string::npos);
  CHECK(agent->output.find("component=agent msg=stopped") != std::string::npos);
}
