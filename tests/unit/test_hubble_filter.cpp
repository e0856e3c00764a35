#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "core/hubble_metric_spec.hpp"
#include "hubble/filter.hpp"

using namespace retina;
using hubble::FlowFilters;
using Filters = google::protobuf::RepeatedPtrField<::flow::FlowFilter>;

namespace {

struct Fixture {
  Endpoint web, db, svc;
  Flow tcp, udp, dns_flow, drop;
  DnsInfo dns;
  Fixture() {
    web.kind = EndpointKind::kPod;
    web.namespace_ = "shop";
    web.name = "web-7d9f4c-x2x8q";
    web.labels = {"app=web", "tier=front"};
    web.workloads = {{"Deployment", "web"}};
    web.service = "web-svc";
    db.kind = EndpointKind::kPod;
    db.namespace_ = "data";
    db.name = "db-0";
    db.labels = {"app=db"};
    db.workloads = {{"StatefulSet", "db"}};

    tcp.src = *IpAddr::parse("10.1.0.5");
    tcp.dst = *IpAddr::parse("10.2.0.9");
    tcp.ip_version = IpVersion::IPv4;
    tcp.proto = L4Protocol::kTCP;
    tcp.src_port = 40000;
    tcp.dst_port = 5432;
    tcp.tcp_flags = kSYN;
    tcp.verdict = Verdict::FORWARDED;
    tcp.direction = TrafficDirection::EGRESS;
    tcp.observation_point = TraceObservationPoint::TO_STACK;
    tcp.event_type = 4;
    tcp.is_reply_known = true;
    tcp.source = &web;
    tcp.destination = &db;

    udp = tcp;
    udp.proto = L4Protocol::kUDP;
    udp.tcp_flags = 0;
    udp.dst_port = 53;
    udp.src = *IpAddr::parse("fd00::5");
    udp.dst = *IpAddr::parse("fd00::9");
    udp.ip_version = IpVersion::IPv6;
    udp.direction = TrafficDirection::INGRESS;
    udp.source = &db;
    udp.destination = &web;
    udp.is_reply = true;

    dns.query = "api.shop.svc.cluster.local.";
    dns.qtype = 1;
    dns_flow = udp;
    dns_flow.dns = &dns;
    dns_flow.event_type = 129;
    dns_flow.verdict = Verdict::DNS;

    drop = tcp;
    drop.verdict = Verdict::DROPPED;
    drop.event_type = 1;
    drop.event_sub_type = 133;
  }
};

Filters one(const std::function<void(::flow::FlowFilter&)>& fill) {
  Filters fs;
  fill(*fs.Add());
  return fs;
}

FlowFilters compiled(const Filters& white, const Filters& black = {}) {
  auto f = FlowFilters::compile(white, black);
  INFO((f ? std::string() : f.error().message));
  REQUIRE(f);
  return std::move(*f);
}

std::string error_of(const Filters& white) {
  auto f = FlowFilters::compile(white, {});
  REQUIRE_FALSE(f);
  CHECK(f.error().kind == Error::Kind::kInvalidArgument);
  return f.error().message;
}

}  // namespace

TEST_CASE("hubble filter: each field selects exactly what it names", "[hubble]") {
  Fixture x;
  const std::string node = "node-a";
  auto m = [&](const Filters& w, const Flow& f) { return compiled(w).matches(f, node); };

  auto src_ip = one([](auto& f) { f.add_source_ip("10.1.0.0/16"); });
  CHECK(m(src_ip, x.tcp));
  CHECK_FALSE(m(src_ip, x.udp));
  auto dst_ip6 = one([](auto& f) { f.add_destination_ip("fd00::9"); });
  CHECK(m(dst_ip6, x.udp));
  CHECK_FALSE(m(dst_ip6, x.tcp));

  auto pod = one([](auto& f) { f.add_source_pod("shop/web-"); });
  CHECK(m(pod, x.tcp));
  CHECK_FALSE(m(pod, x.udp));  // web is the destination there
  auto ns_only = one([](auto& f) { f.add_destination_pod("data/"); });
  CHECK(m(ns_only, x.tcp));
  CHECK_FALSE(m(ns_only, x.udp));
  auto any_ns = one([](auto& f) { f.add_destination_pod("db"); });
  CHECK(m(any_ns, x.tcp));
  auto wrong_ns = one([](auto& f) { f.add_source_pod("data/web"); });
  CHECK_FALSE(m(wrong_ns, x.tcp));

  auto label = one([](auto& f) { f.add_source_label("k8s:app=web,tier in (front,back)"); });
  CHECK(m(label, x.tcp));
  CHECK_FALSE(m(label, x.udp));
  auto not_label = one([](auto& f) { f.add_destination_label("!tier"); });
  CHECK(m(not_label, x.tcp));
  CHECK_FALSE(m(not_label, x.udp));

  auto svc = one([](auto& f) { f.add_source_service("shop/web-svc"); });
  CHECK(m(svc, x.tcp));
  CHECK_FALSE(m(svc, x.udp));
  auto wl = one([](auto& f) {
    auto* w = f.add_destination_workload();
    w->set_kind("StatefulSet");
  });
  CHECK(m(wl, x.tcp));
  CHECK_FALSE(m(wl, x.udp));

  auto port = one([](auto& f) { f.add_destination_port("53"); });
  CHECK(m(port, x.udp));
  CHECK_FALSE(m(port, x.tcp));
  auto sport = one([](auto& f) { f.add_source_port("40000"); });
  CHECK(m(sport, x.tcp));

  auto proto = one([](auto& f) { f.add_protocol("UDP"); });
  CHECK(m(proto, x.udp));
  CHECK_FALSE(m(proto, x.tcp));
  auto dns = one([](auto& f) { f.add_protocol("dns"); });
  CHECK(m(dns, x.dns_flow));
  CHECK_FALSE(m(dns, x.udp));

  auto verdict = one([](auto& f) { f.add_verdict(::flow::DROPPED); });
  CHECK(m(verdict, x.drop));
  CHECK_FALSE(m(verdict, x.tcp));
  auto et = one([](auto& f) {
    auto* e = f.add_event_type();
    e->set_type(1);
    e->set_match_sub_type(true);
    e->set_sub_type(133);
  });
  CHECK(m(et, x.drop));
  CHECK_FALSE(m(et, x.tcp));

  auto dir = one([](auto& f) { f.add_traffic_direction(::flow::INGRESS); });
  CHECK(m(dir, x.udp));
  CHECK_FALSE(m(dir, x.tcp));

  auto nodes = one([](auto& f) { f.add_node_name("node-*"); });
  CHECK(m(nodes, x.tcp));
  auto cluster = one([](auto& f) { f.add_node_name("default/"); });
  CHECK(m(cluster, x.tcp));
  auto other = one([](auto& f) { f.add_node_name("k8s*"); });
  CHECK_FALSE(m(other, x.tcp));

  auto q = one([](auto& f) { f.add_dns_query("^api\\..*local\\.$"); });
  CHECK(m(q, x.dns_flow));
  CHECK_FALSE(m(q, x.udp));

  auto flags = one([](auto& f) { f.add_tcp_flags()->set_syn(true); });
  CHECK(m(flags, x.tcp));
  CHECK_FALSE(m(flags, x.udp));
  auto synack = one([](auto& f) {
    f.add_tcp_flags()->set_syn(true);
    f.mutable_tcp_flags(0)->set_ack(true);
  });
  CHECK_FALSE(m(synack, x.tcp));

  auto ipv = one([](auto& f) { f.add_ip_version(::flow::IPv6); });
  CHECK(m(ipv, x.udp));
  CHECK_FALSE(m(ipv, x.tcp));

  auto reply = one([](auto& f) { f.add_reply(true); });
  CHECK(m(reply, x.udp));
  CHECK_FALSE(m(reply, x.tcp));
}

TEST_CASE("hubble filter: fields AND, filters OR, blacklist subtracts", "[hubble]") {
  Fixture x;
  Filters white;
  auto* a = white.Add();
  a->add_protocol("tcp");
  a->add_destination_port("5432");
  auto* b = white.Add();
  b->add_protocol("udp");
  auto both = compiled(white);
  CHECK(both.matches(x.tcp, "n"));
  CHECK(both.matches(x.udp, "n"));
  x.tcp.dst_port = 80;
  CHECK_FALSE(both.matches(x.tcp, "n"));

  Filters black;
  black.Add()->add_traffic_direction(::flow::INGRESS);
  auto minus = compiled(white, black);
  CHECK_FALSE(minus.matches(x.udp, "n"));
  auto only_black = compiled({}, black);
  CHECK_FALSE(only_black.matches(x.udp, "n"));
  CHECK(only_black.matches(x.tcp, "n"));
  CHECK(compiled({}).matches(x.tcp, "n"));
}

TEST_CASE("hubble filter: malformed filters are rejected with the field named", "[hubble]") {
  CHECK_THAT(error_of(one([](auto& f) { f.add_source_ip("10.0.0.300"); })),
             Catch::Contains("whitelist[0].source_ip") && Catch::Contains("not an IP address or CIDR"));
  CHECK_THAT(error_of(one([](auto& f) { f.add_destination_ip("10.0.0.0/33"); })), Catch::Contains("destination_ip"));
  CHECK_THAT(error_of(one([](auto& f) { f.add_source_port("http"); })), Catch::Contains("source_port"));
  CHECK_THAT(error_of(one([](auto& f) { f.add_destination_port("70000"); })), Catch::Contains("destination_port"));
  CHECK_THAT(error_of(one([](auto& f) { f.add_protocol("tcpp"); })), Catch::Contains("unknown protocol"));
  CHECK_THAT(error_of(one([](auto& f) { f.add_dns_query("(unclosed"); })), Catch::Contains("dns_query"));
  CHECK_THAT(error_of(one([](auto& f) { f.add_source_label("app in (a"); })), Catch::Contains("source_label"));
  CHECK_THAT(error_of(one([](auto& f) { f.add_source_label("a=b,"); })), Catch::Contains("source_label"));
  CHECK_THAT(error_of(one([](auto& f) { f.add_http_status_code("404"); })), Catch::Contains("http_status_code"));
  CHECK_THAT(error_of(one([](auto& f) { f.add_tcp_flags(); })), Catch::Contains("sets no flag"));
  CHECK_THAT(error_of(one([](auto& f) { f.add_verdict(static_cast<::flow::Verdict>(-1)); })), Catch::Contains("verdict"));
  CHECK_THAT(error_of(one([](auto& f) { f.add_source_pod(""); })), Catch::Contains("source_pod"));
}

TEST_CASE("hubble filter: label selectors", "[hubble]") {
  const std::vector<std::string> labels = {"app=web", "tier=front", "k=v"};
  auto sel = [](std::string_view s) {
    auto r = hubble::LabelSelector::parse(s);
    INFO(s);
    REQUIRE(r);
    return *r;
  };
  CHECK(sel("app=web").matches(labels));
  CHECK(sel("app==web").matches(labels));
  CHECK_FALSE(sel("app!=web").matches(labels));
  CHECK(sel("app notin (db, cache)").matches(labels));
  CHECK(sel(" app , tier in (front) ").matches(labels));
  CHECK_FALSE(sel("missing").matches(labels));
  CHECK(sel("!missing").matches(labels));
  CHECK(sel("missing!=x").matches(labels));
  for (std::string_view bad : {"", "=x", "app in", "app in (", "app ~ x", "app=web,,tier", "!", "k8s:"})
    CHECK_FALSE(hubble::LabelSelector::parse(bad));
}

TEST_CASE("hubble metric list: Cilium's syntax", "[hubble]") {
  using hubble_spec::parse_metric;
  auto m = parse_metric("flow:sourceContext=pod|ip;destinationContext=namespace");
  REQUIRE(m);
  CHECK(m->handler == "flow");
  CHECK(m->source_context == std::vector<std::string>{"pod", "ip"});
  CHECK(m->destination_context == std::vector<std::string>{"namespace"});
  auto d = parse_metric("dns:query;ignoreAAAA;sourceEgressContext=pod");
  REQUIRE(d);
  CHECK(d->dns_query);
  CHECK(d->ignore_aaaa);
  CHECK(d->source_egress_only);
  auto l = parse_metric("drop:labelsContext=source_namespace,destination_pod,traffic_direction");
  REQUIRE(l);
  CHECK(l->labels_context.size() == 3);
  for (std::string_view bad : {"flows", "flow:", "flow:sourceContext=identity", "flow:query", "dns:query=1",
                               "drop:labelsContext=source_nope", "tcp:sourceContext=pod;sourceContext=ip",
                               "flow:sourceContext=pod;labelsContext=source_ip", "flow:;"}) {
    INFO(bad);
    CHECK_FALSE(parse_metric(bad));
  }
  CHECK_FALSE(hubble_spec::parse_metrics({"tcp", "tcp:sourceContext=pod"}));
  CHECK(hubble_spec::parse_metrics({"flow", "drop", "tcp", "dns", "port-distribution"}));
}
