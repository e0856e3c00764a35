#include "support/fake_apiserver.hpp"

#include <algorithm>
#include <condition_variable>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <stdexcept>
#include <thread>

#include <fmt/format.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <simdjson.h>

#ifndef CPPHTTPLIB_OPENSSL_SUPPORT
#define CPPHTTPLIB_OPENSSL_SUPPORT
#endif
#include <httplib.h>

namespace retina::test {
namespace {

// ---- certificates ----

struct PkeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
struct X509Free {
  void operator()(X509* x) const { X509_free(x); }
};
using Pkey = std::unique_ptr<EVP_PKEY, PkeyFree>;
using Cert = std::unique_ptr<X509, X509Free>;

[[noreturn]] void ssl_fail(const char* what) { throw std::runtime_error(fmt::format("test PKI: {} failed", what)); }

Pkey make_key() {
  Pkey k(EVP_EC_gen("P-256"));
  if (!k) ssl_fail("EVP_EC_gen");
  return k;
}

void add_ext(X509* cert, X509* issuer, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
  if (!ext) ssl_fail("X509V3_EXT_conf_nid");
  X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
}

// Signs with `issuer_key`; a null issuer makes the certificate self-signed.
Cert make_cert(EVP_PKEY* key, const char* cn, long serial, X509* issuer, EVP_PKEY* issuer_key,
               const std::vector<std::pair<int, const char*>>& exts) {
  Cert c(X509_new());
  if (!c) ssl_fail("X509_new");
  X509_set_version(c.get(), 2);
  ASN1_INTEGER_set(X509_get_serialNumber(c.get()), serial);
  X509_gmtime_adj(X509_getm_notBefore(c.get()), -3600);
  X509_gmtime_adj(X509_getm_notAfter(c.get()), 7L * 24 * 3600);
  X509_set_pubkey(c.get(), key);
  X509_NAME* name = X509_get_subject_name(c.get());
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>(cn), -1, -1, 0);
  X509_set_issuer_name(c.get(), issuer ? X509_get_subject_name(issuer) : name);
  for (const auto& [nid, value] : exts) add_ext(c.get(), issuer ? issuer : c.get(), nid, value);
  if (!X509_sign(c.get(), issuer_key ? issuer_key : key, EVP_sha256())) ssl_fail("X509_sign");
  return c;
}

std::string pem_of(X509* c) {
  BIO* b = BIO_new(BIO_s_mem());
  PEM_write_bio_X509(b, c);
  char* data = nullptr;
  const long n = BIO_get_mem_data(b, &data);
  std::string out(data, static_cast<size_t>(n));
  BIO_free(b);
  return out;
}

std::string pem_of(EVP_PKEY* k) {
  BIO* b = BIO_new(BIO_s_mem());
  PEM_write_bio_PrivateKey(b, k, nullptr, nullptr, 0, nullptr, nullptr);
  char* data = nullptr;
  const long n = BIO_get_mem_data(b, &data);
  std::string out(data, static_cast<size_t>(n));
  BIO_free(b);
  return out;
}

void write_file(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  if (!out) throw std::runtime_error("test PKI: cannot write " + path);
}

// ---- JSON helpers ----

std::string quote(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(c);
    } else if (static_cast<unsigned char>(c) < 0x20) {
      out += fmt::format("\\u{:04x}", static_cast<unsigned>(c));
    } else {
      out.push_back(c);
    }
  }
  out.push_back('"');
  return out;
}

std::string object_of(const k8sjson::Pairs& pairs) {
  std::string out = "{";
  for (size_t i = 0; i < pairs.size(); ++i) {
    if (i) out.push_back(',');
    out += quote(pairs[i].first) + ":" + quote(pairs[i].second);
  }
  return out + "}";
}

std::string string_list(const std::vector<std::string>& v) {
  std::string out = "[";
  for (size_t i = 0; i < v.size(); ++i) {
    if (i) out.push_back(',');
    out += quote(v[i]);
  }
  return out + "]";
}

struct ResourceInfo {
  const char* name;
  const char* path;
  const char* kind;
  const char* api_version;
};
constexpr ResourceInfo kResources[] = {
    {"pods", "/api/v1/pods", "Pod", "v1"},
    {"services", "/api/v1/services", "Service", "v1"},
    {"nodes", "/api/v1/nodes", "Node", "v1"},
    {"namespaces", "/api/v1/namespaces", "Namespace", "v1"},
    {"replicasets", "/apis/apps/v1/replicasets", "ReplicaSet", "apps/v1"},
    {"metricsconfigurations", "/apis/retina.sh/v1alpha1/metricsconfigurations", "MetricsConfiguration",
     "retina.sh/v1alpha1"},
    {"captures", "/apis/retina.sh/v1alpha1/captures", "Capture", "retina.sh/v1alpha1"},
    {"secrets", "/api/v1/secrets", "Secret", "v1"},
};

const ResourceInfo& info_of(const std::string& resource) {
  for (const auto& r : kResources) {
    if (resource == r.name) return r;
  }
  throw std::invalid_argument("fake API server: unknown resource " + resource);
}

std::string status_json(int code, std::string_view reason, std::string_view message) {
  return fmt::format(R"({{"kind":"Status","apiVersion":"v1","metadata":{{}},"status":"Failure","message":{},"reason":{},"code":{}}})",
                     quote(message), quote(reason), code);
}

}  // namespace

TestPki::TestPki() {
  char tmpl[] = "/tmp/retina-k8s-pki-XXXXXX";
  if (!mkdtemp(tmpl)) throw std::runtime_error("test PKI: mkdtemp failed");
  dir = tmpl;
  Pkey ca_key = make_key();
  Cert ca = make_cert(ca_key.get(), "retina-test-ca", 1, nullptr, nullptr,
                      {{NID_basic_constraints, "critical,CA:TRUE"},
                       {NID_key_usage, "critical,keyCertSign,cRLSign"},
                       {NID_subject_key_identifier, "hash"}});
  Pkey server_key = make_key();
  Cert server = make_cert(server_key.get(), "localhost", 2, ca.get(), ca_key.get(),
                          {{NID_basic_constraints, "critical,CA:FALSE"},
                           {NID_key_usage, "critical,digitalSignature,keyEncipherment"},
                           {NID_ext_key_usage, "serverAuth"},
                           {NID_subject_alt_name, "IP:127.0.0.1,DNS:localhost"}});
  Pkey client_key = make_key();
  Cert client = make_cert(client_key.get(), "retina-test-client", 3, ca.get(), ca_key.get(),
                          {{NID_basic_constraints, "critical,CA:FALSE"},
                           {NID_key_usage, "critical,digitalSignature"},
                           {NID_ext_key_usage, "clientAuth"}});
  ca_pem = pem_of(ca.get());
  client_cert_pem = pem_of(client.get());
  client_key_pem = pem_of(client_key.get());
  ca_file = dir + "/ca.crt";
  server_cert_file = dir + "/server.crt";
  server_key_file = dir + "/server.key";
  client_cert_file = dir + "/client.crt";
  client_key_file = dir + "/client.key";
  write_file(ca_file, ca_pem);
  write_file(server_cert_file, pem_of(server.get()));
  write_file(server_key_file, pem_of(server_key.get()));
  write_file(client_cert_file, client_cert_pem);
  write_file(client_key_file, client_key_pem);
}

TestPki::~TestPki() {
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
}

// ---- server state ----

struct Watch {
  std::string node_filter;  // spec.nodeName from the fieldSelector
  bool bookmarks = false;
  std::deque<std::string> out;
  bool drop = false;
  bool end_after_flush = false;
};

struct StoredObject {
  std::string ns, name, node;
  std::string body;  // JSON without resourceVersion
  uint64_t rv = 0;
};

struct HistoryEvent {
  uint64_t rv;
  std::string node;
  std::string line;
};

struct Collection {
  std::map<std::string, StoredObject> objects;  // "ns/name", sorted for pagination
  std::vector<HistoryEvent> history;
  uint64_t compacted_rv = 0;
  bool not_found = false;
  size_t lists = 0, pages = 0, watches = 0;
  std::vector<std::shared_ptr<Watch>> open;
  std::map<std::string, std::string> last_list_params, last_watch_params;
  std::vector<std::pair<std::string, std::string>> patches;  // ("ns/name", body) of status patches
};

struct FakeApiServer::State {
  Options opts;
  TestPki pki;
  mutable std::mutex mu;
  std::condition_variable cv;
  std::map<std::string, Collection> collections;
  uint64_t rv = 1000;
  size_t unauthorized = 0;
  std::vector<std::string> proxied;  // "node:port/path" of node-proxy requests
  bool stopping = false;
  int port = 0;
  std::unique_ptr<httplib::Server> server;
  std::thread listener;

  // Sets metadata.resourceVersion in an object written with "metadata":{.
  static std::string with_rv(const std::string& body, uint64_t rv) {
    const std::string marker = "\"metadata\":{";
    const size_t at = body.find(marker);
    if (at == std::string::npos) throw std::invalid_argument("fake API server: object without \"metadata\":{");
    std::string out = body;
    const size_t insert_at = at + marker.size();
    const bool empty = out[insert_at] == '}';
    out.insert(insert_at, fmt::format("\"resourceVersion\":\"{}\"{}", rv, empty ? "" : ","));
    return out;
  }

  static std::string event_line(std::string_view type, const std::string& object) {
    return fmt::format("{{\"type\":\"{}\",\"object\":{}}}\n", type, object);
  }

  void broadcast(Collection& c, const std::string& node, const std::string& line) {
    for (auto& w : c.open) {
      if (!w->node_filter.empty() && w->node_filter != node) continue;
      w->out.push_back(line);
    }
    cv.notify_all();
  }

  bool authorized(const httplib::Request& req) {
    if (opts.token.empty()) return true;
    return req.get_header_value("Authorization") == "Bearer " + opts.token;
  }

  void handle(const ResourceInfo& info, const httplib::Request& req, httplib::Response& res) {
    std::unique_lock l(mu);
    if (!authorized(req)) {
      ++unauthorized;
      res.status = 401;
      res.set_content(status_json(401, "Unauthorized", "Unauthorized"), "application/json");
      return;
    }
    Collection& c = collections[info.name];
    if (c.not_found) {
      res.status = 404;
      res.set_content(status_json(404, "NotFound", "the server could not find the requested resource"),
                      "application/json");
      return;
    }
    std::map<std::string, std::string> params(req.params.begin(), req.params.end());
    std::string node_filter;
    if (auto it = params.find("fieldSelector"); it != params.end()) {
      constexpr std::string_view kNode = "spec.nodeName=";
      if (!it->second.starts_with(kNode)) {
        res.status = 400;
        res.set_content(status_json(400, "BadRequest", "unsupported field selector " + it->second),
                        "application/json");
        return;
      }
      node_filter = it->second.substr(kNode.size());
    }
    const std::string watch_param = params.count("watch") ? params["watch"] : "";
    if (watch_param == "1" || watch_param == "true") {
      c.last_watch_params = params;
      ++c.watches;
      watch(info, c, params, node_filter, res);
    } else {
      c.last_list_params = params;
      list(info, c, params, node_filter, res);
    }
  }

  void list(const ResourceInfo& info, Collection& c, std::map<std::string, std::string>& params,
            const std::string& node_filter, httplib::Response& res) {
    ++c.pages;
    const size_t limit = params.count("limit") ? std::stoul(params["limit"]) : 0;
    std::string after;
    uint64_t list_rv = rv;
    if (auto it = params.find("continue"); it != params.end() && !it->second.empty()) {
      // continue token: "<rv>/<last key>"
      const size_t slash = it->second.find('/');
      list_rv = std::stoull(it->second.substr(0, slash));
      after = it->second.substr(slash + 1);
    } else {
      ++c.lists;
    }
    std::string items;
    size_t n = 0;
    std::string next;
    for (auto it = after.empty() ? c.objects.begin() : c.objects.upper_bound(after); it != c.objects.end(); ++it) {
      if (!node_filter.empty() && it->second.node != node_filter) continue;
      if (limit && n == limit) {
        next = fmt::format("{}/{}", list_rv, std::prev(it)->first);
        break;
      }
      if (n++) items.push_back(',');
      items += with_rv(it->second.body, it->second.rv);
    }
    res.set_content(fmt::format(R"({{"kind":"{}List","apiVersion":"{}","metadata":{{"resourceVersion":"{}"{}}},"items":[{}]}})",
                                info.kind, info.api_version, list_rv,
                                next.empty() ? "" : fmt::format(",\"continue\":{}", quote(next)), items),
                    "application/json");
  }

  void watch(const ResourceInfo& info, Collection& c, std::map<std::string, std::string>& params,
             const std::string& node_filter, httplib::Response& res) {
    const std::string rv_param = params.count("resourceVersion") ? params["resourceVersion"] : "";
    const uint64_t from = rv_param.empty() ? 0 : std::stoull(rv_param);
    auto w = std::make_shared<Watch>();
    w->node_filter = node_filter;
    w->bookmarks = params.count("allowWatchBookmarks") && params["allowWatchBookmarks"] == "true";
    if (from != 0 && from < c.compacted_rv) {
      const std::string msg = fmt::format("too old resource version: {} ({})", from, c.compacted_rv);
      if (opts.gone_mode == GoneMode::kHttpStatus) {
        res.status = 410;
        res.set_content(status_json(410, "Expired", msg), "application/json");
        return;
      }
      w->out.push_back(event_line("ERROR", status_json(410, "Expired", msg)));
      w->end_after_flush = true;
    } else if (from == 0) {
      // No version: the current objects as ADDED events, then changes.
      for (const auto& [key, o] : c.objects) {
        if (node_filter.empty() || o.node == node_filter) w->out.push_back(event_line("ADDED", with_rv(o.body, o.rv)));
      }
    } else {
      for (const auto& e : c.history) {
        if (e.rv > from && (node_filter.empty() || node_filter == e.node)) w->out.push_back(e.line);
      }
    }
    c.open.push_back(w);
    const int64_t timeout_s = params.count("timeoutSeconds") ? std::stoll(params["timeoutSeconds"]) : 1800;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_s);
    const std::string resource = info.name;
    res.set_chunked_content_provider(
        "application/json",
        [this, w, deadline](size_t, httplib::DataSink& sink) {
          std::unique_lock l(mu);
          cv.wait_for(l, std::chrono::milliseconds(20), [&] { return stopping || w->drop || !w->out.empty(); });
          if (stopping || w->drop) return false;  // cut: no final chunk
          std::deque<std::string> out;
          out.swap(w->out);
          const bool end = w->end_after_flush;
          l.unlock();
          for (const auto& s : out) {
            if (!sink.write(s.data(), s.size())) return false;
          }
          if (end || std::chrono::steady_clock::now() >= deadline) sink.done();
          return true;
        },
        [this, w, resource](bool) {
          std::lock_guard l(mu);
          auto& open = collections[resource].open;
          open.erase(std::remove(open.begin(), open.end(), w), open.end());
        });
  }
};

FakeApiServer::FakeApiServer() : FakeApiServer(Options{}) {}

FakeApiServer::FakeApiServer(Options options) : s_(std::make_unique<State>()) {
  s_->opts = std::move(options);
  for (const auto& r : kResources) s_->collections[r.name];
  start();
}

FakeApiServer::~FakeApiServer() { stop(); }

void FakeApiServer::start() {
  State& s = *s_;
  std::unique_ptr<httplib::Server> svr;
  if (s.opts.tls) {
    svr = std::make_unique<httplib::SSLServer>(s.pki.server_cert_file.c_str(), s.pki.server_key_file.c_str(),
                                               s.opts.require_client_cert ? s.pki.ca_file.c_str() : nullptr);
  } else {
    svr = std::make_unique<httplib::Server>();
  }
  if (!svr->is_valid()) throw std::runtime_error("fake API server: invalid server (certificates?)");
  // Watches hold a worker each, seven per agent. A SIGKILLed agent's watches
  // keep theirs until the next write or their timeout (an idle stream never
  // notices the closed peer), so tests that kill agents repeatedly need room
  // for every killed run's streams beside the live one's.
  svr->new_task_queue = [] { return new httplib::ThreadPool(128); };
  for (const auto& r : kResources) {
    const ResourceInfo* info = &r;
    svr->Get(r.path, [this, info](const httplib::Request& req, httplib::Response& res) { s_->handle(*info, req, res); });
  }
  // One object: a node (cluster scoped) or a namespaced object such as a Secret.
  auto get_one = [this](const std::string& resource, const std::string& ns, const std::string& name,
                        const httplib::Request& req, httplib::Response& res) {
    std::lock_guard l(s_->mu);
    if (!s_->authorized(req)) return void(res.status = 401);
    const Collection& c = s_->collections[resource];
    auto it = c.objects.find(fmt::format("{}/{}", ns, name));
    if (it == c.objects.end()) {
      res.status = 404;
      res.set_content(status_json(404, "NotFound", fmt::format("{} \"{}\" not found", resource, name)), "application/json");
      return;
    }
    res.set_content(State::with_rv(it->second.body, it->second.rv), "application/json");
  };
  svr->Get("/api/v1/nodes/([^/]+)", [get_one](const httplib::Request& req, httplib::Response& res) {
    get_one("nodes", "", req.matches[1], req, res);
  });
  svr->Get("/api/v1/namespaces/([^/]+)/(secrets|pods|services)/([^/]+)",
           [get_one](const httplib::Request& req, httplib::Response& res) {
             get_one(req.matches[2], req.matches[1], req.matches[3], req, res);
           });
  // The node proxy to an agent port: every node is this host.
  svr->Get("/api/v1/nodes/([^/:]+):([0-9]+)/proxy(/.*)", [this](const httplib::Request& req, httplib::Response& res) {
    if (!s_->authorized(req)) return void(res.status = 401);
    httplib::Client agent("127.0.0.1", std::stoi(req.matches[2].str()));
    auto r = agent.Get(req.matches[3].str());
    if (!r) {
      res.status = 503;
      res.set_content(status_json(503, "ServiceUnavailable", "error trying to reach the node"), "application/json");
      return;
    }
    res.status = r->status;
    res.set_content(r->body, r->get_header_value("Content-Type"));
    {
      std::lock_guard l(s_->mu);
      s_->proxied.push_back(req.matches[1].str() + ":" + req.matches[2].str() + req.matches[3].str());
    }
  });
  // Capture objects: created (the CLI), deleted, and status merge patches
  // (the agents), recorded as sent.
  const std::string captures_ns = "/apis/retina\\.sh/v1alpha1/namespaces/([^/]+)/captures";
  svr->Get(captures_ns + "/([^/]+)", [get_one](const httplib::Request& req, httplib::Response& res) {
    get_one("captures", req.matches[1], req.matches[2], req, res);
  });
  svr->Post(captures_ns, [this](const httplib::Request& req, httplib::Response& res) {
    if (!s_->authorized(req)) return void(res.status = 401);
    upsert("captures", req.body);
    res.status = 201;
    res.set_content(req.body, "application/json");
  });
  svr->Delete(captures_ns + "/([^/]+)", [this](const httplib::Request& req, httplib::Response& res) {
    if (!s_->authorized(req)) return void(res.status = 401);
    remove("captures", req.matches[1], req.matches[2]);
    res.set_content("{}", "application/json");
  });
  svr->Patch(captures_ns + "/([^/]+)/status", [this](const httplib::Request& req, httplib::Response& res) {
    if (!s_->authorized(req)) return void(res.status = 401);
    if (req.get_header_value("Content-Type") != "application/merge-patch+json") {
      res.status = 415;
      return;
    }
    std::lock_guard l(s_->mu);
    s_->collections["captures"].patches.emplace_back(fmt::format("{}/{}", req.matches[1].str(), req.matches[2].str()),
                                                     req.body);
    res.set_content("{}", "application/json");
  });
  {
    std::lock_guard l(s.mu);
    s.stopping = false;
  }
  if (s.port == 0) {
    s.port = svr->bind_to_any_port("127.0.0.1");
    if (s.port <= 0) throw std::runtime_error("fake API server: bind failed");
  } else {
    // The old listener's port, reused (SO_REUSEADDR); retry briefly while it is released.
    bool bound = false;
    for (int i = 0; i < 200 && !bound; ++i) {
      bound = svr->bind_to_port("127.0.0.1", s.port);
      if (!bound) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    if (!bound) throw std::runtime_error(fmt::format("fake API server: cannot bind port {} again", s.port));
  }
  s.server = std::move(svr);
  httplib::Server* raw = s.server.get();
  s.listener = std::thread([raw] { raw->listen_after_bind(); });
  wait_until([raw] { return raw->is_running(); }, std::chrono::seconds(5));
}

void FakeApiServer::stop() {
  State& s = *s_;
  if (!s.server) return;
  {
    std::lock_guard l(s.mu);
    s.stopping = true;
  }
  s.cv.notify_all();
  s.server->stop();
  if (s.listener.joinable()) s.listener.join();
  s.server.reset();
  std::lock_guard l(s.mu);
  for (auto& [name, c] : s.collections) c.open.clear();
}

int FakeApiServer::port() const { return s_->port; }
std::string FakeApiServer::url() const {
  return fmt::format("{}://127.0.0.1:{}", s_->opts.tls ? "https" : "http", s_->port);
}
const TestPki& FakeApiServer::pki() const { return s_->pki; }

void FakeApiServer::upsert(const std::string& resource, const std::string& json) {
  info_of(resource);
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  if (parser.parse(json).get(doc)) throw std::invalid_argument("fake API server: invalid JSON: " + json);
  std::string_view ns, name, node;
  if (doc["metadata"]["namespace"].get(ns) != simdjson::SUCCESS) ns = {};  // cluster scoped
  if (doc["metadata"]["name"].get(name)) throw std::invalid_argument("fake API server: object without a name");
  if (doc["spec"]["nodeName"].get(node) != simdjson::SUCCESS) node = {};
  State& s = *s_;
  std::lock_guard l(s.mu);
  Collection& c = s.collections[resource];
  const std::string key = fmt::format("{}/{}", ns, name);
  const bool exists = c.objects.contains(key);
  StoredObject& o = c.objects[key];
  o.ns = ns;
  o.name = name;
  o.node = node;
  o.body = json;
  o.rv = ++s.rv;
  const std::string line = State::event_line(exists ? "MODIFIED" : "ADDED", State::with_rv(o.body, o.rv));
  c.history.push_back({o.rv, o.node, line});
  s.broadcast(c, o.node, line);
}

void FakeApiServer::remove(const std::string& resource, const std::string& ns, const std::string& name) {
  State& s = *s_;
  std::lock_guard l(s.mu);
  Collection& c = s.collections[resource];
  auto it = c.objects.find(fmt::format("{}/{}", ns, name));
  if (it == c.objects.end()) throw std::invalid_argument("fake API server: no such object " + ns + "/" + name);
  const uint64_t rv = ++s.rv;
  const std::string line = State::event_line("DELETED", State::with_rv(it->second.body, rv));
  const std::string node = it->second.node;
  c.objects.erase(it);
  c.history.push_back({rv, node, line});
  s.broadcast(c, node, line);
}

void FakeApiServer::bookmark(const std::string& resource) {
  const ResourceInfo& info = info_of(resource);
  State& s = *s_;
  std::lock_guard l(s.mu);
  Collection& c = s.collections[resource];
  const std::string line = State::event_line(
      "BOOKMARK", fmt::format(R"({{"kind":"{}","apiVersion":"{}","metadata":{{"resourceVersion":"{}"}}}})", info.kind,
                              info.api_version, s.rv));
  for (auto& w : c.open) {
    if (w->bookmarks) w->out.push_back(line);
  }
  s.cv.notify_all();
}

void FakeApiServer::send_raw(const std::string& resource, const std::string& bytes) {
  State& s = *s_;
  std::lock_guard l(s.mu);
  for (auto& w : s.collections[resource].open) w->out.push_back(bytes);
  s.cv.notify_all();
}

void FakeApiServer::drop_watches(const std::string& resource) {
  State& s = *s_;
  std::lock_guard l(s.mu);
  for (auto& w : s.collections[resource].open) w->drop = true;
  s.cv.notify_all();
}

void FakeApiServer::expire(const std::string& resource) {
  State& s = *s_;
  std::lock_guard l(s.mu);
  Collection& c = s.collections[resource];
  // Compaction moves past every version handed out so far.
  c.compacted_rv = ++s.rv;
  c.history.clear();
  const std::string msg = fmt::format("too old resource version: ({})", c.compacted_rv);
  for (auto& w : c.open) {
    if (s.opts.gone_mode == GoneMode::kHttpStatus) {
      w->drop = true;  // the reconnect gets the 410
    } else {
      w->out.push_back(State::event_line("ERROR", status_json(410, "Expired", msg)));
      w->end_after_flush = true;
    }
  }
  s.cv.notify_all();
}

void FakeApiServer::set_gone_mode(GoneMode mode) {
  std::lock_guard l(s_->mu);
  s_->opts.gone_mode = mode;
}

void FakeApiServer::set_not_found(const std::string& resource, bool not_found) {
  std::lock_guard l(s_->mu);
  s_->collections[resource].not_found = not_found;
  if (not_found) {
    for (auto& w : s_->collections[resource].open) w->drop = true;
    s_->cv.notify_all();
  }
}

void FakeApiServer::set_token(std::string token) {
  std::lock_guard l(s_->mu);
  s_->opts.token = std::move(token);
}

std::vector<std::pair<std::string, std::string>> FakeApiServer::patches(const std::string& resource) const {
  std::lock_guard l(s_->mu);
  auto it = s_->collections.find(resource);
  return it == s_->collections.end() ? std::vector<std::pair<std::string, std::string>>{} : it->second.patches;
}

std::string FakeApiServer::object(const std::string& resource, const std::string& ns, const std::string& name) const {
  std::lock_guard l(s_->mu);
  auto it = s_->collections.find(resource);
  if (it == s_->collections.end()) return {};
  auto o = it->second.objects.find(fmt::format("{}/{}", ns, name));
  return o == it->second.objects.end() ? std::string() : o->second.body;
}

std::vector<std::string> FakeApiServer::proxied() const {
  std::lock_guard l(s_->mu);
  return s_->proxied;
}

uint64_t FakeApiServer::resource_version() const {
  std::lock_guard l(s_->mu);
  return s_->rv;
}

size_t FakeApiServer::list_requests(const std::string& resource) const {
  std::lock_guard l(s_->mu);
  return s_->collections.at(resource).lists;
}

size_t FakeApiServer::page_requests(const std::string& resource) const {
  std::lock_guard l(s_->mu);
  return s_->collections.at(resource).pages;
}

size_t FakeApiServer::watch_requests(const std::string& resource) const {
  std::lock_guard l(s_->mu);
  return s_->collections.at(resource).watches;
}

size_t FakeApiServer::open_watches(const std::string& resource) const {
  std::lock_guard l(s_->mu);
  return s_->collections.at(resource).open.size();
}

size_t FakeApiServer::unauthorized_requests() const {
  std::lock_guard l(s_->mu);
  return s_->unauthorized;
}

std::string FakeApiServer::last_param(const std::string& resource, bool watch, const std::string& key) const {
  std::lock_guard l(s_->mu);
  const Collection& c = s_->collections.at(resource);
  const auto& params = watch ? c.last_watch_params : c.last_list_params;
  auto it = params.find(key);
  return it == params.end() ? std::string() : it->second;
}

bool FakeApiServer::wait_drained(const std::string& resource, std::chrono::milliseconds timeout) const {
  return wait_until(
      [&] {
        std::lock_guard l(s_->mu);
        for (const auto& w : s_->collections.at(resource).open) {
          if (!w->out.empty()) return false;
        }
        return true;
      },
      timeout);
}

bool wait_until(const std::function<bool()>& pred, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (pred()) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
}

// ---- object builders ----

namespace k8sjson {

std::string pod(const Pod& p) {
  std::string owners;
  if (!p.owner_kind.empty()) {
    owners = fmt::format(
        R"(,"ownerReferences":[{{"apiVersion":"apps/v1","kind":{},"name":{},"uid":"0b0c","controller":true,"blockOwnerDeletion":true}}])",
        quote(p.owner_kind), quote(p.owner_name));
  }
  std::string status = fmt::format(R"("phase":{})", quote(p.phase));
  if (!p.ips.empty()) {
    status += fmt::format(R"(,"podIP":{})", quote(p.ips.front()));
    if (!p.only_pod_ip) {
      status += ",\"podIPs\":[";
      for (size_t i = 0; i < p.ips.size(); ++i) status += fmt::format(R"({}{{"ip":{}}})", i ? "," : "", quote(p.ips[i]));
      status += "]";
    }
  }
  return fmt::format(
      R"({{"kind":"Pod","apiVersion":"v1","metadata":{{"name":{},"namespace":{},"uid":"5f1e","creationTimestamp":"2024-05-01T10:00:00Z","labels":{},"annotations":{}{}}},)"
      R"("spec":{{"containers":[{{"name":"app","image":"nginx:1.25","ports":[{{"containerPort":80,"protocol":"TCP"}}]}}],"nodeName":{},"hostNetwork":{},"dnsPolicy":"ClusterFirst"}},)"
      R"("status":{{{},"hostIP":"10.0.0.1","conditions":[{{"type":"Ready","status":"True"}}]}}}})",
      quote(p.name), quote(p.ns), object_of(p.labels), object_of(p.annotations), owners, quote(p.node),
      p.host_network ? "true" : "false", status);
}

std::string service(const std::string& ns, const std::string& name, const std::vector<std::string>& cluster_ips,
                    const Pairs& selector, const Pairs& labels) {
  return fmt::format(
      R"({{"kind":"Service","apiVersion":"v1","metadata":{{"name":{},"namespace":{},"labels":{}}},)"
      R"("spec":{{"ports":[{{"port":80,"targetPort":8080,"protocol":"TCP"}}],"selector":{},"clusterIP":{},"clusterIPs":{},"type":"ClusterIP"}},"status":{{"loadBalancer":{{}}}}}})",
      quote(name), quote(ns), object_of(labels), object_of(selector),
      quote(cluster_ips.empty() ? "" : cluster_ips.front()), string_list(cluster_ips));
}

std::string node(const std::string& name, const std::vector<std::string>& internal_ips, const std::string& zone,
                 const Pairs& labels) {
  Pairs all = labels;
  all.emplace_back("kubernetes.io/hostname", name);
  if (!zone.empty()) all.emplace_back("topology.kubernetes.io/zone", zone);
  std::string addrs = R"([{"type":"Hostname","address":)" + quote(name) + "}";
  for (const auto& ip : internal_ips) addrs += R"(,{"type":"InternalIP","address":)" + quote(ip) + "}";
  addrs += R"(,{"type":"ExternalIP","address":"203.0.113.9"}])";
  return fmt::format(
      R"({{"kind":"Node","apiVersion":"v1","metadata":{{"name":{},"labels":{}}},"spec":{{"podCIDR":"10.244.0.0/24"}},)"
      R"("status":{{"addresses":{},"conditions":[{{"type":"Ready","status":"True"}}],"nodeInfo":{{"kubeletVersion":"v1.29.0"}}}}}})",
      quote(name), object_of(all), addrs);
}

std::string namespace_(const std::string& name, bool observe, const Pairs& labels) {
  return fmt::format(
      R"({{"kind":"Namespace","apiVersion":"v1","metadata":{{"name":{},"labels":{},"annotations":{}}},"spec":{{"finalizers":["kubernetes"]}},"status":{{"phase":"Active"}}}})",
      quote(name), object_of(labels), observe ? R"({"retina.sh":"observe"})" : "{}");
}

std::string replicaset(const std::string& ns, const std::string& name, const std::string& owner_kind,
                       const std::string& owner_name) {
  std::string owners;
  if (!owner_kind.empty()) {
    owners = fmt::format(R"(,"ownerReferences":[{{"apiVersion":"apps/v1","kind":{},"name":{},"uid":"aa","controller":true}}])",
                         quote(owner_kind), quote(owner_name));
  }
  return fmt::format(
      R"({{"kind":"ReplicaSet","apiVersion":"apps/v1","metadata":{{"name":{},"namespace":{}{}}},"spec":{{"replicas":2}},"status":{{"replicas":2}}}})",
      quote(name), quote(ns), owners);
}

std::string secret(const std::string& ns, const std::string& name, const Pairs& data) {
  Pairs encoded;
  for (const auto& [k, v] : data) {
    std::string b64(4 * ((v.size() + 2) / 3) + 1, '\0');
    const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(b64.data()),
                                  reinterpret_cast<const unsigned char*>(v.data()), static_cast<int>(v.size()));
    b64.resize(static_cast<size_t>(n));
    encoded.emplace_back(k, b64);
  }
  return fmt::format(R"({{"kind":"Secret","apiVersion":"v1","metadata":{{"name":{},"namespace":{}}},"type":"Opaque","data":{}}})",
                     quote(name), quote(ns), object_of(encoded));
}

std::string metrics_configuration(const std::string& name, const std::string& creation_timestamp,
                                  const std::string& spec_json) {
  return fmt::format(
      R"({{"apiVersion":"retina.sh/v1alpha1","kind":"MetricsConfiguration","metadata":{{"name":{},"creationTimestamp":{}}},"spec":{}}})",
      quote(name), quote(creation_timestamp), spec_json);
}

}  // namespace k8sjson
}  // namespace retina::test
