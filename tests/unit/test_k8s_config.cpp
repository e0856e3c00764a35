// ClientConfig from kubeconfig files and the in-cluster service account.
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include <absl/strings/escaping.h>
#include <catch2/catch.hpp>

#include "retina/ip_cache.hpp"
#include "retina/k8s/watcher.hpp"
#include "support/fake_apiserver.hpp"

using namespace retina;
using namespace retina::k8s;

namespace {

const std::string kCaPem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
const std::string kKeyPem = "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n";

std::string b64(const std::string& s) { return absl::Base64Escape(s); }

// A temporary directory removed at the end of the test.
struct TempDir {
  TempDir() {
    char tmpl[] = "/tmp/retina-k8s-cfg-XXXXXX";
    path = mkdtemp(tmpl);
  }
  ~TempDir() { std::filesystem::remove_all(path); }
  std::string write(const std::string& name, const std::string& text) const {
    const std::string p = path + "/" + name;
    std::ofstream(p) << text;
    return p;
  }
  std::string path;
};

std::string kubeconfig(const std::string& cluster_body, const std::string& user_body,
                       const std::string& current = "dev") {
  return "apiVersion: v1\nkind: Config\ncurrent-context: " + current +
         "\ncontexts:\n- name: dev\n  context:\n    cluster: c1\n    user: u1\n    namespace: team\n"
         "- name: nouser\n  context:\n    cluster: c1\n"
         "clusters:\n- name: c1\n  cluster:\n" +
         cluster_body + "users:\n- name: u1\n  user:\n" + user_body;
}

std::string error_of(const Result<ClientConfig>& r) { return r ? std::string("(ok)") : r.error().message; }

}  // namespace

TEST_CASE("k8s config: kubeconfig with inline CA, token and client certificate", "[k8s]") {
  auto r = parse_kubeconfig(kubeconfig("    server: https://10.0.0.1:6443/\n    certificate-authority-data: " +
                                           b64(kCaPem) + "\n",
                                       "    token: abc123\n    client-certificate-data: " + b64(kCaPem) +
                                           "\n    client-key-data: " + b64(kKeyPem) + "\n"),
                            "/home/me/.kube");
  REQUIRE(r);
  CHECK(r->server == "https://10.0.0.1:6443");
  CHECK(r->ca_pem == kCaPem);
  CHECK(r->ca_file.empty());
  CHECK(r->token == "abc123");
  CHECK(r->client_cert_pem == kCaPem);
  CHECK(r->client_key_pem == kKeyPem);
  CHECK(r->namespace_ == "team");
  CHECK(r->source.find("context dev") != std::string::npos);
  CHECK_FALSE(r->insecure_skip_tls_verify);
}

TEST_CASE("k8s config: file references are relative to the kubeconfig", "[k8s]") {
  auto r = parse_kubeconfig(kubeconfig("    server: http://127.0.0.1:8001\n    certificate-authority: certs/ca.crt\n",
                                       "    tokenFile: ../tok\n    client-certificate: /abs/c.crt\n    client-key: k.key\n"),
                            "/home/me/.kube");
  REQUIRE(r);
  CHECK(r->server == "http://127.0.0.1:8001");
  CHECK(r->ca_file == "/home/me/.kube/certs/ca.crt");
  CHECK(r->token_file == "/home/me/tok");
  CHECK(r->client_cert_file == "/abs/c.crt");
  CHECK(r->client_key_file == "/home/me/.kube/k.key");

  auto hyphen = parse_kubeconfig(kubeconfig("    server: https://h\n    insecure-skip-tls-verify: true\n",
                                            "    token-file: t\n"),
                                 "/d");
  REQUIRE(hyphen);
  CHECK(hyphen->token_file == "/d/t");
  CHECK(hyphen->insecure_skip_tls_verify);

  auto chosen = parse_kubeconfig(kubeconfig("    server: https://h\n", "    token: x\n"), "/d", "nouser");
  REQUIRE(chosen);
  CHECK(chosen->token.empty());
  CHECK(chosen->namespace_ == "default");
}

TEST_CASE("k8s config: malformed kubeconfigs get clear errors", "[k8s]") {
  const std::string ok_cluster = "    server: https://h:443\n";
  const std::string ok_user = "    token: t\n";
  struct Case {
    std::string yaml;
    std::string context;
    std::string expect;
  };
  const std::vector<Case> cases = {
      {"{{{", "", "yaml: line 1"},
      {"- a\n- b\n", "", "expected a mapping"},
      {kubeconfig(ok_cluster, ok_user, "\"\""), "", "current-context is not set"},
      {kubeconfig(ok_cluster, ok_user, "prod"), "", "context \"prod\" not found (contexts: dev, nouser)"},
      {kubeconfig(ok_cluster, ok_user), "staging", "context \"staging\" not found"},
      {"current-context: a\ncontexts:\n- name: a\n  context: {cluster: missing}\n", "", "unknown cluster \"missing\""},
      {"current-context: a\ncontexts:\n- name: a\n  context: {user: u}\n", "", "context \"a\": cluster is required"},
      {"current-context: a\ncontexts:\n- name: a\n  context: {cluster: c, user: ghost}\nclusters:\n- name: c\n  cluster: {server: https://h}\n",
       "", "unknown user \"ghost\""},
      {kubeconfig("    insecure-skip-tls-verify: true\n", ok_user), "", "cluster \"c1\": server is required"},
      {kubeconfig("    server: h:443\n", ok_user), "", "must be an http:// or https:// URL"},
      {kubeconfig(ok_cluster + "    certificate-authority-data: '***'\n", ok_user), "",
       "certificate-authority-data is not valid base64"},
      {kubeconfig(ok_cluster + "    certificate-authority-data: " + b64("hello") + "\n", ok_user), "",
       "does not hold a PEM certificate"},
      {kubeconfig(ok_cluster + "    insecure-skip-tls-verify: maybe\n", ok_user), "",
       "insecure-skip-tls-verify must be true or false"},
      {kubeconfig(ok_cluster + "    insecure-skip-tls-verify: true\n    certificate-authority: ca.crt\n", ok_user), "",
       "cannot be combined"},
      {kubeconfig(ok_cluster, "    client-certificate-data: " + b64(kCaPem) + "\n"), "", "client-certificate needs client-key"},
      {kubeconfig(ok_cluster, "    client-key: k.pem\n"), "", "client-key needs client-certificate"},
      {kubeconfig(ok_cluster, "    client-key-data: '%%'\n    client-certificate: c\n"), "", "client-key-data is not valid base64"},
      {kubeconfig(ok_cluster, "    exec:\n      command: aws\n"), "", "exec credential plugins are not supported"},
      {kubeconfig(ok_cluster, "    auth-provider:\n      name: gcp\n"), "", "auth-provider plugins are not supported"},
      {kubeconfig(ok_cluster, "    username: admin\n"), "", "username and password go together"},
      {kubeconfig(ok_cluster, "    token: [a, b]\n"), "", "token must be a string"},
      {"clusters: {c: 1}\n", "", "clusters must be a list"},
      {"clusters:\n- cluster: {server: https://h}\n", "", "clusters[0]: name is required"},
      {"clusters:\n- name: c\n  cluster: https://h\n", "", "cluster must be a mapping"},
      {kubeconfig(ok_cluster + "    tls-server-name: api\n", ok_user), "", "tls-server-name is not supported"},
  };
  for (const auto& c : cases) {
    INFO(c.yaml);
    auto r = parse_kubeconfig(c.yaml, "/d", c.context);
    REQUIRE_FALSE(r);
    INFO(r.error().message);
    CHECK(r.error().message.find(c.expect) != std::string::npos);
  }
}

TEST_CASE("k8s config: KUBECONFIG lists merge, first definition wins", "[k8s]") {
  TempDir dir;
  const std::string a = dir.write("a.yaml",
                                  "current-context: second\nclusters:\n- name: c\n  cluster: {server: https://first}\n"
                                  "users:\n- name: u\n  user: {token: from-a}\n");
  const std::string b = dir.write("b.yaml",
                                  "current-context: ignored\ncontexts:\n- name: second\n  context: {cluster: c, user: u}\n"
                                  "clusters:\n- name: c\n  cluster: {server: https://second}\n");
  auto r = load_kubeconfig(a + ":" + dir.path + "/missing.yaml:" + b);
  REQUIRE(r);
  CHECK(r->server == "https://first");
  CHECK(r->token == "from-a");

  auto single_missing = load_kubeconfig(dir.path + "/missing.yaml");
  REQUIRE_FALSE(single_missing);
  CHECK(single_missing.error().message.find("missing.yaml") != std::string::npos);
  CHECK(single_missing.error().message.find("No such file") != std::string::npos);

  auto none = load_kubeconfig(dir.path + "/x:" + dir.path + "/y");
  REQUIRE_FALSE(none);
  CHECK(none.error().message.find("none of") != std::string::npos);

  // resolve_client_config prefers the explicit path.
  auto resolved = resolve_client_config(a + ":" + b);
  REQUIRE(resolved);
  CHECK(resolved->server == "https://first");
}

TEST_CASE("k8s config: in-cluster service account", "[k8s]") {
  TempDir dir;
  InClusterPaths paths;
  paths.token_file = dir.path + "/token";
  paths.ca_file = dir.path + "/ca.crt";
  paths.namespace_file = dir.path + "/namespace";
  paths.host_env = "RETINA_TEST_K8S_HOST";
  paths.port_env = "RETINA_TEST_K8S_PORT";
  ::unsetenv("RETINA_TEST_K8S_HOST");
  ::unsetenv("RETINA_TEST_K8S_PORT");

  auto r = in_cluster_config(paths);
  REQUIRE_FALSE(r);
  CHECK(r.error().message.find("RETINA_TEST_K8S_HOST and RETINA_TEST_K8S_PORT are not set") != std::string::npos);

  ::setenv("RETINA_TEST_K8S_HOST", "fd00::1", 1);
  ::setenv("RETINA_TEST_K8S_PORT", "443", 1);
  r = in_cluster_config(paths);
  REQUIRE_FALSE(r);
  CHECK(error_of(r).find(paths.token_file) != std::string::npos);

  dir.write("token", "");
  r = in_cluster_config(paths);
  REQUIRE_FALSE(r);
  CHECK(error_of(r).find("is empty") != std::string::npos);

  dir.write("token", "eyJhbGciOi\n");
  r = in_cluster_config(paths);
  REQUIRE_FALSE(r);
  CHECK(error_of(r).find("ca.crt") != std::string::npos);

  dir.write("ca.crt", kCaPem);
  dir.write("namespace", "kube-system\n");
  r = in_cluster_config(paths);
  REQUIRE(r);
  CHECK(r->server == "https://[fd00::1]:443");
  CHECK(r->token_file == paths.token_file);
  CHECK(r->token.empty());  // read (and re-read) from the file
  CHECK(r->ca_file == paths.ca_file);
  CHECK(r->namespace_ == "kube-system");
  CHECK(r->source == "in-cluster");
  ::unsetenv("RETINA_TEST_K8S_HOST");
  ::unsetenv("RETINA_TEST_K8S_PORT");
}

TEST_CASE("k8s config: a kubeconfig with a CA file reaches the fake API server", "[k8s]") {
  retina::test::FakeApiServer server;
  TempDir dir;
  const std::string path = dir.write(
      "config", "current-context: fake\ncontexts:\n- name: fake\n  context: {cluster: fake}\nclusters:\n- name: fake\n"
                "  cluster:\n    server: " + server.url() + "\n    certificate-authority: " + server.pki().ca_file + "\n");
  auto client = load_kubeconfig(path);
  REQUIRE(client);
  CHECK(client->ca_file == server.pki().ca_file);
  IpCache cache;
  WatcherOptions o;
  o.client = *client;
  o.remote_context = true;
  auto w = Watcher::create(o, cache);
  REQUIRE(w);
  REQUIRE((*w)->start());
  CHECK((*w)->wait_synced(std::chrono::seconds(15)));
}
