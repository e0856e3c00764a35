// The agent API's /captures routes, over Manager.
#include <string>
#include <string_view>

#include <fmt/format.h>

#include "core/flow_json.hpp"
#include "retina/capture.hpp"

namespace retina::capture {
namespace {

void error_reply(HttpReply& r, int status, std::string_view message) {
  r.status = status;
  r.body = "{\"error\":";
  json::append_string(r.body, message);
  r.body += "}\n";
}

int status_for(const Error& e) {
  switch (e.kind) {
    case Error::Kind::kInvalidArgument:
    case Error::Kind::kParse: return 400;
    case Error::Kind::kNotFound: return 404;
    default: return 500;
  }
}

}  // namespace

bool handle_http(Manager* manager, std::string_view method, std::string_view path, std::string_view body,
                 HttpReply& reply) {
  if (path != "/captures" && !path.starts_with("/captures/")) return false;
  reply = HttpReply{};
  if (!manager) {
    error_reply(reply, 404, "packet capture is disabled on this agent (set enableCapture: true)");
    return true;
  }
  std::string_view rest = path.substr(std::string_view("/captures").size());
  if (!rest.empty()) rest.remove_prefix(1);
  std::string_view name = rest, action;
  if (const size_t slash = rest.find('/'); slash != std::string_view::npos) {
    name = rest.substr(0, slash);
    action = rest.substr(slash + 1);
  }
  if (name.empty()) {
    if (method == "GET") {
      reply.body = "{\"captures\":[";
      bool first = true;
      for (const auto& s : manager->list()) {
        if (!first) reply.body.push_back(',');
        first = false;
        reply.body += status_to_json(s);
      }
      reply.body += "]}\n";
      return true;
    }
    if (method == "POST") {
      auto spec = parse_request_json(body);
      if (!spec) {
        error_reply(reply, 400, spec.error().message);
        return true;
      }
      auto st = manager->start(std::move(*spec));
      if (!st) {
        error_reply(reply, status_for(st.error()), st.error().message);
        return true;
      }
      reply.status = 201;
      reply.body = status_to_json(*st) + "\n";
      return true;
    }
    error_reply(reply, 405, fmt::format("method {} not allowed on /captures; use GET or POST", method));
    return true;
  }
  if (action.empty()) {
    if (method == "GET") {
      auto st = manager->get(name);
      if (!st) return error_reply(reply, 404, st.error().message), true;
      reply.body = status_to_json(*st) + "\n";
      return true;
    }
    if (method == "DELETE") {
      // A running capture is stopped (its bundle is still written); a
      // finished one is forgotten.
      auto st = manager->get(name);
      if (!st) return error_reply(reply, 404, st.error().message), true;
      if (!st->finished()) {
        auto c = manager->cancel(name);
        reply.status = 202;
        reply.body = status_to_json(c ? *c : *st) + "\n";
      } else {
        reply.body = status_to_json(manager->remove(name)) + "\n";
      }
      return true;
    }
    error_reply(reply, 405, fmt::format("method {} not allowed on /captures/NAME; use GET or DELETE", method));
    return true;
  }
  if (action == "download") {
    if (method != "GET") return error_reply(reply, 405, "use GET to download"), true;
    auto st = manager->get(name);
    if (!st) return error_reply(reply, 404, st.error().message), true;
    if (!st->finished()) return error_reply(reply, 409, fmt::format("capture '{}' is still {}", name, to_string(st->state))), true;
    if (st->bundle_path.empty()) return error_reply(reply, 404, fmt::format("capture '{}' left no bundle on this node: {}", name, st->message)), true;
    reply.file_path = st->bundle_path;
    reply.file_name = st->bundle;
    reply.content_type = "application/gzip";
    return true;
  }
  error_reply(reply, 404, "not found; try /captures, /captures/NAME or /captures/NAME/download");
  return true;
}

}  // namespace retina::capture
