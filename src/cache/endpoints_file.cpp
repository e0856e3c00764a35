// Endpoints file parser (format in endpoints_file.hpp and docs/endpoints-file.md).
#include "cache/endpoints_file.hpp"

#include <absl/container/flat_hash_map.h>
#include <absl/container/flat_hash_set.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <simdjson.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cerrno>
#include <optional>
#include <sstream>
#include <string>

#include "cache/ip_index.hpp"
#include "core/file.hpp"

namespace retina {
namespace {

// Files larger than this are rejected before parsing.
constexpr size_t kMaxFileBytes = 256u << 20;

// A JSON value with the part of YAML::Node's interface the entry parser
// uses, so JSON files skip yaml-cpp (whose node tree took about 10 KiB per
// entry) and one parser validates both formats.
// simdjson keeps no positions: JSON errors name the entry and field only.
class JsonNode {
 public:
  JsonNode() = default;
  explicit JsonNode(simdjson::dom::element e) : el_(e) {
    switch (e.type()) {
      case simdjson::dom::element_type::OBJECT: kind_ = Kind::kMap; break;
      case simdjson::dom::element_type::ARRAY: kind_ = Kind::kList; break;
      case simdjson::dom::element_type::NULL_VALUE: kind_ = Kind::kNull; break;
      default: kind_ = Kind::kScalar; break;
    }
  }
  static JsonNode key(std::string_view k) {
    JsonNode n;
    n.kind_ = Kind::kKey;
    n.key_ = k;
    return n;
  }

  bool IsMap() const { return kind_ == Kind::kMap; }
  bool IsSequence() const { return kind_ == Kind::kList; }
  bool IsScalar() const { return kind_ == Kind::kScalar || kind_ == Kind::kKey; }
  bool IsNull() const { return kind_ == Kind::kNull; }
  bool IsBool() const { return kind_ == Kind::kScalar && el_.is_bool(); }
  simdjson::dom::element element() const { return el_; }

  // Strings as they are; numbers and booleans as JSON writes them.
  std::string Scalar() const {
    if (kind_ == Kind::kKey) return std::string(key_);
    std::string_view sv;
    if (el_.get_string().get(sv) == simdjson::SUCCESS) return std::string(sv);
    return simdjson::minify(el_);
  }
  size_t size() const {
    simdjson::dom::array a;
    return kind_ == Kind::kList && el_.get_array().get(a) == simdjson::SUCCESS ? a.size() : 0;
  }

 private:
  enum class Kind : uint8_t { kNull, kScalar, kKey, kList, kMap };
  simdjson::dom::element el_;
  std::string_view key_;
  Kind kind_ = Kind::kNull;
};

const char* type_name(const JsonNode& n) {
  if (n.IsNull()) return "null";
  if (n.IsScalar()) return "a scalar";
  if (n.IsSequence()) return "a list";
  return "a mapping";
}

std::string at(const JsonNode&) { return {}; }

// JSON booleans, and strings YAML reads as booleans ("true", "yes", ...).
bool decode_bool(const JsonNode& n, bool& out) {
  if (n.IsBool()) return n.element().get_bool().get(out) == simdjson::SUCCESS;
  std::string_view sv;
  if (n.element().get_string().get(sv) != simdjson::SUCCESS) return false;
  return YAML::convert<bool>::decode(YAML::Node(std::string(sv)), out);
}

std::vector<std::pair<JsonNode, JsonNode>> map_entries(const JsonNode& n) {
  std::vector<std::pair<JsonNode, JsonNode>> out;
  simdjson::dom::object o;
  if (!n.IsMap() || n.element().get_object().get(o) != simdjson::SUCCESS) return out;
  for (auto kv : o) out.emplace_back(JsonNode::key(kv.key), JsonNode(kv.value));
  return out;
}

std::vector<JsonNode> list_items(const JsonNode& n) {
  std::vector<JsonNode> out;
  simdjson::dom::array a;
  if (!n.IsSequence() || n.element().get_array().get(a) != simdjson::SUCCESS) return out;
  out.reserve(a.size());
  for (auto e : a) out.emplace_back(e);
  return out;
}

// Builds one Endpoint from entry `index`; the first problem found is the
// error. Node: YamlNode or JsonNode.
template <typename Node>
class EntryParser {
 public:
  EntryParser(size_t index, const Node& node) : index_(index), node_(node) {}

  Result<Endpoint> parse() {
    if (!node_.IsMap())
      return fail("", fmt::format("expected a mapping, got {}{}", type_name(node_), at(node_)));
    Endpoint ep;
    ep.kind = EndpointKind::kPod;
    bool have_name = false, have_ips = false, have_namespace = false;
    bool have_workload = false, have_workloads = false;
    Node workload, workloads, ns_node;
    for (const auto& kv : map_entries(node_)) {
      if (!kv.first.IsScalar())
        return fail("", fmt::format("field names must be scalars, got {}{}", type_name(kv.first), at(kv.first)));
      const std::string field = kv.first.Scalar();
      const Node& v = kv.second;
      if (v.IsNull()) continue;  // `zone:` with no value: as if absent
      if (field == "kind") {
        auto s = scalar(field, v);
        if (!s) return unexpected(s.error());
        auto k = parse_kind(*s);
        if (!k)
          return fail(field, fmt::format("unknown kind \"{}\" (expected pod, service, node or external){}", *s, at(v)));
        ep.kind = *k;
      } else if (field == "namespace") {
        if (auto r = scalar_into(field, v, ep.namespace_); !r) return unexpected(r.error());
        have_namespace = true;
        ns_node = v;
      } else if (field == "name") {
        if (auto r = scalar_into(field, v, ep.name); !r) return unexpected(r.error());
        have_name = !ep.name.empty();
      } else if (field == "ips") {
        if (auto r = parse_ips(v, ep.ips); !r) return unexpected(r.error());
        have_ips = true;
      } else if (field == "labels") {
        if (auto r = parse_labels(v, ep.labels); !r) return unexpected(r.error());
      } else if (field == "workload") {
        workload = v;
        have_workload = true;
      } else if (field == "workloads") {
        workloads = v;
        have_workloads = true;
      } else if (field == "node") {
        if (auto r = scalar_into(field, v, ep.node_name); !r) return unexpected(r.error());
      } else if (field == "zone") {
        if (auto r = scalar_into(field, v, ep.zone); !r) return unexpected(r.error());
      } else if (field == "service") {
        if (auto r = scalar_into(field, v, ep.service); !r) return unexpected(r.error());
      } else if (field == "observe") {
        bool b = false;
        if (!decode_bool(v, b))
          return fail(field, fmt::format("expected true or false, got {}{}", describe(v), at(v)));
        ep.observe = b;
      } else {
        return fail(field, fmt::format("unknown field{} (known: kind, namespace, name, ips, labels, workload, "
                                       "workloads, node, zone, service, observe)",
                                       at(kv.first)));
      }
    }
    if (!have_name) return fail("name", "missing or empty; every entry needs a name");
    if (!have_ips || ep.ips.empty()) return fail("ips", "missing or empty; every entry needs at least one address");
    if (have_workload && have_workloads)
      return fail("workloads", fmt::format("give either workload or workloads, not both{}", at(workloads)));
    std::vector<Workload> chain;
    if (have_workload) {
      Workload w;
      if (auto r = parse_workload("workload", workload, w); !r) return unexpected(r.error());
      chain.push_back(std::move(w));
    } else if (have_workloads) {
      if (!workloads.IsSequence())
        return fail("workloads", fmt::format("expected a list of {{kind, name}}, got {}{}", type_name(workloads),
                                             at(workloads)));
      size_t i = 0;
      for (const auto& item : list_items(workloads)) {
        Workload w;
        if (auto r = parse_workload(fmt::format("workloads[{}]", i++), item, w); !r) return unexpected(r.error());
        chain.push_back(std::move(w));
      }
    }
    ep.workloads = std::move(chain);
    if (ep.kind == EndpointKind::kNode && have_namespace && !ep.namespace_.empty())
      return fail("namespace", fmt::format("nodes have no namespace{}", at(ns_node)));
    if (!have_namespace && (ep.kind == EndpointKind::kPod || ep.kind == EndpointKind::kService))
      ep.namespace_ = "default";
    return ep;
  }

 private:
  unexpected<Error> fail(std::string_view field, std::string_view what) const {
    if (field.empty()) return unexpected(Error::invalid(fmt::format("endpoints[{}]: {}", index_, what)));
    return unexpected(Error::invalid(fmt::format("endpoints[{}].{}: {}", index_, field, what)));
  }

  static std::string describe(const Node& v) {
    if (v.IsScalar()) return fmt::format("\"{}\"", v.Scalar());
    return type_name(v);
  }

  Result<std::string> scalar(std::string_view field, const Node& v) const {
    if (!v.IsScalar()) return fail(field, fmt::format("expected a string, got {}{}", type_name(v), at(v)));
    return v.Scalar();
  }

  Status scalar_into(std::string_view field, const Node& v, std::string& out) const {
    auto s = scalar(field, v);
    if (!s) return unexpected(s.error());
    out = std::move(*s);
    return ok();
  }
  Status scalar_into(std::string_view field, const Node& v, IString& out) const {
    auto s = scalar(field, v);
    if (!s) return unexpected(s.error());
    out = std::move(*s);
    return ok();
  }
  Status parse_labels(const Node& v, Interned<std::vector<std::string>>& out) const {
    std::vector<std::string> labels;
    if (auto r = parse_labels(v, labels); !r) return r;
    out = std::move(labels);
    return ok();
  }

  static std::optional<EndpointKind> parse_kind(std::string_view s) {
    std::string lower(s);
    std::transform(lower.begin(), lower.end(), lower.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    if (lower == "pod") return EndpointKind::kPod;
    if (lower == "service") return EndpointKind::kService;
    if (lower == "node") return EndpointKind::kNode;
    if (lower == "external") return EndpointKind::kExternal;
    return std::nullopt;
  }

  Status parse_ips(const Node& v, std::vector<IpAddr>& out) const {
    if (!v.IsSequence())
      return fail("ips", fmt::format("expected a list of addresses, got {}{}", type_name(v), at(v)));
    out.reserve(v.size());
    size_t i = 0;
    for (const auto& item : list_items(v)) {
      const std::string field = fmt::format("ips[{}]", i++);
      if (!item.IsScalar()) return fail(field, fmt::format("expected an address, got {}{}", type_name(item), at(item)));
      auto ip = IpAddr::parse(item.Scalar());
      if (!ip) return fail(field, fmt::format("\"{}\" is not an IPv4 or IPv6 address{}", item.Scalar(), at(item)));
      if (ip->is_unspecified())
        return fail(field, fmt::format("\"{}\" is the unspecified address{}", item.Scalar(), at(item)));
      if (std::find(out.begin(), out.end(), *ip) != out.end())
        return fail(field, fmt::format("{} is listed twice{}", ip->to_string(), at(item)));
      out.push_back(*ip);
    }
    return ok();
  }

  // {key: value} or ["key=value"]; stored as sorted "key=value".
  Status parse_labels(const Node& v, std::vector<std::string>& out) const {
    absl::flat_hash_set<std::string> keys;
    auto add = [&](std::string_view field, const Node& where, std::string key,
                   std::string value) -> Status {
      if (key.empty()) return fail(field, fmt::format("empty label key{}", at(where)));
      if (!keys.insert(key).second) return fail(field, fmt::format("label \"{}\" given twice{}", key, at(where)));
      out.push_back(key + "=" + value);
      return ok();
    };
    if (v.IsMap()) {
      for (const auto& kv : map_entries(v)) {
        if (!kv.first.IsScalar())
          return fail("labels", fmt::format("label keys must be strings, got {}{}", type_name(kv.first), at(kv.first)));
        const std::string key = kv.first.Scalar();
        const std::string field = fmt::format("labels.{}", key);
        std::string value;
        if (!kv.second.IsNull()) {
          if (!kv.second.IsScalar())
            return fail(field, fmt::format("expected a string value, got {}{}", type_name(kv.second), at(kv.second)));
          value = kv.second.Scalar();
        }
        if (auto r = add(field, kv.first, key, std::move(value)); !r) return r;
      }
    } else if (v.IsSequence()) {
      size_t i = 0;
      for (const auto& item : list_items(v)) {
        const std::string field = fmt::format("labels[{}]", i++);
        if (!item.IsScalar())
          return fail(field, fmt::format("expected \"key=value\", got {}{}", type_name(item), at(item)));
        const std::string& s = item.Scalar();
        auto eq = s.find('=');
        if (eq == std::string::npos)
          return fail(field, fmt::format("expected \"key=value\", got \"{}\"{}", s, at(item)));
        if (auto r = add(field, item, s.substr(0, eq), s.substr(eq + 1)); !r) return r;
      }
    } else {
      return fail("labels",
                  fmt::format("expected a mapping of key: value or a list of \"key=value\", got {}{}", type_name(v), at(v)));
    }
    std::sort(out.begin(), out.end());
    return ok();
  }

  Status parse_workload(const std::string& field, const Node& v, Workload& w) const {
    if (!v.IsMap()) return fail(field, fmt::format("expected {{kind, name}}, got {}{}", type_name(v), at(v)));
    for (const auto& kv : map_entries(v)) {
      const std::string sub = kv.first.IsScalar() ? kv.first.Scalar() : std::string();
      std::string* dst = sub == "kind" ? &w.kind : sub == "name" ? &w.name : nullptr;
      if (!dst) return fail(field, fmt::format("unknown field \"{}\" (expected kind and name){}", sub, at(kv.first)));
      if (kv.second.IsNull()) continue;
      if (auto r = scalar_into(field + "." + sub, kv.second, *dst); !r) return r;
    }
    if (w.kind.empty()) return fail(field + ".kind", fmt::format("missing or empty{}", at(v)));
    if (w.name.empty()) return fail(field + ".name", fmt::format("missing or empty{}", at(v)));
    return ok();
  }

  size_t index_;
  const Node& node_;
};

// The root's "endpoints" value (null when empty), after checking the root.
template <typename Node>
Result<Node> endpoints_list(const Node& root) {
  if (root.IsNull())
    return unexpected(Error::invalid("empty document: expected a mapping with an \"endpoints\" list "
                                     "(write \"endpoints: []\" for none)"));
  if (!root.IsMap())
    return unexpected(Error::invalid(
        fmt::format("expected a mapping with an \"endpoints\" list, got {}{}", type_name(root), at(root))));
  Node list;
  bool have_list = false;
  for (const auto& kv : map_entries(root)) {
    const std::string key = kv.first.IsScalar() ? kv.first.Scalar() : std::string();
    if (key != "endpoints")
      return unexpected(Error::invalid(
          fmt::format("unknown top-level field \"{}\"{} (expected \"endpoints\")", key, at(kv.first))));
    list = kv.second;
    have_list = true;
  }
  if (!have_list) return unexpected(Error::invalid("missing \"endpoints\" list"));
  if (!list.IsNull() && !list.IsSequence())
    return unexpected(Error::invalid(fmt::format("endpoints: expected a list, got {}{}", type_name(list), at(list))));
  return list;
}

// Parses entries one at a time, in order, and checks that no kind/namespace/
// name and no address is listed twice; keeps the first error.
class EntryCollector {
 public:
  void reserve(size_t n) {
    out_.reserve(n);
    key_index_.reserve(n);
    ip_index_.reserve(n);
  }

  template <typename Node>
  void add(const Node& node) {
    const size_t i = next_++;
    if (error_) return;
    auto ep = EntryParser<Node>(i, node).parse();
    if (!ep) {
      error_ = ep.error();
      return;
    }
    auto [kit, kfresh] = key_index_.emplace(ep->key(), i);
    if (!kfresh) {
      error_ = Error::invalid(fmt::format("endpoints[{}]: {} {}/{} is already listed as endpoints[{}]{}", i,
                                          to_string(ep->kind), ep->namespace_, ep->name, kit->second, at(node)));
      return;
    }
    for (size_t j = 0; j < ep->ips.size(); ++j) {
      auto [iit, ifresh] = ip_index_.emplace(ep->ips[j], i);
      if (!ifresh) {
        error_ = Error::invalid(fmt::format("endpoints[{}].ips[{}]: {} is already used by endpoints[{}]{}", i, j,
                                            ep->ips[j].to_string(), iit->second, at(node)));
        return;
      }
    }
    out_.push_back(std::make_shared<const Endpoint>(std::move(*ep)));
  }

  Result<std::vector<EndpointPtr>> take() && {
    if (error_) return unexpected(std::move(*error_));
    return std::move(out_);
  }

 private:
  size_t next_ = 0;
  std::optional<Error> error_;
  std::vector<EndpointPtr> out_;
  absl::flat_hash_map<std::string, size_t> key_index_;
  absl::flat_hash_map<IpAddr, size_t, cache::IpHash, cache::IpEq> ip_index_;
};

template <typename Node>
Result<std::vector<EndpointPtr>> parse_document(const Node& root) {
  auto list = endpoints_list(root);
  if (!list) return unexpected(list.error());
  EntryCollector entries;
  if (list->IsNull()) return std::move(entries).take();
  entries.reserve(list->size());
  for (const auto& node : list_items(*list)) entries.add(node);
  return std::move(entries).take();
}

// A YAML node as yaml-cpp's parser events describe it, with what the entry
// parser needs of YAML::Node: a tag-free value, its position and its items.
// Far lighter than YAML::Node's node_data and memory holder per node.
class YamlNode {
 public:
  enum class Kind : uint8_t { kNull, kScalar, kList, kMap };
  struct Data {
    Kind kind = Kind::kNull;
    bool open = false;      // its end event has not come yet
    bool streamed = false;  // the root's "endpoints" list, whose items went to the collector
    YAML::Mark mark;
    std::string scalar;
    std::vector<YamlNode> items;  // a list's items; a mapping's keys and values, alternating
  };

  YamlNode() = default;
  explicit YamlNode(std::shared_ptr<Data> d) : d_(std::move(d)) {}

  bool IsMap() const { return d_ && d_->kind == Kind::kMap; }
  bool IsSequence() const { return d_ && d_->kind == Kind::kList; }
  bool IsScalar() const { return d_ && d_->kind == Kind::kScalar; }
  bool IsNull() const { return !d_ || d_->kind == Kind::kNull; }
  const std::string& Scalar() const {
    static const std::string kEmpty;
    return IsScalar() ? d_->scalar : kEmpty;
  }
  size_t size() const { return IsSequence() ? d_->items.size() : 0; }
  YAML::Mark Mark() const { return d_ ? d_->mark : YAML::Mark::null_mark(); }
  Data* data() const { return d_.get(); }

 private:
  std::shared_ptr<Data> d_;
};

const char* type_name(const YamlNode& n) {
  if (n.IsNull()) return "null";
  if (n.IsScalar()) return "a scalar";
  if (n.IsSequence()) return "a list";
  return "a mapping";
}

std::string at(const YamlNode& n) {
  const YAML::Mark m = n.Mark();
  if (m.is_null()) return {};
  return fmt::format(" (line {}, column {})", m.line + 1, m.column + 1);
}

bool decode_bool(const YamlNode& n, bool& out) {
  return n.IsScalar() && YAML::convert<bool>::decode(YAML::Node(n.Scalar()), out);
}

std::vector<std::pair<YamlNode, YamlNode>> map_entries(const YamlNode& n) {
  std::vector<std::pair<YamlNode, YamlNode>> out;
  if (!n.IsMap()) return out;
  const auto& items = n.data()->items;
  out.reserve(items.size() / 2);
  for (size_t i = 0; i + 1 < items.size(); i += 2) out.emplace_back(items[i], items[i + 1]);
  return out;
}

const std::vector<YamlNode>& list_items(const YamlNode& n) {
  static const std::vector<YamlNode> kNone;
  return n.IsSequence() ? n.data()->items : kNone;
}

// Builds the document from yaml-cpp's parser events, except the items of
// the root's "endpoints" list: each goes to the collector as soon as it is
// complete and is freed, so a 10k-entry file never exists as a tree.
// Anchored nodes are kept for their aliases.
class StreamingDocument final : public YAML::EventHandler {
 public:
  const YamlNode& root() const { return root_; }
  // The collector of the last streamed "endpoints" list (the last key wins, as in a tree).
  EntryCollector& entries() { return entries_; }

  void OnDocumentStart(const YAML::Mark&) override {}
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark& mark, YAML::anchor_t anchor) override { complete(make(YamlNode::Kind::kNull, mark, anchor)); }
  void OnScalar(const YAML::Mark& mark, const std::string&, YAML::anchor_t anchor, const std::string& value) override {
    YamlNode n = make(YamlNode::Kind::kScalar, mark, anchor);
    n.data()->scalar = value;
    complete(std::move(n));
  }
  void OnAlias(const YAML::Mark& mark, YAML::anchor_t anchor) override {
    auto it = anchors_.find(anchor);
    // A node containing an alias to itself cannot be an endpoint; a tree of
    // it would be a cycle.
    if (it == anchors_.end() || it->second.data()->open)
      throw YAML::ParserException(mark, "an alias to a node that contains it");
    complete(it->second);
  }
  void OnSequenceStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t anchor,
                       YAML::EmitterStyle::value) override {
    open(make(YamlNode::Kind::kList, mark, anchor), anchor == YAML::NullAnchor && at_endpoints_key());
  }
  void OnSequenceEnd() override { close(); }
  void OnMapStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t anchor,
                  YAML::EmitterStyle::value) override {
    open(make(YamlNode::Kind::kMap, mark, anchor), false);
  }
  void OnMapEnd() override { close(); }

 private:
  struct Frame {
    YamlNode node;
    bool stream;
  };

  YamlNode make(YamlNode::Kind kind, const YAML::Mark& mark, YAML::anchor_t anchor) {
    YamlNode n(std::make_shared<YamlNode::Data>());
    n.data()->kind = kind;
    n.data()->mark = mark;
    if (anchor != YAML::NullAnchor) anchors_[anchor] = n;
    return n;
  }

  // A list opening as the value of the root mapping's "endpoints" key.
  bool at_endpoints_key() const {
    if (stack_.size() != 1 || !stack_[0].node.IsMap()) return false;
    const auto& items = stack_[0].node.data()->items;
    return items.size() % 2 == 1 && items.back().IsScalar() && items.back().Scalar() == "endpoints";
  }

  void open(YamlNode n, bool stream) {
    n.data()->open = true;
    if (stream) {
      n.data()->streamed = true;
      entries_ = EntryCollector();
    }
    stack_.push_back({std::move(n), stream});
  }

  void close() {
    Frame f = std::move(stack_.back());
    stack_.pop_back();
    f.node.data()->open = false;
    complete(std::move(f.node));
  }

  void complete(YamlNode n) {
    if (stack_.empty()) {
      root_ = std::move(n);
      return;
    }
    Frame& top = stack_.back();
    if (top.stream) {
      entries_.add(n);
      return;
    }
    top.node.data()->items.push_back(std::move(n));
  }

  std::vector<Frame> stack_;
  YamlNode root_;
  absl::flat_hash_map<YAML::anchor_t, YamlNode> anchors_;
  EntryCollector entries_;
};

// Parses the first YAML document of `text` without a tree of its entries.
Result<std::vector<EndpointPtr>> parse_yaml_streaming(const std::string& text) {
  std::istringstream in(text);
  YAML::Parser parser(in);
  StreamingDocument doc;
  parser.HandleNextDocument(doc);
  auto list = endpoints_list(doc.root());
  if (!list) return unexpected(list.error());
  if (list->IsNull()) return std::vector<EndpointPtr>{};
  if (list->data()->streamed) return std::move(doc.entries()).take();
  // An anchored list (or an alias of one) was built whole: parse its items.
  EntryCollector entries;
  entries.reserve(list->size());
  for (const auto& node : list_items(*list)) entries.add(node);
  return std::move(entries).take();
}

// Ignores the events: used only to count documents.
class NullHandler final : public YAML::EventHandler {
 public:
  void OnDocumentStart(const YAML::Mark&) override {}
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
  void OnAlias(const YAML::Mark&, YAML::anchor_t) override {}
  void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t, const std::string&) override {}
  void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override {}
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override {}
  void OnMapEnd() override {}
};

// A YAML stream holds several documents only if a line starts with a "---"
// or "..." marker.
bool may_hold_several_documents(std::string_view text) {
  for (size_t pos = 0; pos < text.size();) {
    std::string_view line = text.substr(pos, text.find('\n', pos) - pos);
    if (line.starts_with("---") || line.starts_with("...")) return true;
    size_t nl = text.find('\n', pos);
    if (nl == std::string_view::npos) break;
    pos = nl + 1;
  }
  return false;
}

// Counts documents, stopping at 2. Not YAML::LoadAll: yaml-cpp 0.7 loops
// forever, allocating empty documents, on a stray top-level ",".
size_t count_documents(const std::string& text) {
  std::istringstream in(text);
  YAML::Parser parser(in);
  NullHandler handler;
  size_t n = 0;
  while (n < 2 && parser.HandleNextDocument(handler)) ++n;
  return n;
}

}  // namespace

Result<std::vector<EndpointPtr>> parse_endpoints(std::string_view text) {
  // A JSON document goes through simdjson; what simdjson rejects (YAML flow
  // style, malformed JSON) through yaml-cpp, which reads both and says where
  // it failed.
  if (auto first = text.find_first_not_of(" \t\r\n"); first != std::string_view::npos && text[first] == '{') {
    simdjson::dom::parser parser;
    simdjson::dom::element root;
    if (parser.parse(text.data(), text.size()).get(root) == simdjson::SUCCESS) {
      try {
        return parse_document(JsonNode(root));
      } catch (const std::exception& e) {
        return unexpected(Error::internal(fmt::format("parsing endpoints: {}", e.what())));
      }
    }
  }
  try {
    const std::string owned(text);
    if (may_hold_several_documents(text) && count_documents(owned) > 1)
      return unexpected(Error::invalid("more than one YAML document, or stray text after the first; expected one"));
    return parse_yaml_streaming(owned);
  } catch (const YAML::Exception& e) {
    // e.what() already says "yaml-cpp: error at line L, column C: ...".
    return unexpected(Error::parse(fmt::format("malformed YAML/JSON: {}", e.what())));
  } catch (const std::exception& e) {
    return unexpected(Error::internal(fmt::format("parsing endpoints: {}", e.what())));
  }
}

Result<std::string> read_endpoints_text(const std::string& path) {
  struct stat sb {};
  if (::stat(path.c_str(), &sb) != 0) return unexpected(Error::system(fmt::format("open({})", path), errno));
  if (!S_ISREG(sb.st_mode)) return unexpected(Error::invalid(fmt::format("{}: not a regular file", path)));
  std::string text;
  if (auto st = read_file(path, text, kMaxFileBytes); !st) {
    if (st.error().kind == Error::Kind::kInvalidArgument)
      return unexpected(Error::invalid(fmt::format("{}: larger than {} MiB", path, kMaxFileBytes >> 20)));
    return unexpected(st.error());
  }
  return text;
}

Result<std::vector<EndpointPtr>> load_endpoints_file(const std::string& path) {
  auto text = read_endpoints_text(path);
  if (!text) return unexpected(text.error());
  auto eps = parse_endpoints(*text);
  if (!eps) return unexpected(eps.error().wrap(path));
  return eps;
}

}  // namespace retina
