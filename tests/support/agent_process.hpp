// Runs the real retina-agent binary (RETINA_AGENT_PATH) as a child process
// for end-to-end tests: a private temp directory for its config, endpoints
// file, flow log and output; the HTTP API scraped from the agent's network
// namespace; signals; /proc/<pid>/status; and the flow log parsed back.
//
// Every child is reaped: the destructors send SIGTERM, wait, then SIGKILL.
// Children also get SIGTERM (PR_SET_PDEATHSIG) if the spawning thread dies
// first, so a crashed test run still lets the agent detach what it attached.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "support/http_client.hpp"
#include "support/prom_text.hpp"

namespace retina::test {

// ---------------------------------------------------------------- child

class ChildProcess {
 public:
  struct Options {
    std::vector<std::string> argv;  // argv[0] is the executable's path
    std::vector<std::string> env;   // extra NAME=value entries on top of ours
    // Network namespace (/run/netns/<netns>) the child enters before exec;
    // empty: the spawning thread's namespace.
    std::string netns;
    // stdout and stderr are appended here; empty: /dev/null.
    std::string output_path;
  };

  // fork + exec from the calling thread; throws std::runtime_error. Call it
  // from a thread that outlives the child (the death signal follows the
  // spawning thread), and use Options::netns rather than in_netns().
  static std::unique_ptr<ChildProcess> spawn(const Options& options);
  ~ChildProcess();
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  pid_t pid() const { return pid_; }
  // Still running (reaps it when it has exited).
  bool running();
  void signal(int sig);
  // Exit code (128 + signal when killed by one) once it exits within
  // `timeout`; nullopt if it is still running.
  std::optional<int> wait_exit(std::chrono::milliseconds timeout);
  std::optional<int> exit_code() const { return exit_code_; }
  // SIGTERM, up to `grace` to exit, then SIGKILL; always reaps.
  int terminate(std::chrono::milliseconds grace = std::chrono::seconds(10));

 private:
  ChildProcess() = default;
  bool reap(bool block);
  pid_t pid_ = -1;
  std::optional<int> exit_code_;
};

// ------------------------------------------------------------ helpers

// A port nobody listens on in `netns` (empty: the caller's namespace).
uint16_t free_port(const std::string& netns = "");

// VmRSS, VmHWM, RssAnon, RssFile, RssShmem and the other Vm* and Rss*
// lines of /proc/<pid>/status, in KiB.
std::map<std::string, uint64_t> proc_status_kib(pid_t pid);

// IDs of the BPF programs and maps a process holds file descriptors for
// (from /proc/<pid>/fdinfo).
struct BpfHoldings {
  std::vector<uint32_t> prog_ids;
  std::vector<uint32_t> map_ids;
};
BpfHoldings bpf_holdings(pid_t pid);
// Whether a program or map with this ID is still loaded.
bool bpf_prog_exists(uint32_t id);
bool bpf_map_exists(uint32_t id);
// `bpftool -j prog show`: (id, name) of every loaded program.
std::vector<std::pair<uint32_t, std::string>> bpftool_progs();

// Every path under `root` (recursively), sorted.
std::vector<std::string> list_tree(const std::string& root);

// ------------------------------------------------------------- flows

// The parts of one Hubble JSON flow line the end-to-end tests look at.
struct FlowEndpointInfo {
  std::string namespace_;
  std::string pod_name;
  std::vector<std::string> labels;
  std::vector<std::pair<std::string, std::string>> workloads;  // (kind, name)
  bool present = false;
};
struct FlowLine {
  std::string verdict;
  std::string src_ip, dst_ip, ip_version;
  std::string l4;  // "TCP", "UDP", "ICMPv4", "ICMPv6" or empty
  uint16_t src_port = 0, dst_port = 0;
  std::string observation_point, direction;
  uint32_t ifindex = 0;
  uint64_t bytes = 0, prev_bytes = 0, prev_packets = 0;
  FlowEndpointInfo source, destination;
  std::string node_name;

  // The counting rule (bpf/packetparser.bpf.c): a report stands for its
  // previously observed packets plus its own packet, which it carries
  // unless it is a flush of pending counts (those have bytes 0).
  uint64_t packets() const { return prev_packets + (bytes ? 1 : 0); }
  uint64_t total_bytes() const { return bytes + prev_bytes; }
};
// Parses JSON lines; throws std::runtime_error naming the first bad line.
std::vector<FlowLine> parse_flow_lines(std::string_view text);

// The agent's start-up line `msg=plugins states="packetparser=running
// dropreason=failed ..."` as plugin -> state; empty when it is not there.
std::map<std::string, std::string> plugin_states(std::string_view logs);

// ------------------------------------------------------------- agent

struct AgentOptions {
  // Config YAML, written to <dir>/config.yaml and passed with --config;
  // nullopt runs the agent with no config at all.
  std::optional<std::string> config;
  std::vector<std::string> args;  // more command-line arguments
  // A command the agent runs under, e.g. {"setpriv", "--bounding-set=...", "--"}.
  std::vector<std::string> wrapper;
  std::vector<std::string> env;   // NAME=value
  // Network namespace to run (and scrape) in; empty: the caller's.
  std::string netns;
  // API port to scrape; 0 reads it from the agent's "msg=listening" line.
  uint16_t port = 0;
};

class AgentProcess {
 public:
  // Makes the private temp directory (removed on destruction).
  AgentProcess();
  ~AgentProcess();
  AgentProcess(const AgentProcess&) = delete;
  AgentProcess& operator=(const AgentProcess&) = delete;

  const std::string& dir() const { return dir_; }
  std::string path(std::string_view name) const { return dir_ + "/" + std::string(name); }
  // Writes a file in dir() atomically (temp file + rename), as editors do.
  void write_file(std::string_view name, std::string_view content) const;
  std::string read_file(std::string_view name) const;

  // Starts the agent (stopping a previous one first is the caller's job).
  void start(AgentOptions options);
  // Waits until /readyz answers 200; throws with the agent's output when
  // it exits or the time runs out.
  void wait_ready(std::chrono::milliseconds timeout = std::chrono::seconds(20));
  // Waits until the agent's output contains `needle` (a count of times).
  bool wait_log(std::string_view needle, std::chrono::milliseconds timeout = std::chrono::seconds(20),
                size_t times = 1) const;

  pid_t pid() const { return child_ ? child_->pid() : -1; }
  bool running() { return child_ && child_->running(); }
  uint16_t port() const { return port_; }
  const std::string& netns() const { return netns_; }

  HttpResponse get(std::string_view target, std::chrono::milliseconds timeout = std::chrono::seconds(10)) const;
  std::string metrics_text() const;       // /metrics body; throws unless 200
  PromText metrics() const;               // strictly parsed; throws on a parse error
  std::string logs() const;               // everything the agent printed
  std::string log_tail(size_t lines = 40) const;
  std::vector<FlowLine> flow_log(std::string_view name = "flows.jsonl") const;

  void signal(int sig);
  // Waits for the agent to exit by itself; its exit code, or nullopt when
  // it still runs after `timeout`.
  std::optional<int> wait_exit(std::chrono::milliseconds timeout);
  // Signals the agent and waits for it to exit; returns the exit code, or
  // nullopt when it did not exit in time (it is then killed and reaped).
  std::optional<int> stop(int sig = 15 /* SIGTERM */, std::chrono::milliseconds timeout = std::chrono::seconds(15));
  // SIGKILL and reap.
  void kill_hard();
  // How long the last stop() took.
  std::chrono::milliseconds last_stop_duration() const { return last_stop_; }

 private:
  std::string dir_;
  std::string netns_;
  uint16_t port_ = 0;
  std::unique_ptr<ChildProcess> child_;
  size_t starts_ = 0;
  std::string output_path_;
  std::chrono::milliseconds last_stop_{0};
};

}  // namespace retina::test
