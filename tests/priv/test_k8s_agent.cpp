// The real agent binary against a fake Kubernetes API server that serves the
// pods of a network-namespace "node": packetparser on the pod veths, the
// watcher feeding the cache, and adv_forward_count / adv_forward_bytes
// asserted per pod (local context) and per pod pair (remote context) against
// what the veths themselves counted, exactly. A MetricsConfiguration change
// applies while the agent runs.
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <functional>
#include <map>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include <fmt/format.h>

#include "loader/tc_attach.hpp"
#include "support/fake_apiserver.hpp"
#include "support/http_client.hpp"
#include "support/netns.hpp"
#include "support/privileged.hpp"
#include "support/prom_text.hpp"

extern char** environ;

using namespace retina;
using namespace std::chrono_literals;
namespace kj = retina::test::k8sjson;
using retina::loader::TcDirection;

namespace {

const std::string kFwdCount = "networkobservability_adv_forward_count";
const std::string kFwdBytes = "networkobservability_adv_forward_bytes";

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// A file removed on destruction.
struct TempFile {
  TempFile(std::string p, const std::string& content) : path(std::move(p)) { std::ofstream(path) << content; }
  ~TempFile() { std::remove(path.c_str()); }
  std::string path;
};

// The agent, its output in a log file; SIGKILLed if the test ends early.
class Agent {
 public:
  Agent(const std::string& tag, const std::vector<std::string>& args) : log_("/tmp/retina-k8s-agent-" + tag + ".log") {
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, log_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    std::string path = RETINA_AGENT_PATH;
    std::vector<std::string> copy = args;
    std::vector<char*> argv{path.data()};
    for (auto& a : copy) argv.push_back(a.data());
    argv.push_back(nullptr);
    // Spawned from this thread, the agent lives in the node's network namespace.
    const int rc = posix_spawn(&pid_, path.c_str(), &fa, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    REQUIRE(rc == 0);
  }
  ~Agent() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      int st;
      ::waitpid(pid_, &st, 0);
    }
    if (!std::getenv("RETINA_KEEP_LOGS")) std::remove(log_.c_str());
  }
  Agent(const Agent&) = delete;
  Agent& operator=(const Agent&) = delete;

  std::string log() const { return read_file(log_); }

  uint16_t wait_port() {
    const std::regex re("msg=listening host=127\\.0\\.0\\.1 port=([0-9]+)");
    std::smatch m;
    std::string text;
    const bool found = test::wait_until(
        [&] {
          text = log();
          return std::regex_search(text, m, re);
        },
        20s);
    if (!found) FAIL("agent did not start listening:\n" << text);
    return static_cast<uint16_t>(std::stoi(m[1]));
  }

  // SIGTERM; returns the exit code.
  int terminate() {
    ::kill(pid_, SIGTERM);
    int st = 0;
    ::waitpid(pid_, &st, 0);
    pid_ = -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  }

 private:
  std::string log_;
  pid_t pid_ = -1;
};

struct PodMeta {
  std::string ns, name, wl_kind, wl_name;
};

using Count = std::pair<uint64_t, uint64_t>;  // packets, bytes

// Expected adv_forward values, from the veth counters of each phase.
struct Expect {
  std::map<std::tuple<size_t, std::string>, Count> local;            // (pod, direction)
  std::map<std::tuple<size_t, size_t, std::string>, Count> remote;   // (source pod, destination pod, direction)

  static void add(Count& c, uint64_t p, uint64_t b) {
    c.first += p;
    c.second += b;
  }
  // Everything the veths of a and b saw in a phase was between a and b.
  void phase(size_t a, size_t b, const test::LinkCounters& da, const test::LinkCounters& db) {
    add(local[{a, "egress"}], da.rx_packets, da.rx_bytes);
    add(local[{a, "ingress"}], da.tx_packets, da.tx_bytes);
    add(local[{b, "egress"}], db.rx_packets, db.rx_bytes);
    add(local[{b, "ingress"}], db.tx_packets, db.tx_bytes);
    // Remote context writes Hubble's direction names, as Retina.
    add(remote[{a, b, "EGRESS"}], da.rx_packets, da.rx_bytes);   // a's packets, at a's veth
    add(remote[{b, a, "INGRESS"}], da.tx_packets, da.tx_bytes);  // b's packets, at a's veth
    add(remote[{a, b, "INGRESS"}], db.tx_packets, db.tx_bytes);
    add(remote[{b, a, "EGRESS"}], db.rx_packets, db.rx_bytes);
  }
};

test::LinkCounters diff(const test::LinkCounters& a, const test::LinkCounters& b) {
  return {a.rx_packets - b.rx_packets, a.tx_packets - b.tx_packets, a.rx_bytes - b.rx_bytes, a.tx_bytes - b.tx_bytes};
}

class Scenario {
 public:
  explicit Scenario(bool remote)
      : remote_(remote), node_({.pods = 3, .isolated = true}), server_(test::FakeApiServer::Options{.tls = false}) {
    tag_ = test::unique_tag();
    node_name_ = "node-" + tag_;
    pods_ = {{"shop", "web-5f7c9-aaaaa", "Deployment", "web"},
             {"pay", "db-0", "StatefulSet", "db"},
             {"shop", "tool", "unknown", "unknown"}};
    server_.upsert("nodes", kj::node(node_name_, {"192.168.77.1"}, "zone-a"));
    server_.upsert("namespaces", kj::namespace_("shop", false));
    server_.upsert("namespaces", kj::namespace_("pay", false));
    server_.upsert("replicasets", kj::replicaset("shop", "web-5f7c9", "Deployment", "web"));
    for (size_t i = 0; i < pods_.size(); ++i) {
      kj::Pod p;
      p.ns = pods_[i].ns;
      p.name = pods_[i].name;
      p.node = node_name_;
      p.ips = {node_.pod(i).ipv4, node_.pod(i).ipv6};
      if (i == 0) {
        p.labels = {{"app", "web"}, {"pod-template-hash", "5f7c9"}};
        p.owner_kind = "ReplicaSet";
        p.owner_name = "web-5f7c9";
      } else if (i == 1) {
        p.owner_kind = "StatefulSet";
        p.owner_name = "db";
      }
      server_.upsert("pods", kj::pod(p));
    }
    // A pod of another node, with an address nothing here uses.
    kj::Pod other;
    other.ns = "shop";
    other.name = "elsewhere";
    other.node = "node-other-" + tag_;
    other.ips = {"10.254.0.9"};
    server_.upsert("pods", kj::pod(other));
  }

  void start_agent() {
    kubeconfig_ = std::make_unique<TempFile>(
        "/tmp/retina-k8s-agent-" + tag_ + ".kubeconfig",
        fmt::format("apiVersion: v1\nkind: Config\ncurrent-context: fake\nclusters:\n- name: fake\n  cluster: "
                    "{{server: \"{}\"}}\ncontexts:\n- name: fake\n  context: {{cluster: fake, user: nobody}}\n"
                    "users:\n- name: nobody\n  user: {{}}\n",
                    server_.url()));
    // Remote context runs at aggregation high (conntrack reports), local at
    // low (every packet): both counting paths reach the adv metrics.
    config_ = std::make_unique<TempFile>(
        "/tmp/retina-k8s-agent-" + tag_ + ".yaml",
        fmt::format("apiServer:\n  host: 127.0.0.1\nenabledPlugin: [packetparser]\nenablePodLevel: true\n"
                    "remoteContext: {}\nnodeName: {}\ndataAggregationLevel: {}\nconntrackReportInterval: 1s\n"
                    "hostInterfaces: []\npodInterfacePrefixes: [{}]\nenableTCX: off\nmetricsIntervalDuration: 1s\n"
                    // Ours: adv_* with the default labels before a MetricsConfiguration
                    // exists, and a SYN-ACK counted as SYN and ACK (Retina: SYNACK).
                    "advMetricsWithoutConfiguration: true\ntcpFlagsSeparateSynAck: true\n",
                    remote_ ? "true" : "false", node_name_, remote_ ? "high" : "low", node_.host_prefix()));
    agent_ = std::make_unique<Agent>(tag_, std::vector<std::string>{"--config", config_->path, "--kubeconfig",
                                                                     kubeconfig_->path, "--port", "0"});
    port_ = agent_->wait_port();
    if (!test::wait_until(
            [&] {
              const auto r = test::http_get(port_, "/healthz");
              return r.status == 200 && r.body.find(R"("kubernetes":{"state":"synced")") != std::string::npos;
            },
            20s)) {
      FAIL("watcher not synced: " << test::http_get(port_, "/healthz").body << "\n" << agent_->log());
    }
    const bool attached = test::wait_until(
        [&] {
          for (const auto& p : node_.pods()) {
            if (test::count_retina_tc_filters(p.host_ifindex, TcDirection::kIngress) == 0 ||
                test::count_retina_tc_filters(p.host_ifindex, TcDirection::kEgress) == 0)
              return false;
          }
          return true;
        },
        20s);
    if (!attached) FAIL("packetparser did not attach to the pod veths:\n" << agent_->log());
    node_.wait_quiet();
    // Whatever the node sent before the test's traffic (IPv6 multicast
    // listener reports of fresh interfaces, say) is the baseline, once
    // every pending conntrack report of it has arrived.
    double last = -1;
    auto last_change = std::chrono::steady_clock::now();
    while (std::chrono::steady_clock::now() - last_change < 3s) {
      baseline_ = scrape();
      const double now_total = baseline_.value(kFwdCount, {}, true).value_or(0);
      if (now_total != last) {
        last = now_total;
        last_change = std::chrono::steady_clock::now();
      }
      std::this_thread::sleep_for(250ms);
    }
  }

  // A value of `name` summed over the series matching `labels`, less the baseline.
  double delta(const test::PromText& p, const std::string& name, const std::map<std::string, std::string>& labels) {
    return p.value(name, labels, true).value_or(0) - baseline_.value(name, labels, true).value_or(0);
  }

  // Runs `traffic` between pods a and b and books what their veths counted.
  void phase(size_t a, size_t b, const std::function<void()>& traffic) {
    std::vector<test::LinkCounters> before;
    for (const auto& p : node_.pods()) before.push_back(test::read_counters(p.host_ifindex));
    traffic();
    node_.wait_quiet();
    std::vector<test::LinkCounters> d;
    for (size_t i = 0; i < node_.pods().size(); ++i) {
      d.push_back(diff(test::read_counters(node_.pod(i).host_ifindex), before[i]));
    }
    for (size_t i = 0; i < d.size(); ++i) {
      if (i == a || i == b) continue;
      REQUIRE(d[i].rx_packets == 0);  // nothing else on the wire
      REQUIRE(d[i].tx_packets == 0);
    }
    REQUIRE(d[a].rx_packets == d[b].tx_packets);  // same packets at both ends
    expect_.phase(a, b, d[a], d[b]);
    phases_.push_back(std::move(d));
  }

  test::PromText scrape() {
    const auto r = test::http_get(port_, "/metrics");
    REQUIRE(r.status == 200);
    auto p = test::parse_prom_text(r.body);
    REQUIRE(p.error.empty());
    return p;
  }

  std::map<std::string, std::string> local_labels(size_t i, const std::string& dir) const {
    const PodMeta& m = pods_[i];
    return {{"direction", dir},      {"ip", node_.pod(i).ipv4}, {"namespace", m.ns},
            {"podname", m.name},     {"workload_kind", m.wl_kind}, {"workload_name", m.wl_name}};
  }
  std::map<std::string, std::string> remote_labels(size_t s, size_t d, const std::string& dir) const {
    return {{"direction", dir},
            {"source_namespace", pods_[s].ns},
            {"source_podname", pods_[s].name},
            {"source_workload_kind", pods_[s].wl_kind},
            {"source_workload_name", pods_[s].wl_name},
            {"destination_namespace", pods_[d].ns},
            {"destination_podname", pods_[d].name},
            {"destination_workload_kind", pods_[d].wl_kind},
            {"destination_workload_name", pods_[d].wl_name}};
  }

  // Every expected series has exactly its count, and nothing else counted.
  // Conntrack reports of aggregation high arrive within the report interval
  // plus a sweep, so the check waits until the values settle on the exact numbers.
  void check_forward() {
    std::string last_problem;
    const bool ok = test::wait_until(
        [&] {
          const auto p = scrape();
          uint64_t total_packets = 0, total_bytes = 0;
          auto match = [&](const std::map<std::string, std::string>& labels, const Count& c) {
            // IPv4 and IPv6 addresses give two series (ip label); sum them.
            const auto pk = delta(p, kFwdCount, labels);
            const auto by = delta(p, kFwdBytes, labels);
            if (pk != static_cast<double>(c.first) || by != static_cast<double>(c.second)) {
              last_problem = fmt::format("series {}: {} packets / {} bytes, expected {} / {}",
                                         labels.at("direction"), pk, by, c.first, c.second);
              for (const auto& [k, v] : labels) last_problem += fmt::format(" {}={}", k, v);
              return false;
            }
            return true;
          };
          if (remote_) {
            for (const auto& [k, c] : expect_.remote) {
              auto labels = remote_labels(std::get<0>(k), std::get<1>(k), std::get<2>(k));
              if (!match(labels, c)) return false;
              total_packets += c.first;
              total_bytes += c.second;
            }
          } else {
            for (const auto& [k, c] : expect_.local) {
              auto labels = local_labels(std::get<0>(k), std::get<1>(k));
              labels.erase("ip");
              if (!match(labels, c)) return false;
              total_packets += c.first;
              total_bytes += c.second;
            }
          }
          const auto all_packets = delta(p, kFwdCount, {});
          const auto all_bytes = delta(p, kFwdBytes, {});
          if (all_packets != static_cast<double>(total_packets) || all_bytes != static_cast<double>(total_bytes)) {
            last_problem = fmt::format("totals {} packets / {} bytes, expected {} / {}", all_packets, all_bytes,
                                       total_packets, total_bytes);
            return false;
          }
          return true;
        },
        30s);
    if (!ok) {
      const auto r = test::http_get(port_, "/metrics");
      FAIL(last_problem << "\n" << test::sample_lines(r.body, kFwdCount).size() << " series:\n"
                        << [&] {
                             std::string s;
                             for (const auto& l : test::sample_lines(r.body, kFwdCount)) s += l + "\n";
                             return s;
                           }());
    }
  }

  bool remote_;
  test::Node node_;
  test::FakeApiServer server_;
  std::string tag_, node_name_;
  std::vector<PodMeta> pods_;
  std::unique_ptr<TempFile> kubeconfig_, config_;
  std::unique_ptr<Agent> agent_;
  uint16_t port_ = 0;
  Expect expect_;
  std::vector<std::vector<test::LinkCounters>> phases_;  // veth deltas of each phase
  test::PromText baseline_;
};

void traffic(Scenario& s) {
  const auto& p = s.node_.pods();
  s.phase(0, 1, [&] {
    auto t = test::tcp_send(p[0], p[1], false, 5101, 300'000);
    REQUIRE(t.received == 300'000);
  });
  s.phase(2, 0, [&] { REQUIRE(test::udp_send(p[2], p[0], true, 5102, 25, 700) == 25); });
  s.phase(1, 2, [&] { REQUIRE(test::ping(p[1], p[2], false, 3) == 3); });
}

}  // namespace

TEST_CASE("agent with Kubernetes: adv_forward per local pod, exact, and a live MetricsConfiguration",
          "[priv][k8s][agent][adv]") {
  RETINA_REQUIRE_PRIVILEGED();
  Scenario s(false);
  s.start_agent();
  traffic(s);
  s.check_forward();

  // Every local series carries the pod's labels; the pod of another node is not watched.
  auto p = s.scrape();
  for (size_t i = 0; i < 3; ++i) {
    CHECK(p.value(kFwdCount, s.local_labels(i, "egress")).value_or(0) > 0);
  }
  CHECK(p.value(kFwdCount, {{"ip", s.node_.pod(0).ipv6}}, true).value_or(0) > 0);  // the UDP phase was IPv6
  CHECK(p.value("controlplane_networkobservability_k8s_objects", {{"resource", "pods"}}) == 3.0);

  // TCP flags: the client and the server each saw one SYN and one FIN sent
  // and one of each received.
  const std::string kFlags = "networkobservability_adv_tcpflags_count";
  for (size_t i : {size_t{0}, size_t{1}}) {
    INFO("pod " << i);
    CHECK(p.value(kFlags, {{"flag", "SYN"}, {"podname", s.pods_[i].name}}) == 2.0);
    CHECK(p.value(kFlags, {{"flag", "FIN"}, {"podname", s.pods_[i].name}}) == 2.0);
    CHECK_FALSE(p.value(kFlags, {{"flag", "RST"}, {"podname", s.pods_[i].name}}));
    // Every TCP packet of the connection but the opening SYN carries ACK.
    const auto& d = s.phases_.at(0).at(i);
    CHECK(p.value(kFlags, {{"flag", "ACK"}, {"podname", s.pods_[i].name}}) ==
          static_cast<double>(d.rx_packets + d.tx_packets - 1));
  }

  // A MetricsConfiguration: forward by pod name only, applied without a restart.
  s.server_.upsert("metricsconfigurations",
                   kj::metrics_configuration("retina-metrics", "2024-01-01T00:00:00Z",
                                             R"({"contextOptions":[{"metricName":"forward","sourceLabels":["podname"]}]})"));
  if (!test::wait_until(
          [&] {
            const auto body = test::http_get(s.port_, "/healthz").body;
            return body.find(R"("configuration":"MetricsConfiguration/retina-metrics")") != std::string::npos &&
                   body.find(R"("pending":false)") != std::string::npos;
          },
          20s)) {
    FAIL("MetricsConfiguration not applied: " << test::http_get(s.port_, "/healthz").body);
  }
  s.expect_ = {};
  s.phase(0, 1, [&] {
    auto t = test::tcp_send(s.node_.pod(0), s.node_.pod(1), true, 5103, 100'000);
    REQUIRE(t.received == 100'000);
  });
  std::string problem;
  const bool ok = test::wait_until(
      [&] {
        const auto q = s.scrape();
        const auto* fam = q.family(kFwdCount);
        if (!fam || fam->samples.size() != 4) {
          problem = fmt::format("{} series", fam ? fam->samples.size() : 0);
          return false;
        }
        for (const auto& [k, c] : s.expect_.local) {
          const std::map<std::string, std::string> labels{{"direction", std::get<1>(k)},
                                                          {"podname", s.pods_[std::get<0>(k)].name}};
          if (q.value(kFwdCount, labels) != static_cast<double>(c.first) ||
              q.value(kFwdBytes, labels) != static_cast<double>(c.second)) {
            problem = fmt::format("{} {}: {} packets, expected {}", s.pods_[std::get<0>(k)].name, std::get<1>(k),
                                  q.value(kFwdCount, labels).value_or(-1), c.first);
            return false;
          }
        }
        for (const auto& smp : fam->samples) {
          if (smp.labels.size() != 2) return false;
        }
        return true;
      },
      20s);
  if (!ok) FAIL(problem);
  // Metrics the configuration leaves out are gone.
  CHECK(s.scrape().family(kFlags) == nullptr);

  CHECK(s.agent_->terminate() == 0);
  for (const auto& pod : s.node_.pods()) {
    CHECK(test::count_retina_tc_filters(pod.host_ifindex, TcDirection::kIngress) == 0);
    CHECK(test::count_retina_tc_filters(pod.host_ifindex, TcDirection::kEgress) == 0);
  }
}

TEST_CASE("agent with Kubernetes: adv_forward per pod pair in remote context, exact", "[priv][k8s][agent][adv]") {
  RETINA_REQUIRE_PRIVILEGED();
  Scenario s(true);
  s.start_agent();
  traffic(s);
  s.check_forward();
  auto p = s.scrape();
  // Remote context watches every pod, this node's or not.
  CHECK(p.value("controlplane_networkobservability_k8s_objects", {{"resource", "pods"}}) == 4.0);
  // The source and destination IP labels are the pods' addresses.
  CHECK(s.delta(p, kFwdCount, {{"source_ip", s.node_.pod(2).ipv6}, {"destination_ip", s.node_.pod(0).ipv6},
                                {"direction", "EGRESS"}}) == 25.0);
  CHECK(s.agent_->terminate() == 0);
}
