#include "support/agent_process.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <bpf/bpf.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <stdexcept>
#include <thread>

#include <fmt/format.h>
#include <simdjson.h>

#include "loader/fd.hpp"
#include "support/capability_wrapper.hpp"
#include "support/netns.hpp"

extern char** environ;

namespace retina::test {

using namespace std::chrono_literals;
using loader::UniqueFd;

namespace {

[[noreturn]] void fail_errno(const std::string& what) {
  throw std::runtime_error(fmt::format("{}: {}", what, std::strerror(errno)));
}

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Runs fn in `netns` when one is given, else right here.
template <class F>
auto maybe_in_netns(const std::string& netns, F&& fn) -> decltype(fn()) {
  if (netns.empty()) return fn();
  return in_netns(netns, std::forward<F>(fn));
}

}  // namespace

// ---------------------------------------------------------------- child

std::unique_ptr<ChildProcess> ChildProcess::spawn(const Options& o) {
  if (o.argv.empty()) throw std::invalid_argument("ChildProcess::spawn: empty argv");
  // Everything the child needs is prepared before fork: between fork and
  // exec only async-signal-safe calls are allowed.
  UniqueFd ns_fd;
  if (!o.netns.empty()) {
    const std::string p = "/run/netns/" + o.netns;
    ns_fd = UniqueFd(::open(p.c_str(), O_RDONLY | O_CLOEXEC));
    if (!ns_fd) fail_errno("open(" + p + ")");
  }
  const std::string out_path = o.output_path.empty() ? "/dev/null" : o.output_path;
  UniqueFd out_fd(::open(out_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644));
  if (!out_fd) fail_errno("open(" + out_path + ")");
  UniqueFd null_fd(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  if (!null_fd) fail_errno("open(/dev/null)");

  std::vector<std::string> args = o.argv;
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::vector<std::string> env_store;
  for (char** e = environ; e && *e; ++e) {
    std::string_view kv(*e);
    const auto name = kv.substr(0, kv.find('='));
    const bool overridden = std::any_of(o.env.begin(), o.env.end(), [&](const std::string& x) {
      return std::string_view(x).substr(0, x.find('=')) == name;
    });
    if (!overridden) env_store.emplace_back(kv);
  }
  for (const auto& e : o.env) env_store.push_back(e);
  std::vector<char*> envp;
  for (auto& e : env_store) envp.push_back(e.data());
  envp.push_back(nullptr);

  const pid_t parent = ::getpid();
  const int nsfd = ns_fd.get(), outfd = out_fd.get(), nullfd = null_fd.get();
  const pid_t pid = ::fork();
  if (pid < 0) fail_errno("fork");
  if (pid == 0) {
    // The agent detaches what it attached on SIGTERM: ask for it should
    // the test die first.
    ::prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (::getppid() != parent) ::_exit(125);
    if (nsfd >= 0 && ::setns(nsfd, CLONE_NEWNET) != 0) ::_exit(126);
    ::dup2(nullfd, 0);
    ::dup2(outfd, 1);
    ::dup2(outfd, 2);
    // Its own process group: a terminal's ^C reaches the test, which then
    // stops the agent itself.
    ::setpgid(0, 0);
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    for (int sig : {SIGPIPE, SIGTERM, SIGINT, SIGHUP}) ::signal(sig, SIG_DFL);
    ::execve(argv[0], argv.data(), envp.data());
    ::_exit(127);
  }
  std::unique_ptr<ChildProcess> c(new ChildProcess());
  c->pid_ = pid;
  return c;
}

ChildProcess::~ChildProcess() {
  if (pid_ > 0 && !exit_code_) terminate(10s);
}

bool ChildProcess::reap(bool block) {
  if (pid_ <= 0 || exit_code_) return true;
  int st = 0;
  pid_t r;
  do {
    r = ::waitpid(pid_, &st, block ? 0 : WNOHANG);
  } while (r < 0 && errno == EINTR);
  if (r == 0) return false;
  if (r < 0) {  // not our child any more (should not happen): treat as gone
    exit_code_ = -1;
    return true;
  }
  exit_code_ = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  return true;
}

bool ChildProcess::running() { return !reap(false); }

void ChildProcess::signal(int sig) {
  if (pid_ > 0 && !exit_code_) ::kill(pid_, sig);
}

std::optional<int> ChildProcess::wait_exit(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!reap(false)) {
    if (std::chrono::steady_clock::now() >= deadline) return std::nullopt;
    std::this_thread::sleep_for(10ms);
  }
  return exit_code_;
}

int ChildProcess::terminate(std::chrono::milliseconds grace) {
  if (pid_ <= 0) return -1;
  if (!exit_code_) {
    signal(SIGTERM);
    if (!wait_exit(grace)) {
      ::kill(pid_, SIGKILL);
      reap(true);
    }
  }
  return *exit_code_;
}

// ------------------------------------------------------------ helpers

uint16_t free_port(const std::string& netns) {
  return maybe_in_netns(netns, []() -> uint16_t {
    UniqueFd s(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!s) fail_errno("socket");
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::bind(s.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) fail_errno("bind(127.0.0.1:0)");
    socklen_t len = sizeof a;
    if (::getsockname(s.get(), reinterpret_cast<sockaddr*>(&a), &len) != 0) fail_errno("getsockname");
    return ntohs(a.sin_port);
  });
}

std::map<std::string, uint64_t> proc_status_kib(pid_t pid) {
  std::ifstream in(fmt::format("/proc/{}/status", pid));
  if (!in) throw std::runtime_error(fmt::format("cannot read /proc/{}/status", pid));
  std::map<std::string, uint64_t> out;
  std::string line;
  while (std::getline(in, line)) {
    const auto colon = line.find(':');
    if (colon == std::string::npos || (line.rfind("Vm", 0) != 0 && line.rfind("Rss", 0) != 0)) continue;
    uint64_t v = 0;
    if (std::sscanf(line.c_str() + colon + 1, " %lu kB", &v) == 1) out[line.substr(0, colon)] = v;
  }
  return out;
}

BpfHoldings bpf_holdings(pid_t pid) {
  BpfHoldings h;
  const std::string dir = fmt::format("/proc/{}/fdinfo", pid);
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
    std::ifstream in(e.path());
    std::string line;
    while (std::getline(in, line)) {
      unsigned id = 0;
      if (std::sscanf(line.c_str(), "prog_id: %u", &id) == 1) h.prog_ids.push_back(id);
      else if (std::sscanf(line.c_str(), "map_id: %u", &id) == 1) h.map_ids.push_back(id);
    }
  }
  if (ec) throw std::runtime_error(fmt::format("list {}: {}", dir, ec.message()));
  for (auto* v : {&h.prog_ids, &h.map_ids}) {
    std::sort(v->begin(), v->end());
    v->erase(std::unique(v->begin(), v->end()), v->end());
  }
  return h;
}

bool bpf_prog_exists(uint32_t id) {
  const int fd = bpf_prog_get_fd_by_id(id);
  if (fd >= 0) {
    ::close(fd);
    return true;
  }
  return errno != ENOENT;  // anything but "no such program" keeps it suspect
}

bool bpf_map_exists(uint32_t id) {
  const int fd = bpf_map_get_fd_by_id(id);
  if (fd >= 0) {
    ::close(fd);
    return true;
  }
  return errno != ENOENT;
}

std::vector<std::pair<uint32_t, std::string>> bpftool_progs() {
  const std::string out = sh("bpftool -j prog show");
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  if (parser.parse(out).get(doc)) throw std::runtime_error("bpftool -j prog show: not JSON: " + out.substr(0, 200));
  simdjson::dom::array arr;
  if (doc.get(arr)) throw std::runtime_error("bpftool -j prog show: not an array");
  std::vector<std::pair<uint32_t, std::string>> progs;
  for (auto p : arr) {
    uint64_t id = 0;
    std::string_view name;
    if (p["id"].get(id)) continue;
    if (p["name"].get(name)) name = {};
    progs.emplace_back(static_cast<uint32_t>(id), std::string(name));
  }
  return progs;
}

std::vector<std::string> list_tree(const std::string& root) {
  std::vector<std::string> out;
  std::error_code ec;
  for (auto it = std::filesystem::recursive_directory_iterator(root, ec);
       !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec))
    out.push_back(it->path().string());
  std::sort(out.begin(), out.end());
  return out;
}

// ------------------------------------------------------------- flows

namespace {

std::string str_at(simdjson::dom::element e, std::string_view key) {
  std::string_view v;
  if (e[key].get(v)) return {};
  return std::string(v);
}

uint64_t num_at(simdjson::dom::element e, std::string_view key) {
  uint64_t v = 0;
  if (e[key].get(v)) return 0;
  return v;
}

FlowEndpointInfo endpoint_of(simdjson::dom::element flow, std::string_view key) {
  FlowEndpointInfo ep;
  simdjson::dom::element e;
  if (flow[key].get(e)) return ep;
  ep.present = true;
  ep.namespace_ = str_at(e, "namespace");
  ep.pod_name = str_at(e, "pod_name");
  simdjson::dom::array labels;
  if (!e["labels"].get(labels)) {
    for (auto l : labels) {
      std::string_view s;
      if (!l.get(s)) ep.labels.emplace_back(s);
    }
  }
  simdjson::dom::array workloads;
  if (!e["workloads"].get(workloads)) {
    for (auto w : workloads) ep.workloads.emplace_back(str_at(w, "kind"), str_at(w, "name"));
  }
  return ep;
}

}  // namespace

std::vector<FlowLine> parse_flow_lines(std::string_view text) {
  std::vector<FlowLine> out;
  simdjson::dom::parser parser;
  size_t line_no = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    const std::string line(text.substr(pos, end - pos));
    pos = end + 1;
    ++line_no;
    if (line.empty()) continue;
    simdjson::dom::element doc, flow;
    if (parser.parse(line).get(doc) || doc["flow"].get(flow))
      throw std::runtime_error(fmt::format("flow line {} is not a Hubble flow: {}", line_no, line));
    FlowLine f;
    f.verdict = str_at(flow, "verdict");
    f.node_name = str_at(doc, "node_name");
    simdjson::dom::element ip;
    if (!flow["IP"].get(ip)) {
      f.src_ip = str_at(ip, "source");
      f.dst_ip = str_at(ip, "destination");
      f.ip_version = str_at(ip, "ipVersion");
    }
    simdjson::dom::object l4;
    if (!flow["l4"].get(l4)) {
      for (auto [k, v] : l4) {
        f.l4 = std::string(k);
        f.src_port = static_cast<uint16_t>(num_at(v, "source_port"));
        f.dst_port = static_cast<uint16_t>(num_at(v, "destination_port"));
      }
    }
    f.observation_point = str_at(flow, "trace_observation_point");
    f.direction = str_at(flow, "traffic_direction");
    simdjson::dom::element itf;
    if (!flow["interface"].get(itf)) f.ifindex = static_cast<uint32_t>(num_at(itf, "index"));
    simdjson::dom::element ext;
    if (!flow["extensions"]["value"].get(ext)) {
      f.bytes = num_at(ext, "bytes");
      f.prev_bytes = num_at(ext, "previously_observed_bytes");
      f.prev_packets = num_at(ext, "previously_observed_packets");
    }
    f.source = endpoint_of(flow, "source");
    f.destination = endpoint_of(flow, "destination");
    out.push_back(std::move(f));
  }
  return out;
}

std::map<std::string, std::string> plugin_states(std::string_view logs) {
  std::map<std::string, std::string> out;
  constexpr std::string_view key = "msg=plugins states=\"";
  const size_t at = logs.find(key);
  if (at == std::string_view::npos) return out;
  std::string_view states = logs.substr(at + key.size());
  states = states.substr(0, states.find('"'));
  while (!states.empty()) {
    const std::string_view item = states.substr(0, states.find(' '));
    const size_t eq = item.find('=');
    if (eq != std::string_view::npos) out[std::string(item.substr(0, eq))] = std::string(item.substr(eq + 1));
    states.remove_prefix(std::min(states.size(), item.size() + 1));
  }
  return out;
}

// ------------------------------------------------------------- agent

AgentProcess::AgentProcess() {
  std::string tmpl = fmt::format("/tmp/retina-e2e-{}-XXXXXX", ::getpid());
  if (!::mkdtemp(tmpl.data())) fail_errno("mkdtemp");
  dir_ = tmpl;
}

AgentProcess::~AgentProcess() {
  if (child_) child_->terminate(15s);
  child_.reset();
  if (const char* keep = std::getenv("RETINA_E2E_KEEP"); keep && *keep) {
    std::fprintf(stderr, "agent files kept in %s\n", dir_.c_str());
    return;
  }
  std::error_code ec;
  std::filesystem::remove_all(dir_, ec);
}

void AgentProcess::write_file(std::string_view name, std::string_view content) const {
  const std::string final_path = path(name);
  const std::string tmp = final_path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out.write(content.data(), static_cast<std::streamsize>(content.size()));
    if (!out) throw std::runtime_error("cannot write " + tmp);
  }
  if (::rename(tmp.c_str(), final_path.c_str()) != 0) fail_errno("rename(" + tmp + ")");
}

std::string AgentProcess::read_file(std::string_view name) const { return slurp(path(name)); }

void AgentProcess::start(AgentOptions o) {
  if (child_ && child_->running()) throw std::logic_error("AgentProcess::start: the agent is still running");
  child_.reset();
  netns_ = o.netns;
  port_ = o.port;
  output_path_ = path(fmt::format("agent-{}.log", ++starts_));
  ChildProcess::Options co;
  co.argv = std::move(o.wrapper);
  // The capability suite runs every agent that has no wrapper of its own
  // with exactly the DaemonSet's capabilities.
  if (co.argv.empty()) {
    if (auto caps = agent_capabilities_from_env()) co.argv = setpriv_wrapper(*caps);
  }
#ifdef RETINA_AGENT_PATH
  co.argv.push_back(RETINA_AGENT_PATH);
#else
  throw std::runtime_error("retina-agent is not part of this build (RETINA_AGENT_PATH is not defined)");
#endif
  if (o.config) {
    write_file("config.yaml", *o.config);
    co.argv.push_back("--config");
    co.argv.push_back(path("config.yaml"));
  }
  // The probe listener defaults to Retina's fixed :18081; tests use a free
  // loopback port unless they ask for one.
  const bool probe = std::any_of(o.args.begin(), o.args.end(),
                                 [](const std::string& a) { return a.starts_with("--health-probe-bind-address"); });
  for (auto& a : o.args) co.argv.push_back(std::move(a));
  if (!probe) co.argv.push_back("--health-probe-bind-address=127.0.0.1:0");
  co.env = std::move(o.env);
  co.netns = netns_;
  co.output_path = output_path_;
  child_ = ChildProcess::spawn(co);
}

bool AgentProcess::wait_log(std::string_view needle, std::chrono::milliseconds timeout, size_t times) const {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    const std::string out = logs();
    size_t n = 0;
    for (size_t at = out.find(needle); at != std::string::npos; at = out.find(needle, at + needle.size())) ++n;
    if (n >= times) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(20ms);
  }
}

void AgentProcess::wait_ready(std::chrono::milliseconds timeout) {
  if (!child_) throw std::logic_error("AgentProcess::wait_ready: not started");
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  const std::regex listening("msg=listening host=\\S+ port=([0-9]+)");
  std::string last;
  for (;;) {
    if (!child_->running()) {
      throw std::runtime_error(fmt::format("retina-agent exited with {} before it was ready; its output:\n{}",
                                           *child_->exit_code(), logs()));
    }
    if (port_ == 0) {
      const std::string out = logs();
      std::smatch m;
      if (std::regex_search(out, m, listening)) port_ = static_cast<uint16_t>(std::stoi(m[1]));
    }
    if (port_ != 0) {
      auto r = get("/readyz", 2s);
      if (r.status == 200) return;
      last = r.status ? fmt::format("/readyz answered {}: {}", r.status, r.body) : r.error;
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      throw std::runtime_error(fmt::format("retina-agent not ready within {} ms ({}); its output:\n{}",
                                           timeout.count(), last.empty() ? "no port yet" : last, logs()));
    }
    std::this_thread::sleep_for(50ms);
  }
}

HttpResponse AgentProcess::get(std::string_view target, std::chrono::milliseconds timeout) const {
  const std::string t(target);
  return maybe_in_netns(netns_, [&] { return http_get(port_, t, timeout); });
}

std::string AgentProcess::metrics_text() const {
  auto r = get("/metrics");
  if (r.status != 200)
    throw std::runtime_error(fmt::format("GET /metrics: {} {}", r.status, r.status ? r.body : r.error));
  return r.body;
}

PromText AgentProcess::metrics() const {
  PromText p = parse_prom_text(metrics_text());
  if (!p.error.empty()) throw std::runtime_error("/metrics does not parse: " + p.error);
  return p;
}

std::string AgentProcess::logs() const { return output_path_.empty() ? std::string() : slurp(output_path_); }

std::string AgentProcess::log_tail(size_t lines) const {
  const std::string all = logs();
  size_t pos = all.size();
  for (size_t n = 0; n <= lines && pos > 0; ++n) {
    const size_t nl = all.rfind('\n', pos - 1);
    if (nl == std::string::npos) {
      pos = 0;
      break;
    }
    pos = nl;
  }
  return all.substr(pos);
}

std::vector<FlowLine> AgentProcess::flow_log(std::string_view name) const { return parse_flow_lines(read_file(name)); }

void AgentProcess::signal(int sig) {
  if (child_) child_->signal(sig);
}

std::optional<int> AgentProcess::wait_exit(std::chrono::milliseconds timeout) {
  if (!child_) return std::nullopt;
  return child_->wait_exit(timeout);
}

std::optional<int> AgentProcess::stop(int sig, std::chrono::milliseconds timeout) {
  if (!child_) return std::nullopt;
  const auto t0 = std::chrono::steady_clock::now();
  child_->signal(sig);
  auto code = child_->wait_exit(timeout);
  last_stop_ = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0);
  if (!code) {
    child_->signal(SIGKILL);
    child_->wait_exit(10s);
  }
  return code;
}

void AgentProcess::kill_hard() {
  if (!child_) return;
  child_->signal(SIGKILL);
  child_->wait_exit(10s);
}

}  // namespace retina::test
