// Kubernetes label selectors: kubectl's text syntax and evaluation on the
// sorted "key=value" label lists endpoints carry.
#include <algorithm>
#include <string>
#include <string_view>

#include <fmt/format.h>

#include "retina/capture.hpp"

namespace retina::capture {
namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// Label keys and values: [A-Za-z0-9._/-], keys non-empty, at most 316 (prefix/name).
bool valid_label_text(std::string_view s, bool key) {
  if (key && s.empty()) return false;
  if (s.size() > 316) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
           c == '-' || c == '/';
  });
}

// The value of `key` in a sorted "k=v" list, or nullptr.
const std::string* find_label(const std::vector<std::string>& labels, std::string_view key, std::string_view& value) {
  for (const auto& l : labels) {
    const size_t eq = l.find('=');
    const std::string_view k = std::string_view(l).substr(0, eq);
    if (k == key) {
      value = eq == std::string::npos ? std::string_view() : std::string_view(l).substr(eq + 1);
      return &l;
    }
  }
  return nullptr;
}

// Splits on commas that are not inside parentheses.
std::vector<std::string_view> split_terms(std::string_view text) {
  std::vector<std::string_view> out;
  int depth = 0;
  size_t start = 0;
  for (size_t i = 0; i <= text.size(); ++i) {
    if (i == text.size() || (text[i] == ',' && depth == 0)) {
      out.push_back(trim(text.substr(start, i - start)));
      start = i + 1;
    } else if (text[i] == '(') {
      ++depth;
    } else if (text[i] == ')') {
      --depth;
    }
  }
  return out;
}

}  // namespace

bool LabelSelector::matches(const std::vector<std::string>& labels) const {
  for (const auto& r : requirements) {
    std::string_view value;
    const bool has = find_label(labels, r.key, value) != nullptr;
    switch (r.op) {
      case LabelRequirement::Op::kExists:
        if (!has) return false;
        break;
      case LabelRequirement::Op::kDoesNotExist:
        if (has) return false;
        break;
      case LabelRequirement::Op::kIn:
        if (!has || std::find(r.values.begin(), r.values.end(), value) == r.values.end()) return false;
        break;
      case LabelRequirement::Op::kNotIn:
        if (has && std::find(r.values.begin(), r.values.end(), value) != r.values.end()) return false;
        break;
    }
  }
  return true;
}

Result<LabelSelector> parse_label_selector(std::string_view text) {
  LabelSelector sel;
  sel.present = true;
  text = trim(text);
  if (text.empty()) return sel;
  for (std::string_view term : split_terms(text)) {
    if (term.empty()) return unexpected(Error::invalid(fmt::format("label selector '{}': empty term", text)));
    LabelRequirement r;
    const size_t sp = term.find(' ');
    if (term.front() == '!') {
      r.key = std::string(trim(term.substr(1)));
      r.op = LabelRequirement::Op::kDoesNotExist;
    } else if (const size_t ne = term.find("!="); ne != std::string_view::npos) {
      r.key = std::string(trim(term.substr(0, ne)));
      r.op = LabelRequirement::Op::kNotIn;
      r.values.emplace_back(trim(term.substr(ne + 2)));
    } else if (const size_t eq = term.find('='); eq != std::string_view::npos) {
      r.key = std::string(trim(term.substr(0, eq)));
      std::string_view v = term.substr(eq + 1);
      if (!v.empty() && v.front() == '=') v.remove_prefix(1);  // "=="
      r.values.emplace_back(trim(v));
    } else if (sp != std::string_view::npos) {
      r.key = std::string(trim(term.substr(0, sp)));
      std::string_view rest = trim(term.substr(sp + 1));
      if (rest.starts_with("notin")) {
        r.op = LabelRequirement::Op::kNotIn;
        rest.remove_prefix(5);
      } else if (rest.starts_with("in")) {
        rest.remove_prefix(2);
      } else {
        return unexpected(Error::invalid(fmt::format("label selector term '{}': expected =, !=, in or notin", term)));
      }
      rest = trim(rest);
      if (rest.size() < 2 || rest.front() != '(' || rest.back() != ')') {
        return unexpected(Error::invalid(fmt::format("label selector term '{}': values go in parentheses", term)));
      }
      rest = rest.substr(1, rest.size() - 2);
      for (std::string_view v : split_terms(rest)) r.values.emplace_back(v);
    } else {
      r.key = std::string(term);
      r.op = LabelRequirement::Op::kExists;
    }
    if (!valid_label_text(r.key, true)) {
      return unexpected(Error::invalid(fmt::format("label selector term '{}': bad key '{}'", term, r.key)));
    }
    for (const auto& v : r.values) {
      if (!valid_label_text(v, false)) {
        return unexpected(Error::invalid(fmt::format("label selector term '{}': bad value '{}'", term, v)));
      }
    }
    sel.requirements.push_back(std::move(r));
  }
  return sel;
}

}  // namespace retina::capture
