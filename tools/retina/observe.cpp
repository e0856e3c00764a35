// retina observe: flows from an agent's Hubble Observer API, printed like
// `hubble observe` (compact lines, or -o json: one GetFlowsResponse per
// line in protojson with Hubble's field names).
#include <cstdio>
#include <ctime>
#include <fstream>
#include <sstream>
#include <string>

#include <google/protobuf/util/json_util.h>
#include <google/protobuf/util/time_util.h>
#include <grpcpp/grpcpp.h>

#include "commands.hpp"
#include "hubble/observe_filters.hpp"
#include "observer/observer.grpc.pb.h"
#include "retina/config.hpp"

namespace retina::cli {

namespace {

struct ObserveOptions {
  std::string server = "localhost:4244";
  bool follow = false;
  uint64_t last = 0;
  uint64_t first = 0;
  std::string since, until;
  std::string output = "compact";
  bool tls = false;
  std::string tls_ca, tls_cert, tls_key, tls_server_name;
  std::vector<std::string> flag_values[32];
};

// "5m" (that long ago) or an RFC 3339 time.
bool parse_time(const std::string& text, google::protobuf::Timestamp* out, std::string* err) {
  if (auto d = parse_duration(text)) {
    const auto now = std::chrono::system_clock::now() - *d;
    const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(now.time_since_epoch()).count();
    out->set_seconds(ns / 1'000'000'000);
    out->set_nanos(static_cast<int32_t>(ns % 1'000'000'000));
    return true;
  }
  if (google::protobuf::util::TimeUtil::FromString(text, out)) return true;
  *err = "\"" + text + "\" is neither a duration (5m) nor an RFC 3339 time";
  return false;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

std::string endpoint_text(const ::flow::Endpoint& ep, const std::string& ip, uint32_t port) {
  std::string out;
  if (!ep.pod_name().empty()) out = ep.namespace_() + "/" + ep.pod_name();
  else out = ip;
  if (port) out += ":" + std::to_string(port);
  return out;
}

std::string compact(const ::observer::GetFlowsResponse& r) {
  if (r.has_lost_events()) {
    return "EVENTS LOST: " + ::flow::LostEventSource_Name(r.lost_events().source()) + " " +
           std::to_string(r.lost_events().num_events_lost());
  }
  const ::flow::Flow& f = r.flow();
  char when[64] = "";
  const time_t secs = f.time().seconds();
  struct tm tm {};
  gmtime_r(&secs, &tm);
  const size_t n = std::strftime(when, sizeof when, "%b %e %H:%M:%S", &tm);
  std::snprintf(when + n, sizeof when - n, ".%03d", f.time().nanos() / 1'000'000);

  uint32_t sport = 0, dport = 0;
  std::string l4 = "", flags;
  if (f.l4().has_tcp()) {
    sport = f.l4().tcp().source_port();
    dport = f.l4().tcp().destination_port();
    l4 = "TCP";
    const auto& fl = f.l4().tcp().flags();
    const auto* d = ::flow::TCPFlags::descriptor();
    for (int i = 0; i < d->field_count(); ++i)
      if (fl.GetReflection()->GetBool(fl, d->field(i))) flags += (flags.empty() ? "" : ", ") + d->field(i)->name();
  } else if (f.l4().has_udp()) {
    sport = f.l4().udp().source_port();
    dport = f.l4().udp().destination_port();
    l4 = "UDP";
  } else if (f.l4().has_icmpv4()) {
    l4 = "ICMPv4";
  } else if (f.l4().has_icmpv6()) {
    l4 = "ICMPv6";
  }
  std::string line = std::string(when) + ": " + endpoint_text(f.source(), f.ip().source(), sport) + " -> " +
                     endpoint_text(f.destination(), f.ip().destination(), dport) + " ";
  if (f.trace_observation_point() != ::flow::UNKNOWN_POINT)
    line += ::flow::TraceObservationPoint_Name(f.trace_observation_point()) + " ";
  const std::string verdict = ::flow::Verdict_IsValid(f.verdict()) ? ::flow::Verdict_Name(f.verdict())
                              : f.verdict() == 15                  ? "RETRANSMISSION"
                              : f.verdict() == 16                  ? "DNS"
                                                                   : std::to_string(f.verdict());
  line += verdict;
  if (f.verdict() == ::flow::DROPPED && f.drop_reason_desc() != ::flow::DROP_REASON_UNKNOWN)
    line += " (" + ::flow::DropReason_Name(f.drop_reason_desc()) + ")";
  if (f.l7().has_dns()) {
    const auto& d = f.l7().dns();
    line += f.l7().type() == ::flow::RESPONSE ? " DNS Answer " : " DNS Query ";
    line += d.query();
    for (const auto& q : d.qtypes()) line += " " + q;
    if (f.l7().type() == ::flow::RESPONSE) {
      line += " rcode " + std::to_string(d.rcode());
      for (const auto& ip : d.ips()) line += " " + ip;
    }
  } else if (!flags.empty()) {
    line += " (TCP Flags: " + flags + ")";
  } else if (!l4.empty()) {
    line += " " + l4;
  }
  return line;
}

int run_observe(const ObserveOptions& o) {
  hubble::ObserveFlags flags;
  for (size_t i = 0; i < hubble::kObserveFlags.size(); ++i)
    for (const auto& v : o.flag_values[i]) (void)hubble::add_flag(flags, hubble::kObserveFlags[i].name, v);
  auto whitelist = hubble::build_whitelist(flags);
  if (!whitelist) {
    std::fprintf(stderr, "retina observe: %s\n", whitelist.error().message.c_str());
    return kExitUsage;
  }
  ::observer::GetFlowsRequest req;
  for (auto& f : *whitelist) *req.add_whitelist() = std::move(f);
  std::string err;
  if (!o.since.empty() && !parse_time(o.since, req.mutable_since(), &err)) {
    std::fprintf(stderr, "retina observe: --since: %s\n", err.c_str());
    return kExitUsage;
  }
  if (!o.until.empty() && !parse_time(o.until, req.mutable_until(), &err)) {
    std::fprintf(stderr, "retina observe: --until: %s\n", err.c_str());
    return kExitUsage;
  }
  if (o.first && (o.last || o.follow)) {
    std::fprintf(stderr, "retina observe: --first cannot be combined with --last or --follow\n");
    return kExitUsage;
  }
  req.set_follow(o.follow);
  if (o.first) {
    req.set_first(true);
    req.set_number(o.first);
  } else if (o.last) {
    req.set_number(o.last);
  } else if (!o.follow && o.since.empty() && o.until.empty()) {
    req.set_number(20);  // as `hubble observe`
  }

  std::shared_ptr<grpc::ChannelCredentials> creds = grpc::InsecureChannelCredentials();
  grpc::ChannelArguments args;
  if (o.tls) {
    grpc::SslCredentialsOptions ssl;
    if (!o.tls_ca.empty()) ssl.pem_root_certs = read_file(o.tls_ca);
    if (!o.tls_cert.empty()) ssl.pem_cert_chain = read_file(o.tls_cert);
    if (!o.tls_key.empty()) ssl.pem_private_key = read_file(o.tls_key);
    creds = grpc::SslCredentials(ssl);
    if (!o.tls_server_name.empty()) args.SetSslTargetNameOverride(o.tls_server_name);
  }
  auto stub = ::observer::Observer::NewStub(grpc::CreateCustomChannel(o.server, creds, args));
  grpc::ClientContext ctx;
  if (!o.follow) ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  auto reader = stub->GetFlows(&ctx, req);
  ::observer::GetFlowsResponse r;
  google::protobuf::util::JsonPrintOptions jo;
  jo.preserve_proto_field_names = true;
  std::string line;
  while (reader->Read(&r)) {
    line.clear();
    if (o.output == "json") {
      (void)google::protobuf::util::MessageToJsonString(r, &line, jo);
    } else {
      line = compact(r);
    }
    std::fputs(line.c_str(), stdout);
    std::fputc('\n', stdout);
    if (o.follow) std::fflush(stdout);
  }
  const grpc::Status st = reader->Finish();
  if (!st.ok()) {
    std::fprintf(stderr, "retina observe: %s: %s\n", o.server.c_str(), st.error_message().c_str());
    return st.error_code() == grpc::StatusCode::INVALID_ARGUMENT ? kExitUsage : kExitRuntime;
  }
  return kExitOk;
}

}  // namespace

void add_observe_command(CLI::App& app, Run& run) {
  auto o = std::make_shared<ObserveOptions>();
  auto* sub = app.add_subcommand("observe", "Print flows from an agent's Hubble API (like hubble observe)");
  sub->add_option("--server", o->server, "Agent's Hubble address, host:port")->capture_default_str();
  sub->add_flag("-f,--follow", o->follow, "Keep printing flows as they come");
  sub->add_option("--last", o->last, "The last N flows (20 unless --follow or a time range)");
  sub->add_option("--first", o->first, "The first N stored flows");
  sub->add_option("--since", o->since, "Flows since a time (RFC 3339) or that long ago (5m)");
  sub->add_option("--until", o->until, "Flows until a time (RFC 3339) or that long ago");
  sub->add_option("-o,--output", o->output, "compact or json")
      ->check(CLI::IsMember({"compact", "json"}))
      ->capture_default_str();
  sub->add_flag("--tls", o->tls, "Connect with TLS");
  sub->add_option("--tls-ca-cert-files", o->tls_ca, "CA certificate (PEM) to verify the agent");
  sub->add_option("--tls-client-cert-file", o->tls_cert, "Client certificate (PEM) for mTLS");
  sub->add_option("--tls-client-key-file", o->tls_key, "Client key (PEM) for mTLS");
  sub->add_option("--tls-server-name", o->tls_server_name, "Server name to verify, e.g. <node>.default.hubble-grpc.cilium.io");
  for (size_t i = 0; i < hubble::kObserveFlags.size(); ++i)
    sub->add_option(std::string("--") + hubble::kObserveFlags[i].name, o->flag_values[i], hubble::kObserveFlags[i].help);
  sub->callback([o, &run] { run = [o] { return run_observe(*o); }; });
}

}  // namespace retina::cli
