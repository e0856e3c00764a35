// The Hubble server in process: flows injected into a Pipeline, read back
// through a gRPC client generated from proto/.
#include <catch2/catch.hpp>

#include <grpcpp/grpcpp.h>

#include <sys/resource.h>
#include <sys/wait.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>
#include <vector>

#include "core/best_effort.hpp"
#include "observer/observer.grpc.pb.h"
#include "hubble/observer_service.hpp"
#include "peer/peer.grpc.pb.h"
#include "retina/hubble.hpp"
#include "support/fake_apiserver.hpp"
#include "support/http_client.hpp"
#include "support/prom_text.hpp"

using namespace retina;
using namespace std::chrono_literals;

namespace {

Flow udp_flow(uint16_t sport, uint64_t t) {
  Flow f;
  f.time_ns = t;
  f.verdict = Verdict::FORWARDED;
  f.src = *IpAddr::parse("10.0.0.1");
  f.dst = *IpAddr::parse("10.0.0.2");
  f.ip_version = IpVersion::IPv4;
  f.proto = L4Protocol::kUDP;
  f.src_port = sport;
  f.dst_port = 9000;
  f.observation_point = TraceObservationPoint::TO_ENDPOINT;
  f.direction = TrafficDirection::INGRESS;
  f.is_reply_known = true;
  f.event_type = 4;
  return f;
}

struct Harness {
  Pipeline pipeline{nullptr, nullptr};
  std::unique_ptr<HubbleServer> server;
  std::unique_ptr<observer::Observer::Stub> stub;
  uint64_t clock = 1'767'323'045'000'000'000ull;

  explicit Harness(size_t capacity, std::vector<std::string> metrics = {"flow", "port-distribution"}) {
    HubbleOptions o;
    o.listen_address = "127.0.0.1:0";
    o.metrics_address = "127.0.0.1:0";
    o.buffer_capacity = capacity;
    o.node_name = "node-1";
    o.metrics = std::move(metrics);
    auto s = HubbleServer::start(pipeline, o);
    INFO((s ? std::string() : s.error().message));
    REQUIRE(s);
    server = std::move(*s);
    auto ch = grpc::CreateChannel("127.0.0.1:" + std::to_string(server->port()), grpc::InsecureChannelCredentials());
    stub = observer::Observer::NewStub(ch);
  }

  bool wait_followers(size_t n) {
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while (server->status().followers < n && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(5ms);
    return server->status().followers == n;
  }

  // Injects flows with source ports [from, from + n) and waits until stored.
  void inject(uint16_t from, size_t n) {
    const uint64_t want = server->status().seen_flows + n;
    for (size_t i = 0; i < n; ++i) {
      Flow f = udp_flow(static_cast<uint16_t>(from + i), clock++);
      pipeline.process_flow(f);
      if (i % 64 == 63) pipeline.end_batch();
    }
    pipeline.end_batch();
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    // Stored, and taken in by the hubble_* metrics, which follow the store on their own thread.
    while ((server->status().seen_flows < want || server->status().metered_flows < want) &&
           std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(5ms);
    REQUIRE(server->status().seen_flows == want);
    REQUIRE(server->status().metered_flows == want);
  }

  std::vector<uint16_t> ports(const observer::GetFlowsRequest& req, grpc::Status* status = nullptr) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + 10s);
    auto reader = stub->GetFlows(&ctx, req);
    std::vector<uint16_t> out;
    observer::GetFlowsResponse r;
    while (reader->Read(&r)) {
      REQUIRE(r.has_flow());
      CHECK(r.node_name() == "node-1");
      CHECK(r.flow().node_name() == "node-1");
      out.push_back(static_cast<uint16_t>(r.flow().l4().udp().source_port()));
    }
    auto st = reader->Finish();
    if (status) *status = st;
    else REQUIRE(st.ok());
    return out;
  }
};

std::vector<uint16_t> range(uint16_t from, uint16_t to) {
  std::vector<uint16_t> v;
  for (uint16_t p = from; p < to; ++p) v.push_back(p);
  return v;
}

}  // namespace

TEST_CASE("hubble server: ServerStatus, last N, first N and filters", "[hubble]") {
  Harness h(64);
  h.inject(1000, 100);

  grpc::ClientContext ctx;
  observer::ServerStatusResponse st;
  REQUIRE(h.stub->ServerStatus(&ctx, {}, &st).ok());
  CHECK(st.seen_flows() == 100);
  CHECK(st.num_flows() == 64);
  CHECK(st.max_flows() == 64);
  CHECK(st.num_connected_nodes().value() == 1);

  observer::GetFlowsRequest last;
  last.set_number(5);
  CHECK(h.ports(last) == range(1095, 1100));
  observer::GetFlowsRequest first;
  first.set_number(3);
  first.set_first(true);
  CHECK(h.ports(first) == range(1036, 1039));  // the oldest still stored
  observer::GetFlowsRequest all;
  CHECK(h.ports(all) == range(1036, 1100));

  observer::GetFlowsRequest filtered;
  filtered.set_number(10);
  filtered.add_whitelist()->add_source_port("1050");
  filtered.add_whitelist()->add_source_port("1060");
  filtered.add_whitelist()->add_source_port("1000");  // overwritten already
  CHECK(h.ports(filtered) == std::vector<uint16_t>{1050, 1060});
  observer::GetFlowsRequest black;
  black.set_number(3);
  black.add_blacklist()->add_source_port("1099");
  CHECK(h.ports(black) == range(1096, 1099));

  observer::GetFlowsRequest since;
  google::protobuf::Timestamp t;
  t.set_seconds(static_cast<int64_t>((h.clock - 3) / 1'000'000'000));
  t.set_nanos(static_cast<int32_t>((h.clock - 3) % 1'000'000'000));
  *since.mutable_since() = t;
  CHECK(h.ports(since) == range(1097, 1100));
  observer::GetFlowsRequest until;
  *until.mutable_until() = t;
  until.set_first(true);
  until.set_number(1000);
  CHECK(h.ports(until) == range(1036, 1098));
}

TEST_CASE("hubble server: malformed requests are INVALID_ARGUMENT with a message", "[hubble]") {
  Harness h(16);
  observer::GetFlowsRequest bad;
  bad.add_whitelist()->add_source_ip("10.0.0.300");
  grpc::Status st;
  h.ports(bad, &st);
  CHECK(st.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  CHECK_THAT(st.error_message(), Catch::Contains("whitelist[0].source_ip"));
  observer::GetFlowsRequest both;
  both.set_first(true);
  both.set_follow(true);
  h.ports(both, &st);
  CHECK(st.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_CASE("hubble server: follow delivers later flows, a slow follower's losses are counted", "[hubble]") {
  Harness h(16);
  grpc::ClientContext ctx;
  observer::GetFlowsRequest req;
  req.set_follow(true);
  auto reader = h.stub->GetFlows(&ctx, req);
  REQUIRE(h.wait_followers(1));

  // Not reading while 5000 flows pass a 16-flow ring.
  constexpr size_t kFlows = 5000;
  h.inject(2000, kFlows);
  uint64_t delivered = 0, lost = 0;
  uint16_t last_port = 0;
  observer::GetFlowsResponse r;
  while (delivered + lost < kFlows) {
    REQUIRE(reader->Read(&r));
    if (r.has_lost_events()) {
      CHECK(r.lost_events().source() == flow::HUBBLE_RING_BUFFER);
      lost += r.lost_events().num_events_lost();
    } else {
      const auto port = static_cast<uint16_t>(r.flow().l4().udp().source_port());
      CHECK(port > last_port);  // in order, none twice
      last_port = port;
      ++delivered;
    }
  }
  // Every flow was delivered or reported lost.
  CHECK(delivered + lost == kFlows);
  CHECK(last_port == 2000 + kFlows - 1);
  CHECK(lost > 0);
  CHECK(h.server->status().lost_flows == lost);
  const auto metrics = test::http_get(h.server->metrics_port(), "/metrics");
  REQUIRE(metrics.status == 200);
  const auto prom = test::parse_prom_text(metrics.body);
  REQUIRE(prom.error.empty());
  CHECK(prom.value("hubble_lost_events_total", {{"source", "hubble_ring_buffer"}}) == double(lost));
  CHECK(prom.value("hubble_lost_events_total", {{"source", "observer_events_queue"}}) == 0.0);
  ctx.TryCancel();
}

// Threads of this process at each nice value (/proc/self/task/*/stat, field 19).
std::map<int, int> threads_by_nice() {
  std::map<int, int> out;
  for (const auto& e : std::filesystem::directory_iterator("/proc/self/task")) {
    std::ifstream f(e.path() / "stat");
    std::string line;
    std::getline(f, line);
    const auto close = line.rfind(')');
    if (close == std::string::npos) continue;
    std::istringstream rest(line.substr(close + 2));
    std::string field;
    for (int i = 3; i < 19 && rest >> field; ++i) {
    }
    int nice = 0;
    if (rest >> nice) ++out[nice];
  }
  return out;
}

TEST_CASE("hubble server: the threads serving followers run at a lower priority", "[hubble]") {
  Harness h(16);
  const int before = threads_by_nice()[kBestEffortNice];
  grpc::ClientContext ctx;
  observer::GetFlowsRequest req;
  req.set_follow(true);
  auto reader = h.stub->GetFlows(&ctx, req);
  REQUIRE(h.wait_followers(1));
  h.inject(1, 3);
  observer::GetFlowsResponse r;
  REQUIRE(reader->Read(&r));  // the follower's thread is serving
  CHECK(threads_by_nice()[kBestEffortNice] == before + 1);
  CHECK(::getpriority(PRIO_PROCESS, 0) == 0);  // this thread, and the pipeline's, keep theirs
  ctx.TryCancel();
}

TEST_CASE("hubble server: hubble_* metrics count the flows", "[hubble]") {
  Harness h(16, {"flow:sourceContext=ip;destinationContext=ip", "port-distribution"});
  h.inject(1, 250);
  const auto m = test::http_get(h.server->metrics_port(), "/metrics");
  REQUIRE(m.status == 200);
  const auto prom = test::parse_prom_text(m.body);
  INFO(m.body);
  REQUIRE(prom.error.empty());
  CHECK(prom.value("hubble_flows_processed_total", {{"source", "10.0.0.1"},
                                                    {"destination", "10.0.0.2"},
                                                    {"protocol", "UDP"},
                                                    {"type", "Trace"},
                                                    {"subtype", "to-endpoint"},
                                                    {"verdict", "FORWARDED"}}) == 250.0);
  CHECK(prom.value("hubble_port_distribution_total", {{"protocol", "UDP"}, {"port", "9000"}}) == 250.0);
}

TEST_CASE("hubble server: 100 slow followers stall neither the pipeline nor the metrics", "[hubble]") {
  Harness h(64);
  // Another consumer of the same pipeline, to show nobody else loses flows.
  auto other = h.pipeline.subscribe("other", 1 << 20);
  std::vector<std::unique_ptr<grpc::ClientContext>> ctxs;
  std::vector<std::unique_ptr<grpc::ClientReader<observer::GetFlowsResponse>>> readers;
  observer::GetFlowsRequest req;
  req.set_follow(true);
  for (int i = 0; i < 100; ++i) {
    ctxs.push_back(std::make_unique<grpc::ClientContext>());
    readers.push_back(h.stub->GetFlows(ctxs.back().get(), req));  // never read
  }
  REQUIRE(h.wait_followers(100));
  constexpr size_t kFlows = 20000;
  h.inject(1, kFlows);  // waits until the store has every flow
  CHECK(other->delivered() == kFlows);
  CHECK(other->dropped() == 0);
  const auto m = test::http_get(h.server->metrics_port(), "/metrics", 5s);
  CHECK(m.status == 200);
  const auto prom = test::parse_prom_text(m.body);
  CHECK(prom.value("hubble_flows_processed_total", {}, true) == double(kFlows));
  CHECK(prom.value("hubble_lost_events_total", {{"source", "observer_events_queue"}}) == 0.0);
  for (auto& c : ctxs) c->TryCancel();
  h.server->stop();  // returns with the streams cancelled
}

TEST_CASE("hubble server: Peer Notify announces this node, GetNodes lists it", "[hubble]") {
  Harness h(16);
  auto ch = grpc::CreateChannel("127.0.0.1:" + std::to_string(h.server->port()), grpc::InsecureChannelCredentials());
  auto peer = peer::Peer::NewStub(ch);
  grpc::ClientContext ctx;
  auto reader = peer->Notify(&ctx, {});
  peer::ChangeNotification n;
  REQUIRE(reader->Read(&n));
  CHECK(n.name() == "node-1");
  CHECK(n.type() == peer::PEER_ADDED);
  CHECK(n.address() == "127.0.0.1:" + std::to_string(h.server->port()));
  CHECK_FALSE(n.has_tls());
  ctx.TryCancel();

  grpc::ClientContext nctx;
  observer::GetNodesResponse nodes;
  REQUIRE(h.stub->GetNodes(&nctx, {}, &nodes).ok());
  REQUIRE(nodes.nodes_size() == 1);
  CHECK(nodes.nodes(0).name() == "node-1");
  CHECK(nodes.nodes(0).state() == relay::NODE_CONNECTED);

  grpc::ClientContext actx;
  auto agent = h.stub->GetAgentEvents(&actx, {});
  observer::GetAgentEventsResponse ae;
  CHECK_FALSE(agent->Read(&ae));
  CHECK(agent->Finish().ok());
}

TEST_CASE("hubble server: Notify announces every node Relay can dial, and node changes", "[hubble]") {
  Harness h(16);
  auto node = [](std::string name, std::vector<std::string> ips) {
    auto ep = std::make_shared<Endpoint>();
    ep->kind = EndpointKind::kNode;
    ep->name = std::move(name);
    for (const auto& ip : ips) ep->ips.push_back(*IpAddr::parse(ip));
    return EndpointPtr(ep);
  };
  h.pipeline.cache().upsert(node("node-2", {"fd00::2", "192.168.0.2"}));
  h.pipeline.cache().upsert(node("node-3", {"fd00::3"}));
  auto pod = std::make_shared<Endpoint>();
  pod->kind = EndpointKind::kPod;
  pod->namespace_ = "default";
  pod->name = "web";
  pod->ips = {*IpAddr::parse("10.1.0.5")};
  h.pipeline.cache().upsert(pod);  // not a peer

  auto ch = grpc::CreateChannel("127.0.0.1:" + std::to_string(h.server->port()), grpc::InsecureChannelCredentials());
  auto peer = peer::Peer::NewStub(ch);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + 20s);
  auto reader = peer->Notify(&ctx, {});
  const std::string port = std::to_string(h.server->port());
  std::map<std::string, std::string> added;
  peer::ChangeNotification n;
  for (int i = 0; i < 3; ++i) {
    REQUIRE(reader->Read(&n));
    CHECK(n.type() == peer::PEER_ADDED);
    CHECK_FALSE(n.has_tls());
    added[n.name()] = n.address();
  }
  CHECK(added == std::map<std::string, std::string>{{"node-1", "127.0.0.1:" + port},
                                                    {"node-2", "192.168.0.2:" + port},
                                                    {"node-3", "[fd00::3]:" + port}});
  // Relay dials what it is told: the announced address serves the Observer.
  auto dialed = observer::Observer::NewStub(grpc::CreateChannel(added["node-1"], grpc::InsecureChannelCredentials()));
  grpc::ClientContext sctx;
  observer::ServerStatusResponse st;
  CHECK(dialed->ServerStatus(&sctx, {}, &st).ok());

  h.pipeline.cache().remove(node("node-3", {"fd00::3"})->key());
  h.pipeline.cache().upsert(node("node-4", {"192.168.0.4"}));
  std::map<std::string, peer::ChangeNotificationType> changes;
  while (changes.size() < 2 && reader->Read(&n)) changes[n.name()] = n.type();
  CHECK(changes == std::map<std::string, peer::ChangeNotificationType>{{"node-3", peer::PEER_DELETED},
                                                                       {"node-4", peer::PEER_ADDED}});
  ctx.TryCancel();
}

TEST_CASE("hubble server: TLS server names follow Cilium's", "[hubble]") {
  CHECK(hubble::tls_server_name("node-1") == "node-1.default.hubble-grpc.cilium.io");
  CHECK(hubble::tls_server_name("ip-10-0-0-1.ec2.internal") == "ip-10-0-0-1-ec2-internal.default.hubble-grpc.cilium.io");
  CHECK(hubble::tls_server_name("").empty());
}

TEST_CASE("hubble server: TLS with client certificates (mTLS)", "[hubble]") {
  test::TestPki pki;
  Pipeline pipeline(nullptr, nullptr);
  HubbleOptions o;
  o.listen_address = "127.0.0.1:0";
  o.metrics_address = "";
  o.node_name = "node-1";
  o.tls_cert_file = pki.server_cert_file;
  o.tls_key_file = pki.server_key_file;
  o.tls_client_ca_files = {pki.ca_file};
  auto s = HubbleServer::start(pipeline, o);
  INFO((s ? std::string() : s.error().message));
  REQUIRE(s);
  const std::string target = "127.0.0.1:" + std::to_string((*s)->port());
  auto status = [&](const grpc::SslCredentialsOptions& ssl) {
    grpc::ChannelArguments args;
    args.SetSslTargetNameOverride("localhost");
    auto stub = observer::Observer::NewStub(grpc::CreateCustomChannel(target, grpc::SslCredentials(ssl), args));
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + 5s);
    observer::ServerStatusResponse r;
    return stub->ServerStatus(&ctx, {}, &r);
  };
  grpc::SslCredentialsOptions with_cert;
  with_cert.pem_root_certs = pki.ca_pem;
  with_cert.pem_cert_chain = pki.client_cert_pem;
  with_cert.pem_private_key = pki.client_key_pem;
  const auto ok = status(with_cert);
  INFO(ok.error_message());
  CHECK(ok.ok());
  grpc::SslCredentialsOptions no_cert;
  no_cert.pem_root_certs = pki.ca_pem;
  CHECK_FALSE(status(no_cert).ok());
  // Plain text is refused too.
  auto plain = observer::Observer::NewStub(grpc::CreateChannel(target, grpc::InsecureChannelCredentials()));
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + 3s);
  observer::ServerStatusResponse r;
  CHECK_FALSE(plain->ServerStatus(&ctx, {}, &r).ok());

  // Notify tells Relay the name to verify.
  auto peer = peer::Peer::NewStub(grpc::CreateCustomChannel(target, grpc::SslCredentials(with_cert), [] {
    grpc::ChannelArguments a;
    a.SetSslTargetNameOverride("localhost");
    return a;
  }()));
  grpc::ClientContext pctx;
  pctx.set_deadline(std::chrono::system_clock::now() + 5s);
  auto notes = peer->Notify(&pctx, {});
  peer::ChangeNotification n;
  REQUIRE(notes->Read(&n));
  CHECK(n.tls().server_name() == "node-1.default.hubble-grpc.cilium.io");
  pctx.TryCancel();
}

#ifdef RETINA_CLI_PATH
TEST_CASE("hubble server: retina observe prints flows, filtered, compact and json", "[hubble][cli]") {
  Harness h(64);
  h.inject(3000, 10);
  const std::string cli = std::string(RETINA_CLI_PATH) + " observe --server 127.0.0.1:" + std::to_string(h.server->port());
  auto run = [](const std::string& cmd, int* rc) {
    std::string out;
    FILE* p = ::popen((cmd + " 2>&1").c_str(), "r");
    REQUIRE(p);
    char buf[4096];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
    *rc = WEXITSTATUS(::pclose(p));
    return out;
  };
  auto lines = [](const std::string& s) {
    std::vector<std::string> v;
    size_t at = 0;
    while (at < s.size()) {
      const size_t nl = s.find('\n', at);
      v.push_back(s.substr(at, nl - at));
      if (nl == std::string::npos) break;
      at = nl + 1;
    }
    return v;
  };
  int rc = -1;
  auto compact = lines(run(cli + " --last 3", &rc));
  CHECK(rc == 0);
  REQUIRE(compact.size() == 3);
  CHECK_THAT(compact[0], Catch::Contains("10.0.0.1:3007 -> 10.0.0.2:9000 TO_ENDPOINT FORWARDED UDP"));
  CHECK_THAT(compact[2], Catch::Contains("10.0.0.1:3009 -> 10.0.0.2:9000"));

  auto json = lines(run(cli + " --from-port 3004 -o json", &rc));
  CHECK(rc == 0);
  REQUIRE(json.size() == 1);
  CHECK_THAT(json[0], Catch::StartsWith("{\"flow\":{") && Catch::Contains("\"source_port\":3004") &&
                          Catch::Contains("\"node_name\":\"node-1\""));

  auto either = lines(run(cli + " --port 3001 --port 3002 --protocol udp", &rc));
  CHECK(rc == 0);
  CHECK(either.size() == 2);

  const auto bad = run(cli + " --from-ip 10.0.0.300", &rc);
  CHECK(rc == 2);
  CHECK_THAT(bad, Catch::Contains("source_ip"));
  const auto down = run(std::string(RETINA_CLI_PATH) + " observe --server 127.0.0.1:1 --last 1", &rc);
  CHECK(rc == 1);
}
#endif
