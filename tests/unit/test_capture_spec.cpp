// The capture spec (Retina's Capture CRD shape), label selectors, the
// filter shortcuts, refusals of bad input, the /captures routes and the
// uploads (S3 SigV4 checked by a fake that recomputes the signature).
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <thread>

#include <fmt/format.h>
#ifndef CPPHTTPLIB_OPENSSL_SUPPORT
#define CPPHTTPLIB_OPENSSL_SUPPORT
#endif
#include <httplib.h>

#include "capture/cli_flags.hpp"
#include "capture/secret.hpp"
#include "capture/session.hpp"
#include "capture/upload.hpp"
#include "retina/capture.hpp"
#include "retina/ip_cache.hpp"
#include "retina/config.hpp"
#include "support/fake_apiserver.hpp"
#include "support/fake_s3.hpp"
#include "support/netns.hpp"
#include "support/pcap_read.hpp"

using namespace retina;
using namespace retina::capture;

namespace {

constexpr const char* kFullSpec = R"({
  "captureConfiguration": {
    "captureTarget": {
      "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "default"}},
      "podSelector": {"matchLabels": {"app": "web"},
                      "matchExpressions": [{"key": "tier", "operator": "In", "values": ["a", "b"]},
                                           {"key": "legacy", "operator": "DoesNotExist"}]},
      "nodeSelector": {"matchLabels": {"kubernetes.io/hostname": "node-1"}}
    },
    "captureOption": {"duration": "2m30s", "maxCaptureSize": 50, "packetSize": 128, "maxPackets": 1000,
                      "format": "pcapng"},
    "filters": {"include": ["10.0.0.1", "10.0.0.2:80"], "exclude": ["10.0.0.3:53"]},
    "tcpdumpFilter": "tcp",
    "includeMetadata": false
  },
  "outputConfiguration": {
    "hostPath": "captures/web",
    "persistentVolumeClaim": "claim-1",
    "s3Upload": {"bucket": "b", "region": "eu-west-1", "endpoint": "http://127.0.0.1:1", "path": "p",
                 "secretName": "s3-secret"}
  }
})";

std::unique_ptr<Manager> manager_in(const std::string& root, std::shared_ptr<IpCache> cache = nullptr) {
  ManagerOptions o;
  o.node_name = "node-1";
  o.output_root = root;
  o.cache = std::move(cache);
  o.limits.max_duration = std::chrono::minutes(10);
  o.limits.min_free_bytes = 1 << 20;
  auto m = Manager::create(std::move(o));
  REQUIRE(m);
  return std::move(*m);
}

Spec spec_of(const std::string& configuration, const std::string& output = "") {
  const std::string body = fmt::format(R"({{"name":"t","spec":{{"captureConfiguration":{{{}}}{}}}}})", configuration,
                                       output.empty() ? "" : ",\"outputConfiguration\":{" + output + "}");
  auto s = parse_request_json(body);
  INFO(body);
  REQUIRE(s);
  return *s;
}

}  // namespace

TEST_CASE("capture spec: Retina's CRD fields parse and round-trip", "[capture]") {
  auto s = parse_spec_json(kFullSpec, "web-capture");
  REQUIRE(s);
  CHECK(s->name == "web-capture");
  CHECK(s->duration == std::chrono::seconds(150));
  CHECK(s->max_capture_bytes == 50ull << 20);
  CHECK(s->packet_size == 128);
  CHECK(s->max_packets == 1000);
  CHECK(s->format == FileFormat::kPcapng);
  CHECK_FALSE(s->include_metadata);
  CHECK(s->pod_selector.requirements.size() == 3);
  CHECK(s->pod_selector.matches({"app=web", "tier=a"}));
  CHECK_FALSE(s->pod_selector.matches({"app=web", "tier=c"}));
  CHECK_FALSE(s->pod_selector.matches({"app=web", "legacy=1", "tier=a"}));
  CHECK(s->namespace_selector.matches({"kubernetes.io/metadata.name=default"}));
  CHECK(s->host_path == "captures/web");
  CHECK(s->pvc == "claim-1");
  CHECK(s->s3.bucket == "b");
  CHECK(s->s3.region == "eu-west-1");
  CHECK(s->s3.secret_name == "s3-secret");
  CHECK(s->tcpdump_filter == "tcp");

  auto again = parse_spec_json(spec_to_json(*s), "web-capture");
  REQUIRE(again);
  CHECK(spec_to_json(*again) == spec_to_json(*s));
}

TEST_CASE("capture spec: the agent API body and whole Capture objects", "[capture]") {
  auto a = parse_request_json(R"({"name":"a1","spec":{}})");
  REQUIRE(a);
  CHECK(a->name == "a1");
  CHECK(a->duration == std::chrono::minutes(1));  // Retina's default
  CHECK(a->max_capture_bytes == 100ull << 20);
  auto b = parse_request_json(
      R"({"apiVersion":"retina.sh/v1alpha1","kind":"Capture","metadata":{"name":"b1","namespace":"ns"},"spec":{}})");
  REQUIRE(b);
  CHECK(b->name == "b1");
  CHECK(b->namespace_ == "ns");
}

TEST_CASE("capture spec: bad input is refused with the field named", "[capture]") {
  const std::pair<const char*, const char*> cases[] = {
      {R"({"name":"x","spec":{)", "invalid JSON"},
      {R"({"name":"X_bad","spec":{}})", "capture name"},
      {R"({"spec":{}})", "name is required"},
      {R"({"name":"x"})", "'spec' is required"},
      {R"({"name":"x","spec":{"bogus":1}})", "unknown field 'bogus'"},
      {R"({"name":"x","spec":{"captureConfiguration":{"captureOption":{"duration":"0s"}}}})", "above zero"},
      {R"({"name":"x","spec":{"captureConfiguration":{"captureOption":{"duration":"soon"}}}})", "captureOption.duration"},
      {R"({"name":"x","spec":{"captureConfiguration":{"captureOption":{"maxCaptureSize":0}}}})", "maxCaptureSize"},
      {R"({"name":"x","spec":{"captureConfiguration":{"captureOption":{"packetSize":10}}}})", "packetSize"},
      {R"({"name":"x","spec":{"captureConfiguration":{"captureOption":{"format":"erf"}}}})", "expected pcap or pcapng"},
      {R"({"name":"x","spec":{"captureConfiguration":{"captureTarget":{"podSelector":{"matchExpressions":[{"key":"a","operator":"Near"}]}}}}})",
       "unknown operator"},
      {R"({"name":"x","spec":{"captureConfiguration":{"captureTarget":{"podSelector":{"matchLabels":{"a":"b c"}}}}}})",
       "bad label"},
      {R"({"name":"x","spec":{"outputConfiguration":{"s3Upload":{"region":"r"}}}})", "bucket is required"},
  };
  for (const auto& [json, needle] : cases) {
    INFO(json);
    auto s = parse_request_json(json);
    REQUIRE_FALSE(s);
    CHECK(s.error().kind == Error::Kind::kInvalidArgument);
    CHECK_THAT(s.error().message, Catch::Contains(needle));
  }
}

TEST_CASE("capture: label selectors in kubectl syntax", "[capture]") {
  auto s = parse_label_selector("app=web, tier in (a, b),!legacy,env!=prod");
  REQUIRE(s);
  CHECK(s->matches({"app=web", "env=dev", "tier=b"}));
  CHECK_FALSE(s->matches({"app=web", "env=prod", "tier=b"}));
  CHECK_FALSE(s->matches({"app=api", "tier=b"}));
  CHECK(parse_label_selector("")->matches({}));
  CHECK_FALSE(parse_label_selector("a in b"));
  CHECK_FALSE(parse_label_selector("a=b,,c=d"));
  CHECK_FALSE(parse_label_selector("a b"));
}

TEST_CASE("capture: include/exclude shortcuts and the tcpdump filter combine", "[capture]") {
  Spec s;
  s.include_filter = {"10.0.0.1", "10.0.0.2:80", "[fd00::1]:443"};
  s.exclude_filter = {"*:53"};
  s.tcpdump_filter = "tcp or udp";
  auto f = build_filter(s);
  REQUIRE(f);
  CHECK(*f == "((host 10.0.0.1 or (host 10.0.0.2 and port 80) or (host fd00::1 and port 443)) and not (port 53)) and (tcp or udp)");
  CHECK(check_filter(*f, 0));

  Spec all;
  all.include_filter = {"*"};
  CHECK(build_filter(all).value() == "");
  Spec bad;
  bad.include_filter = {"10.0.0.300"};
  CHECK_FALSE(build_filter(bad));
  bad.include_filter = {"10.0.0.1:70000"};
  CHECK_FALSE(build_filter(bad));
  Spec none;
  none.exclude_filter = {"*"};
  CHECK_FALSE(build_filter(none));

  auto st = check_filter("tcp port eighty", 0);
  REQUIRE_FALSE(st);
  CHECK(st.error().kind == Error::Kind::kInvalidArgument);
  CHECK_THAT(st.error().message, Catch::Contains("does not compile"));
}

TEST_CASE("capture manager: refuses what it cannot or must not do", "[capture]") {
  test::TempDir root;
  auto m = manager_in(root.path(), std::make_shared<IpCache>());
  auto refused = [&](const Spec& s, const char* needle) {
    auto r = m->start(s);
    REQUIRE_FALSE(r);
    CHECK(r.error().kind == Error::Kind::kInvalidArgument);
    CHECK_THAT(r.error().message, Catch::Contains(needle));
  };
  refused(spec_of(R"("tcpdumpFilter":"port nonsense")"), "does not compile");
  refused(spec_of(R"("captureTarget":{"podSelector":{"matchLabels":{"app":"nowhere"}}})"), "match no pod");
  refused(spec_of(R"("captureOption":{"duration":"11m"})"), "above the maximum");
  refused(spec_of("", R"("hostPath":"/etc")"), "outside the capture output root");
  refused(spec_of("", R"("hostPath":"../escape")"), "outside the capture output root");
  refused(spec_of("", R"("persistentVolumeClaim":"missing")"), "not mounted");
  refused(spec_of(R"("captureOption":{"interfaces":["no-such-if0"]})"), "no interface named");
  refused(spec_of(R"("captureOption":{"maxCaptureSize":1048576})"), "above the maximum");
  // Secrets are read for Capture objects only; the agent API needs the values.
  refused(spec_of("", R"("blobUpload":"blob-secret")"), "read only for Capture objects");
  refused(spec_of("", R"("s3Upload":{"bucket":"b","secretName":"creds"})"), "read only for Capture objects");
  refused(spec_of("", R"("s3Upload":{"bucket":"b"})"), "no credentials");
  // Nothing was left behind under the root by the refusals.
  for (const auto& e : std::filesystem::recursive_directory_iterator(root.path())) {
    CHECK_FALSE(e.is_regular_file());
  }
  Spec zero = spec_of("");
  zero.duration = std::chrono::milliseconds(0);
  refused(zero, "above zero");
}

TEST_CASE("capture spec: podNames, fileCount and blobUpload as a Secret name", "[capture]") {
  auto s = parse_request_json(
      R"({"metadata":{"name":"ring","namespace":"shop"},"spec":{"captureConfiguration":{"captureTarget":{"podNames":["web-0","db/db-1"]},)"
      R"("captureOption":{"fileCount":4,"maxCaptureSize":8}},"outputConfiguration":{"blobUpload":"blob-sas"}}})");
  REQUIRE(s);
  CHECK(s->pod_names == std::vector<std::string>{"web-0", "db/db-1"});
  CHECK(s->selects_pods());
  CHECK(s->file_count == 4);
  CHECK(s->blob_secret_name == "blob-sas");
  CHECK(s->blob_sas_url.empty());
  auto again = parse_spec_json(spec_to_json(*s), "ring");
  REQUIRE(again);
  CHECK(spec_to_json(*again) == spec_to_json(*s));
  // A URL is still taken as it is.
  auto url = parse_request_json(R"({"name":"u","spec":{"outputConfiguration":{"blobUpload":"https://a.blob/c?sv=1&sig=x"}}})");
  REQUIRE(url);
  CHECK(url->blob_sas_url == "https://a.blob/c?sv=1&sig=x");
  CHECK(url->blob_secret_name.empty());

  const std::pair<const char*, const char*> bad[] = {
      {R"({"name":"x","spec":{"captureConfiguration":{"captureOption":{"fileCount":0}}}})", "fileCount"},
      {R"({"name":"x","spec":{"captureConfiguration":{"captureOption":{"fileCount":1001}}}})", "fileCount"},
      {R"({"name":"x","spec":{"captureConfiguration":{"captureTarget":{"podNames":["Web_0"]}}}})", "podNames"},
      {R"({"name":"x","spec":{"captureConfiguration":{"captureTarget":{"podNames":["a/b/c"]}}}})", "podNames"},
      {R"({"name":"x","spec":{"captureConfiguration":{"captureTarget":{"podNames":"web"}}}})", "podNames"},
      {R"({"name":"x","spec":{"outputConfiguration":{"blobUpload":"not a name"}}})", "blobUpload"},
  };
  for (const auto& [json, needle] : bad) {
    INFO(json);
    auto r = parse_request_json(json);
    REQUIRE_FALSE(r);
    CHECK_THAT(r.error().message, Catch::Contains(needle));
  }
}

TEST_CASE("capture secrets: Retina's keys, base64-decoded, never written back", "[capture]") {
  const std::string secret =
      test::k8sjson::secret("ops", "creds", {{"s3-access-key-id", "AKID"}, {"s3-secret-access-key", "se/cr+et\n"},
                                             {"blob-upload-url", "https://a.blob/c?sv=1&sig=topsecret"}});
  auto data = parse_secret_data(secret);
  REQUIRE(data);
  CHECK(data->at("s3-access-key-id") == "AKID");
  CHECK(data->at("s3-secret-access-key") == "se/cr+et\n");

  Spec s;
  s.s3.bucket = "b";
  s.s3.secret_name = "creds";
  s.blob_secret_name = "creds";
  std::vector<std::string> asked;
  auto st = resolve_secrets(s, [&](const std::string& name) -> Result<std::string> {
    asked.push_back(name);
    return secret;
  });
  REQUIRE(st);
  CHECK(asked == std::vector<std::string>{"creds", "creds"});
  CHECK(s.s3.access_key_id == "AKID");
  CHECK(s.s3.secret_access_key == "se/cr+et");  // the trailing newline of `echo` dropped
  CHECK(s.blob_sas_url == "https://a.blob/c?sv=1&sig=topsecret");
  const std::string written = spec_to_json(without_credentials(s));
  CHECK(written.find("AKID") == std::string::npos);
  CHECK(written.find("se/cr") == std::string::npos);
  CHECK(written.find("topsecret") == std::string::npos);
  CHECK_THAT(written, Catch::Contains(R"("blobUpload":"creds")"));

  // A missing key, bad base64, a missing Secret: clear errors.
  Spec partial;
  partial.s3.bucket = "b";
  partial.s3.secret_name = "half";
  auto half = resolve_secrets(partial, [&](const std::string&) -> Result<std::string> {
    return test::k8sjson::secret("ops", "half", {{"s3-access-key-id", "AKID"}});
  });
  REQUIRE_FALSE(half);
  CHECK_THAT(half.error().message, Catch::Contains("Secret half has no s3-secret-access-key key"));
  CHECK_FALSE(parse_secret_data(R"({"data":{"k":"!!!"}})"));
  CHECK_FALSE(parse_secret_data(R"({"data":{"k":1}})"));
  CHECK_FALSE(parse_secret_data("{"));
  CHECK(parse_secret_data(R"({"kind":"Secret"})")->empty());
  auto gone = resolve_secrets(partial, [&](const std::string&) -> Result<std::string> {
    return unexpected(Error::invalid("Secret ops/half not found"));
  });
  REQUIRE_FALSE(gone);
  CHECK_THAT(gone.error().message, Catch::Contains("not found"));
}

TEST_CASE("capture HTTP routes: errors and disabled capture", "[capture]") {
  HttpReply r;
  CHECK_FALSE(handle_http(nullptr, "GET", "/metrics", "", r));
  REQUIRE(handle_http(nullptr, "GET", "/captures", "", r));
  CHECK(r.status == 404);
  CHECK_THAT(r.body, Catch::Contains("enableCapture"));

  test::TempDir root;
  auto m = manager_in(root.path());
  REQUIRE(handle_http(m.get(), "POST", "/captures", "{not json", r));
  CHECK(r.status == 400);
  CHECK_THAT(r.body, Catch::Contains("invalid JSON"));
  REQUIRE(handle_http(m.get(), "POST", "/captures", R"({"name":"x","spec":{"captureConfiguration":{"tcpdumpFilter":"bogus bogus"}}})", r));
  CHECK(r.status == 400);
  CHECK_THAT(r.body, Catch::Contains("does not compile"));
  REQUIRE(handle_http(m.get(), "GET", "/captures", "", r));
  CHECK(r.status == 200);
  CHECK(r.body == "{\"captures\":[]}\n");
  REQUIRE(handle_http(m.get(), "GET", "/captures/none", "", r));
  CHECK(r.status == 404);
  REQUIRE(handle_http(m.get(), "DELETE", "/captures/none", "", r));
  CHECK(r.status == 404);
  REQUIRE(handle_http(m.get(), "GET", "/captures/none/download", "", r));
  CHECK(r.status == 404);
  REQUIRE(handle_http(m.get(), "PUT", "/captures", "", r));
  CHECK(r.status == 405);
}

TEST_CASE("capture upload: S3 with AWS SigV4, checked by recomputing the signature", "[capture]") {
  test::TempDir dir;
  const std::string file = dir.path() + "/b.tar.gz";
  std::ofstream(file) << std::string(5000, 'x');
  test::FakeS3 s3("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "eu-west-1");
  S3Upload up;
  up.bucket = "captures";
  up.region = "eu-west-1";
  up.endpoint = s3.url();
  up.path = "team/a";
  up.access_key_id = "AKIDEXAMPLE";
  up.secret_access_key = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
  auto r = upload_s3(up, file, "c1-node-20260101000000UTC.tar.gz");
  INFO((r ? std::string() : r.error().message));
  REQUIRE(r);
  auto objs = s3.objects();
  REQUIRE(objs.size() == 1);
  INFO(objs[0].problem);
  CHECK(objs[0].signature_ok);
  CHECK(objs[0].path == "/captures/team/a/c1-node-20260101000000UTC.tar.gz");
  CHECK(objs[0].body == std::string(5000, 'x'));

  up.secret_access_key = "wrong";
  auto bad = upload_s3(up, file, "c2.tar.gz");
  REQUIRE_FALSE(bad);
  CHECK_THAT(bad.error().message, Catch::Contains("HTTP 403"));
  CHECK_FALSE(s3.objects().back().signature_ok);

  up.access_key_id.clear();
  CHECK_FALSE(upload_s3(up, file, "c3.tar.gz"));
}

TEST_CASE("capture upload: blob SAS URL, one PUT", "[capture]") {
  test::TempDir dir;
  const std::string file = dir.path() + "/b.tar.gz";
  std::ofstream(file) << "bundle";
  test::FakeS3 blob("k", "s", "r");
  auto r = upload_blob(blob.url() + "/container?sv=2022&sig=fakesig", file, "c1.tar.gz");
  REQUIRE(r);
  CHECK(*r == blob.url() + "/container/c1.tar.gz");
  auto objs = blob.objects();
  REQUIRE(objs.size() == 1);
  CHECK(objs[0].signature_ok);
  CHECK(objs[0].body == "bundle");
  CHECK_FALSE(upload_blob("not a url", file, "c1.tar.gz"));
}

TEST_CASE("capture config: enableCapture, captureOutputRoot, captureMaxDuration", "[capture]") {
  auto c = load_config_yaml("enableCapture: true\ncaptureOutputRoot: /data/captures\ncaptureMaxDuration: 10m\n");
  REQUIRE(c);
  CHECK(c->enable_capture);
  CHECK(c->capture_output_root == "/data/captures");
  CHECK(c->capture_max_duration == std::chrono::minutes(10));
  CHECK_FALSE(Config{}.enable_capture);
  CHECK(Config{}.capture_output_root == "/var/log/retina");
  auto rel = load_config_yaml("captureOutputRoot: relative/dir\n");
  REQUIRE_FALSE(rel);
  CHECK_THAT(rel.error().message, Catch::Contains("captureOutputRoot"));
  auto zero = load_config_yaml("captureMaxDuration: 0s\n");
  REQUIRE_FALSE(zero);
  CHECK_THAT(zero.error().message, Catch::Contains("captureMaxDuration"));
}

namespace {

Result<Spec> flags_spec(std::vector<std::string> args) {
  CLI::App app{"t"};
  CliFlags flags;
  add_create_flags(app, flags);
  args.insert(args.begin(), "create");
  std::vector<const char*> argv;
  for (const auto& a : args) argv.push_back(a.c_str());
  app.parse(static_cast<int>(argv.size()), argv.data());
  return spec_from_flags(flags);
}

}  // namespace

TEST_CASE("capture CLI flags: Retina's names make the same spec the agent reads", "[capture]") {
  auto s = flags_spec({"--name", "web", "--pod-selectors", "app=web,tier in (a,b)", "--namespace-selectors",
                       "kubernetes.io/metadata.name=shop", "--node-names", "n1, n2", "--duration", "45s",
                       "--max-size", "7", "--packet-size", "96", "--tcpdump-filter", "tcp", "--include-filter",
                       "10.0.0.1:80", "--host-path", "captures/x", "--s3-bucket", "b", "--format", "pcapng"});
  REQUIRE(s);
  CHECK(s->name == "web");
  CHECK(s->duration == std::chrono::seconds(45));
  CHECK(s->max_capture_bytes == 7ull << 20);
  CHECK(s->packet_size == 96);
  CHECK(s->node_names == std::vector<std::string>{"n1", "n2"});
  CHECK(s->pod_selector.matches({"app=web", "tier=b"}));
  CHECK(s->namespace_selector.matches({"kubernetes.io/metadata.name=shop"}));
  CHECK(s->format == FileFormat::kPcapng);
  CHECK(s->s3.bucket == "b");
  auto named = flags_spec({"--name", "n", "--namespace", "shop", "--pod-names", "web-0, db/db-1", "--file-count", "5"});
  REQUIRE(named);
  // Bare names are qualified with --namespace: the agent API body has none.
  CHECK(named->pod_names == std::vector<std::string>{"shop/web-0", "db/db-1"});
  CHECK(named->file_count == 5);
  auto obj = parse_request_json(capture_object_json(*s, "shop"));
  REQUIRE(obj);
  CHECK(obj->namespace_ == "shop");
  CHECK(spec_to_json(*obj) == spec_to_json(*s));

  const std::pair<std::vector<std::string>, const char*> bad[] = {
      {{"--name", "Web!"}, "capture name"},
      {{"--name", "a", "--duration", "0s"}, "--duration"},
      {{"--name", "a", "--duration", "later"}, "--duration"},
      {{"--name", "a", "--max-size", "0"}, "--max-size"},
      {{"--name", "a", "--packet-size", "10"}, "--packet-size"},
      {{"--name", "a", "--pod-selectors", "app in web"}, "--pod-selectors"},
      {{"--name", "a", "--include-filter", "1.2.3:80"}, "not an IP address"},
      {{"--name", "a", "--s3-bucket", "b", "--s3-access-key-id", "k"}, "go together"},
      {{"--name", "a", "--file-count", "0"}, "--file-count"},
      {{"--name", "a", "--pod-names", "Bad_Name"}, "podNames"},
  };
  for (const auto& [args, needle] : bad) {
    INFO(args.front() << " " << args.back());
    auto r = flags_spec(args);
    REQUIRE_FALSE(r);
    CHECK_THAT(r.error().message, Catch::Contains(needle));
  }
}

#ifdef RETINA_CLI_PATH
TEST_CASE("retina capture CLI: creates, lists and deletes Capture objects through a kubeconfig", "[capture]") {
  test::FakeApiServer api(test::FakeApiServer::Options{.tls = false});
  test::TempDir dir;
  const std::string kubeconfig = dir.path() + "/kubeconfig";
  std::ofstream(kubeconfig) << fmt::format(
      "apiVersion: v1\nkind: Config\ncurrent-context: fake\nclusters:\n- name: fake\n  cluster: {{server: \"{}\"}}\n"
      "contexts:\n- name: fake\n  context: {{cluster: fake, user: nobody}}\nusers:\n- name: nobody\n  user: {{}}\n",
      api.url());
  const std::string cli = fmt::format("{} capture", RETINA_CLI_PATH);
  const std::string kc = " --kubeconfig " + kubeconfig;
  std::string out;
  REQUIRE(test::sh_status(cli + " create --name web --namespace shop --pod-selectors app=web --duration 30s "
                                "--tcpdump-filter 'tcp port 443' --no-wait" + kc, &out) == 0);
  CHECK_THAT(out, Catch::Contains("Capture shop/web created"));
  const std::string obj = api.object("captures", "shop", "web");
  REQUIRE_FALSE(obj.empty());
  auto spec = parse_request_json(obj);
  REQUIRE(spec);
  CHECK(spec->tcpdump_filter == "tcp port 443");
  CHECK(spec->duration == std::chrono::seconds(30));
  CHECK(spec->pod_selector.matches({"app=web"}));

  // An agent's status shows in list.
  api.upsert("captures", obj.substr(0, obj.size() - 1) +
                             R"(,"status":{"nodes":{"node-a":{"name":"web","node":"node-a","state":"Completed","packets":42,"kernelDropped":0,"bundle":"web-node-a-20260101000000UTC.tar.gz"}}}})");
  REQUIRE(test::sh_status(cli + " list --namespace shop" + kc, &out) == 0);
  CHECK_THAT(out, Catch::Contains("node-a"));
  CHECK_THAT(out, Catch::Contains("Completed"));
  CHECK_THAT(out, Catch::Contains("web-node-a-20260101000000UTC.tar.gz"));

  // Bad flags exit 2 without touching the cluster; S3 keys stay out of objects.
  CHECK(test::sh_status(cli + " create --name x --duration 0s --no-wait" + kc, &out) == 2);
  CHECK(test::sh_status(cli + " create --name y --s3-bucket b --s3-access-key-id k --s3-secret-access-key s --no-wait" + kc,
                        &out) == 1);
  CHECK(api.object("captures", "default", "y").empty());

  // download: each reporting node's bundle through the API server's node proxy to its agent.
  httplib::Server agent;
  agent.Get("/captures/web", [](const httplib::Request&, httplib::Response& res) {
    res.set_content(R"({"name":"web","state":"Completed","bundle":"web-node-a-20260101000000UTC.tar.gz"})", "application/json");
  });
  agent.Get("/captures/web/download", [](const httplib::Request&, httplib::Response& res) {
    res.set_content(std::string("\x1f\x8b bundle bytes", 15), "application/gzip");
  });
  const int port = agent.bind_to_any_port("127.0.0.1");
  REQUIRE(port > 0);
  std::thread serving([&] { agent.listen_after_bind(); });
  test::TempDir into;
  const int rc = test::sh_status(
      fmt::format("{} download --name web --namespace shop --agent-port {} --output {}{}", cli, port, into.path(), kc), &out);
  agent.stop();
  serving.join();
  INFO(out);
  REQUIRE(rc == 0);
  CHECK(api.proxied() == std::vector<std::string>{fmt::format("node-a:{}/captures/web", port),
                                                 fmt::format("node-a:{}/captures/web/download", port)});
  std::ifstream got(into.path() + "/web-node-a-20260101000000UTC.tar.gz", std::ios::binary);
  std::string body((std::istreambuf_iterator<char>(got)), std::istreambuf_iterator<char>());
  CHECK(body == std::string("\x1f\x8b bundle bytes", 15));
  // A node whose agent is not reachable fails the download.
  CHECK(test::sh_status(fmt::format("{} download --name web --namespace shop --node-names node-b --agent-port {} --output {}{}",
                                    cli, port, into.path(), kc),
                        &out) == 1);

  REQUIRE(test::sh_status(cli + " delete --name web --namespace shop" + kc, &out) == 0);
  CHECK(api.object("captures", "shop", "web").empty());
}
#endif
