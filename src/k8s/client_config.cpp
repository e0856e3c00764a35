// ClientConfig from the pod's service account or from a kubeconfig file.
#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <absl/strings/escaping.h>
#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include "core/strings.hpp"
#include "k8s/file_util.hpp"
#include "retina/k8s/watcher.hpp"

namespace retina::k8s {
namespace {

std::string trim(std::string_view s) { return std::string(retina::text::trim(s)); }

std::string join_path(std::string_view base_dir, const std::string& path) {
  if (path.empty() || path.front() == '/' || base_dir.empty()) return path;
  return (std::filesystem::path(base_dir) / path).lexically_normal().string();
}

Status check_server_url(std::string& server, std::string_view what) {
  while (!server.empty() && server.back() == '/') server.pop_back();
  const bool https = server.starts_with("https://");
  const bool http = server.starts_with("http://");
  const size_t host_at = https ? 8 : 7;
  if ((!https && !http) || server.size() <= host_at) {
    return unexpected(Error::invalid(fmt::format("{}: server \"{}\" must be an http:// or https:// URL", what, server)));
  }
  return ok();
}

// One named entry of clusters/contexts/users and the directory of the file
// that defined it (relative paths are relative to that file).
struct Entry {
  YAML::Node body;
  std::string base_dir;
  std::string file;
};

struct Merged {
  std::string current_context;
  std::map<std::string, Entry> clusters, contexts, users;
};

// Reads the scalar `key` of map `n`; absent -> nullopt; not a scalar -> error.
Result<std::optional<std::string>> scalar(const YAML::Node& n, const char* key, std::string_view where) {
  const YAML::Node v = n[key];
  if (!v || v.IsNull()) return std::optional<std::string>();
  if (!v.IsScalar()) return unexpected(Error::invalid(fmt::format("{}: {} must be a string", where, key)));
  return std::optional<std::string>(v.Scalar());
}

Result<bool> boolean(const YAML::Node& n, const char* key, std::string_view where) {
  const YAML::Node v = n[key];
  if (!v || v.IsNull()) return false;
  bool b = false;
  if (!v.IsScalar() || !YAML::convert<bool>::decode(v, b)) {
    return unexpected(Error::invalid(fmt::format("{}: {} must be true or false", where, key)));
  }
  return b;
}

Result<std::string> base64(const std::string& text, std::string_view where, const char* key) {
  std::string out;
  std::string compact;
  for (char c : text) {
    if (!std::isspace(static_cast<unsigned char>(c))) compact.push_back(c);
  }
  if (compact.empty() || !absl::Base64Unescape(compact, &out) || out.empty()) {
    return unexpected(Error::invalid(fmt::format("{}: {} is not valid base64", where, key)));
  }
  return out;
}

Status add_entries(const YAML::Node& root, const char* list_key, const char* body_key, const std::string& file,
                   const std::string& base_dir, std::map<std::string, Entry>& out) {
  const YAML::Node list = root[list_key];
  if (!list || list.IsNull()) return ok();
  if (!list.IsSequence()) {
    return unexpected(Error::invalid(fmt::format("kubeconfig {}: {} must be a list", file, list_key)));
  }
  size_t i = 0;
  for (const auto& item : list) {
    const std::string where = fmt::format("kubeconfig {}: {}[{}]", file, list_key, i++);
    if (!item.IsMap()) return unexpected(Error::invalid(where + ": must be a mapping with name and " + body_key));
    auto name = scalar(item, "name", where);
    if (!name) return unexpected(name.error());
    if (!*name || (*name)->empty()) return unexpected(Error::invalid(where + ": name is required"));
    const YAML::Node body = item[body_key];
    if (!body || !body.IsMap()) {
      return unexpected(
          Error::invalid(fmt::format("{} ({}): {} must be a mapping", where, **name, body_key)));
    }
    out.try_emplace(**name, Entry{body, base_dir, file});  // the first definition wins
  }
  return ok();
}

Status merge_document(std::string_view yaml, const std::string& file, const std::string& base_dir, Merged& m) {
  YAML::Node root;
  try {
    root = YAML::Load(std::string(yaml));
  } catch (const YAML::Exception& e) {
    if (e.mark.is_null()) return unexpected(Error::parse(fmt::format("kubeconfig {}: yaml: {}", file, e.msg)));
    return unexpected(Error::parse(
        fmt::format("kubeconfig {}: yaml: line {}, column {}: {}", file, e.mark.line + 1, e.mark.column + 1, e.msg)));
  }
  if (root.IsNull()) return ok();  // an empty file contributes nothing
  if (!root.IsMap()) return unexpected(Error::invalid(fmt::format("kubeconfig {}: expected a mapping", file)));
  auto cc = scalar(root, "current-context", "kubeconfig " + file);
  if (!cc) return unexpected(cc.error());
  if (m.current_context.empty() && *cc) m.current_context = **cc;
  if (auto s = add_entries(root, "clusters", "cluster", file, base_dir, m.clusters); !s) return s;
  if (auto s = add_entries(root, "contexts", "context", file, base_dir, m.contexts); !s) return s;
  if (auto s = add_entries(root, "users", "user", file, base_dir, m.users); !s) return s;
  return ok();
}

std::string names_of(const std::map<std::string, Entry>& entries) {
  std::string out;
  for (const auto& [name, e] : entries) {
    if (!out.empty()) out += ", ";
    out += name;
  }
  return out.empty() ? "none" : out;
}

Status read_cluster(const std::string& name, const Entry& e, ClientConfig& c) {
  const std::string where = fmt::format("kubeconfig {}: cluster \"{}\"", e.file, name);
  auto server = scalar(e.body, "server", where);
  if (!server) return unexpected(server.error());
  if (!*server || (*server)->empty()) return unexpected(Error::invalid(where + ": server is required"));
  c.server = trim(**server);
  if (auto s = check_server_url(c.server, where); !s) return s;

  auto insecure = boolean(e.body, "insecure-skip-tls-verify", where);
  if (!insecure) return unexpected(insecure.error());
  c.insecure_skip_tls_verify = *insecure;

  auto ca_data = scalar(e.body, "certificate-authority-data", where);
  if (!ca_data) return unexpected(ca_data.error());
  auto ca_file = scalar(e.body, "certificate-authority", where);
  if (!ca_file) return unexpected(ca_file.error());
  if (*ca_data && !(*ca_data)->empty()) {  // data wins over a file, as in kubectl
    auto pem = base64(**ca_data, where, "certificate-authority-data");
    if (!pem) return unexpected(pem.error());
    if (pem->find("-----BEGIN CERTIFICATE-----") == std::string::npos) {
      return unexpected(Error::invalid(where + ": certificate-authority-data does not hold a PEM certificate"));
    }
    c.ca_pem = std::move(*pem);
  } else if (*ca_file && !(*ca_file)->empty()) {
    c.ca_file = join_path(e.base_dir, **ca_file);
  }
  if (c.insecure_skip_tls_verify && (!c.ca_pem.empty() || !c.ca_file.empty())) {
    return unexpected(Error::invalid(
        where + ": insecure-skip-tls-verify cannot be combined with certificate-authority(-data)"));
  }
  if (YAML::Node t = e.body["tls-server-name"]; t && !t.IsNull()) {
    return unexpected(Error::unsupported(where + ": tls-server-name is not supported"));
  }
  return ok();
}

Status read_user(const std::string& name, const Entry& e, ClientConfig& c) {
  const std::string where = fmt::format("kubeconfig {}: user \"{}\"", e.file, name);
  if (YAML::Node x = e.body["exec"]; x && !x.IsNull()) {
    return unexpected(Error::unsupported(
        where + ": exec credential plugins are not supported; use a token, tokenFile or client certificate "
                "(or run kubectl proxy and point the kubeconfig at http://127.0.0.1:8001)"));
  }
  if (YAML::Node x = e.body["auth-provider"]; x && !x.IsNull()) {
    return unexpected(Error::unsupported(where + ": auth-provider plugins are not supported"));
  }
  auto get = [&](const char* key) -> Result<std::string> {
    auto v = scalar(e.body, key, where);
    if (!v) return unexpected(v.error());
    return *v ? trim(**v) : std::string();
  };
  auto token = get("token");
  if (!token) return unexpected(token.error());
  c.token = std::move(*token);
  // kubectl spells it tokenFile; token-file is accepted too.
  for (const char* key : {"tokenFile", "token-file"}) {
    auto tf = get(key);
    if (!tf) return unexpected(tf.error());
    if (!tf->empty() && c.token_file.empty()) c.token_file = join_path(e.base_dir, *tf);
  }

  auto pem_or_file = [&](const char* data_key, const char* file_key, std::string& pem,
                         std::string& file) -> Status {
    auto data = get(data_key);
    if (!data) return unexpected(data.error());
    if (!data->empty()) {
      auto decoded = base64(*data, where, data_key);
      if (!decoded) return unexpected(decoded.error());
      if (decoded->find("-----BEGIN ") == std::string::npos) {
        return unexpected(Error::invalid(fmt::format("{}: {} does not hold PEM data", where, data_key)));
      }
      pem = std::move(*decoded);
      return ok();
    }
    auto path = get(file_key);
    if (!path) return unexpected(path.error());
    if (!path->empty()) file = join_path(e.base_dir, *path);
    return ok();
  };
  if (auto s = pem_or_file("client-certificate-data", "client-certificate", c.client_cert_pem, c.client_cert_file);
      !s) {
    return s;
  }
  if (auto s = pem_or_file("client-key-data", "client-key", c.client_key_pem, c.client_key_file); !s) return s;
  const bool has_cert = !c.client_cert_pem.empty() || !c.client_cert_file.empty();
  const bool has_key = !c.client_key_pem.empty() || !c.client_key_file.empty();
  if (has_cert != has_key) {
    return unexpected(Error::invalid(where + (has_cert ? ": client-certificate needs client-key"
                                                       : ": client-key needs client-certificate")));
  }

  auto user = get("username");
  if (!user) return unexpected(user.error());
  auto pass = get("password");
  if (!pass) return unexpected(pass.error());
  c.username = std::move(*user);
  c.password = std::move(*pass);
  if (c.username.empty() != c.password.empty()) {
    return unexpected(Error::invalid(where + ": username and password go together"));
  }
  return ok();
}

Result<ClientConfig> resolve(const Merged& m, std::string_view context, std::string_view origin) {
  const std::string ctx_name = context.empty() ? m.current_context : std::string(context);
  if (ctx_name.empty()) {
    return unexpected(Error::invalid(fmt::format(
        "kubeconfig {}: current-context is not set and no context was chosen (contexts: {})", origin,
        names_of(m.contexts))));
  }
  auto ctx = m.contexts.find(ctx_name);
  if (ctx == m.contexts.end()) {
    return unexpected(Error::not_found(fmt::format("kubeconfig {}: context \"{}\" not found (contexts: {})", origin,
                                                   ctx_name, names_of(m.contexts))));
  }
  const std::string where = fmt::format("kubeconfig {}: context \"{}\"", ctx->second.file, ctx_name);
  auto cluster_name = scalar(ctx->second.body, "cluster", where);
  if (!cluster_name) return unexpected(cluster_name.error());
  if (!*cluster_name || (*cluster_name)->empty()) return unexpected(Error::invalid(where + ": cluster is required"));
  auto cluster = m.clusters.find(**cluster_name);
  if (cluster == m.clusters.end()) {
    return unexpected(Error::not_found(fmt::format("{}: unknown cluster \"{}\" (clusters: {})", where,
                                                   **cluster_name, names_of(m.clusters))));
  }
  auto user_name = scalar(ctx->second.body, "user", where);
  if (!user_name) return unexpected(user_name.error());
  auto ns = scalar(ctx->second.body, "namespace", where);
  if (!ns) return unexpected(ns.error());

  ClientConfig c;
  if (auto s = read_cluster(cluster->first, cluster->second, c); !s) return unexpected(s.error());
  if (*user_name && !(*user_name)->empty()) {
    auto user = m.users.find(**user_name);
    if (user == m.users.end()) {
      return unexpected(Error::not_found(fmt::format("{}: unknown user \"{}\" (users: {})", where, **user_name,
                                                     names_of(m.users))));
    }
    if (auto s = read_user(user->first, user->second, c); !s) return unexpected(s.error());
  }
  c.namespace_ = *ns && !(*ns)->empty() ? **ns : "default";
  c.source = fmt::format("kubeconfig {} (context {})", origin, ctx_name);
  return c;
}

}  // namespace

Result<ClientConfig> in_cluster_config(const InClusterPaths& paths) {
  const char* host = std::getenv(paths.host_env.c_str());
  const char* port = std::getenv(paths.port_env.c_str());
  if (!host || !*host || !port || !*port) {
    return unexpected(Error::not_found(fmt::format(
        "in-cluster config: {} and {} are not set (not running in a pod?)", paths.host_env, paths.port_env)));
  }
  std::string h = trim(host);
  if (h.find(':') != std::string::npos && h.front() != '[') h = "[" + h + "]";  // IPv6 literal
  ClientConfig c;
  c.server = fmt::format("https://{}:{}", h, trim(port));
  if (auto s = check_server_url(c.server, "in-cluster config"); !s) return unexpected(s.error());
  // The token is re-read periodically; read it once now so a missing mount
  // is reported at start-up.
  auto token = read_small_file(paths.token_file);
  if (!token) return unexpected(token.error().wrap("in-cluster config: service account token"));
  if (trim(*token).empty()) {
    return unexpected(Error::invalid(fmt::format("in-cluster config: token file {} is empty", paths.token_file)));
  }
  c.token_file = paths.token_file;
  if (auto ca = read_small_file(paths.ca_file); !ca) {
    return unexpected(ca.error().wrap("in-cluster config: service account CA"));
  }
  c.ca_file = paths.ca_file;
  if (auto ns = read_small_file(paths.namespace_file)) {
    c.namespace_ = trim(*ns);
  }
  if (c.namespace_.empty()) c.namespace_ = "default";
  c.source = "in-cluster";
  return c;
}

Result<ClientConfig> parse_kubeconfig(std::string_view yaml, std::string_view base_dir, std::string_view context) {
  Merged m;
  if (auto s = merge_document(yaml, "<inline>", std::string(base_dir), m); !s) return unexpected(s.error());
  return resolve(m, context, "<inline>");
}

Result<ClientConfig> load_kubeconfig(const std::string& paths, std::string_view context) {
  Merged m;
  std::vector<std::string> list;
  size_t start = 0;
  while (start <= paths.size()) {
    const size_t colon = paths.find(':', start);
    std::string p = paths.substr(start, colon == std::string::npos ? std::string::npos : colon - start);
    if (!p.empty()) list.push_back(std::move(p));
    if (colon == std::string::npos) break;
    start = colon + 1;
  }
  if (list.empty()) return unexpected(Error::invalid("kubeconfig: no path given"));
  size_t loaded = 0;
  for (const auto& path : list) {
    auto text = read_small_file(path);
    if (!text) {
      // In a list, missing files are skipped as kubectl does; a single path must exist.
      if (list.size() > 1 && text.error().code == ENOENT) continue;
      return unexpected(text.error().wrap("kubeconfig"));
    }
    const std::string dir = std::filesystem::path(path).parent_path().string();
    if (auto s = merge_document(*text, path, dir, m); !s) return unexpected(s.error());
    ++loaded;
  }
  if (loaded == 0) return unexpected(Error::not_found(fmt::format("kubeconfig: none of {} exists", paths)));
  return resolve(m, context, paths);
}

Result<ClientConfig> resolve_client_config(const std::string& kubeconfig) {
  if (!kubeconfig.empty()) return load_kubeconfig(kubeconfig);
  if (const char* env = std::getenv("KUBECONFIG"); env && *env) return load_kubeconfig(env);
  InClusterPaths in_cluster;
  if (const char* host = std::getenv(in_cluster.host_env.c_str()); host && *host) {
    return in_cluster_config(in_cluster);
  }
  if (const char* home = std::getenv("HOME"); home && *home) {
    const std::string path = std::string(home) + "/.kube/config";
    std::error_code ec;
    if (std::filesystem::exists(path, ec)) return load_kubeconfig(path);
  }
  return unexpected(Error::not_found(
      "kubernetes: no configuration found: pass --kubeconfig, set KUBECONFIG, run in a pod, or create "
      "~/.kube/config"));
}

}  // namespace retina::k8s
