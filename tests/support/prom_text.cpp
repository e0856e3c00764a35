#include "support/prom_text.hpp"

#include <cctype>
#include <charconv>
#include <cstdlib>
#include <set>

namespace retina::test {

namespace {

bool valid_metric_name(std::string_view n) {
  if (n.empty()) return false;
  for (size_t i = 0; i < n.size(); ++i) {
    const char c = n[i];
    const bool ok = std::isalpha(static_cast<unsigned char>(c)) || c == '_' || c == ':' ||
                    (i > 0 && std::isdigit(static_cast<unsigned char>(c)));
    if (!ok) return false;
  }
  return true;
}

bool valid_label_name(std::string_view n) {
  if (n.empty()) return false;
  for (size_t i = 0; i < n.size(); ++i) {
    const char c = n[i];
    const bool ok = std::isalpha(static_cast<unsigned char>(c)) || c == '_' ||
                    (i > 0 && std::isdigit(static_cast<unsigned char>(c)));
    if (!ok) return false;
  }
  return true;
}

// Base name of a sample: histogram/summary suffixes belong to their family.
std::string_view family_of(std::string_view sample, const std::string& current) {
  if (sample == current) return sample;
  for (std::string_view suffix : {"_bucket", "_sum", "_count"}) {
    if (sample.size() > suffix.size() && sample.substr(sample.size() - suffix.size()) == suffix &&
        sample.substr(0, sample.size() - suffix.size()) == current)
      return current;
  }
  return sample;
}

}  // namespace

const PromFamily* PromText::family(std::string_view name) const {
  for (const auto& f : families)
    if (f.name == name) return &f;
  return nullptr;
}

std::optional<double> PromText::value(std::string_view name, const std::map<std::string, std::string>& labels,
                                      bool sum) const {
  std::optional<double> out;
  for (const auto& f : families) {
    for (const auto& s : f.samples) {
      if (s.name != name) continue;
      bool match = true;
      for (const auto& [k, v] : labels) {
        auto it = s.labels.find(k);
        if (it == s.labels.end() || it->second != v) {
          match = false;
          break;
        }
      }
      if (!match) continue;
      if (out && !sum) return std::nullopt;  // ambiguous
      out = out.value_or(0) + s.value;
    }
  }
  return out;
}

PromText parse_prom_text(std::string_view text) {
  PromText pt;
  std::set<std::string> seen_families;
  std::set<std::string> seen_series;
  size_t line_no = 0;
  auto fail = [&](const std::string& why) {
    pt.error = "line " + std::to_string(line_no) + ": " + why;
    return pt;
  };
  PromFamily* cur = nullptr;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    if (nl == std::string_view::npos) return fail("last line has no newline");
    std::string_view line = text.substr(pos, nl - pos);
    pos = nl + 1;
    ++line_no;
    if (line.empty()) continue;
    if (line.starts_with("# HELP ")) {
      std::string_view rest = line.substr(7);
      size_t sp = rest.find(' ');
      std::string name(rest.substr(0, sp));
      if (!valid_metric_name(name)) return fail("bad metric name in HELP: " + name);
      if (seen_families.count(name)) return fail("family announced twice: " + name);
      seen_families.insert(name);
      pt.families.push_back(PromFamily{name, sp == std::string_view::npos ? "" : std::string(rest.substr(sp + 1)), "", {}});
      cur = &pt.families.back();
      continue;
    }
    if (line.starts_with("# TYPE ")) {
      std::string_view rest = line.substr(7);
      size_t sp = rest.find(' ');
      if (sp == std::string_view::npos) return fail("TYPE without type");
      std::string name(rest.substr(0, sp));
      std::string type(rest.substr(sp + 1));
      if (!cur || cur->name != name) return fail("TYPE not preceded by HELP for " + name);
      if (type != "counter" && type != "gauge" && type != "histogram" && type != "summary" && type != "untyped")
        return fail("bad type " + type);
      cur->type = type;
      continue;
    }
    if (line[0] == '#') continue;
    // sample: name[{labels}] value
    size_t i = 0;
    while (i < line.size() && line[i] != '{' && line[i] != ' ') ++i;
    PromSample s;
    s.name = std::string(line.substr(0, i));
    if (!valid_metric_name(s.name)) return fail("bad sample name: " + s.name);
    if (!cur || cur->type.empty() || family_of(s.name, cur->name) != cur->name)
      return fail("sample outside its family (no HELP/TYPE or interleaved): " + s.name);
    if (i < line.size() && line[i] == '{') {
      ++i;
      while (i < line.size() && line[i] != '}') {
        size_t eq = line.find('=', i);
        if (eq == std::string_view::npos) return fail("label without =");
        std::string lname(line.substr(i, eq - i));
        if (!valid_label_name(lname)) return fail("bad label name: " + lname);
        i = eq + 1;
        if (i >= line.size() || line[i] != '"') return fail("label value not quoted");
        ++i;
        std::string value;
        while (i < line.size() && line[i] != '"') {
          if (line[i] == '\\') {
            if (i + 1 >= line.size()) return fail("dangling escape");
            const char e = line[i + 1];
            if (e == 'n') value += '\n';
            else if (e == '\\' || e == '"') value += e;
            else return fail("bad escape");
            i += 2;
          } else {
            value += line[i++];
          }
        }
        if (i >= line.size()) return fail("unterminated label value");
        ++i;  // closing quote
        if (s.labels.count(lname)) return fail("duplicate label " + lname);
        s.labels[lname] = value;
        if (i < line.size() && line[i] == ',') ++i;
      }
      if (i >= line.size()) return fail("unterminated label set");
      ++i;  // }
    }
    if (i >= line.size() || line[i] != ' ') return fail("no space before value");
    std::string v(line.substr(i + 1));
    size_t sp2 = v.find(' ');
    if (sp2 != std::string::npos) v = v.substr(0, sp2);  // optional timestamp
    if (v == "+Inf") s.value = 1.0 / 0.0;
    else if (v == "-Inf") s.value = -1.0 / 0.0;
    else if (v == "NaN") s.value = 0.0 / 0.0;
    else {
      char* end = nullptr;
      s.value = std::strtod(v.c_str(), &end);
      if (v.empty() || *end) return fail("bad value: " + v);
    }
    std::string series_key = s.name;
    for (const auto& [k, val] : s.labels) series_key += "\x1f" + k + "=" + val;
    if (!seen_series.insert(series_key).second) return fail("duplicate series: " + series_key);
    cur->samples.push_back(std::move(s));
  }
  return pt;
}

}  // namespace retina::test
