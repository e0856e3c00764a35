#include "plugins/dropreason/btf_reasons.hpp"

#include <unistd.h>

#include <bpf/btf.h>
#include <bpf/libbpf.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <memory>
#include <set>

#include <fmt/format.h>

#include "core/log.hpp"
#include "loader/libbpf_log.hpp"
#include "retina/abi/events.h"

namespace retina::dropreason {

namespace {

constexpr std::string_view kReasonPrefix = "SKB_DROP_REASON_";
constexpr std::string_view kSkbPrefix = "SKB_";
constexpr std::string_view kSubsysPrefix = "SKB_DROP_REASON_SUBSYS_";
// Slots given a fallback name in each known subsystem, beyond its highest
// named code, so flows of unnamed subsystem reasons still carry a name.
constexpr uint32_t kSubsysFallbackCodes = 32;

struct BtfDeleter {
  void operator()(btf* b) const { btf__free(b); }
};
using BtfPtr = std::unique_ptr<btf, BtfDeleter>;

bool starts_with(std::string_view s, std::string_view p) { return s.substr(0, p.size()) == p; }

// Calls fn(name, value) for every enumerator of an ENUM or ENUM64 type.
template <class Fn>
void for_each_enumerator(const btf* b, const btf_type* t, Fn&& fn) {
  const uint16_t n = btf_vlen(t);
  if (btf_is_enum(t)) {
    const struct btf_enum* e = btf_enum(t);
    for (uint16_t i = 0; i < n; ++i) {
      const char* name = btf__name_by_offset(b, e[i].name_off);
      if (!name) continue;
      // Enumerator values are stored as 32 bits; the sign is the type's.
      fn(std::string_view(name), static_cast<uint64_t>(static_cast<uint32_t>(e[i].val)));
    }
  } else if (btf_is_enum64(t)) {
    const struct btf_enum64* e = btf_enum64(t);
    for (uint16_t i = 0; i < n; ++i) {
      const char* name = btf__name_by_offset(b, e[i].name_off);
      if (!name) continue;
      fn(std::string_view(name), btf_enum64_value(&e[i]));
    }
  }
}

// The ENUM or ENUM64 type of that name, or null.
const btf_type* find_enum(const btf* b, const char* name) {
  int id = btf__find_by_name_kind(b, name, BTF_KIND_ENUM);
  if (id <= 0) id = btf__find_by_name_kind(b, name, BTF_KIND_ENUM64);
  if (id <= 0) return nullptr;
  return btf__type_by_id(b, static_cast<uint32_t>(id));
}

// Follows typedefs and qualifiers to the underlying type.
const btf_type* resolve(const btf* b, uint32_t id) {
  for (int depth = 0; depth < 16; ++depth) {
    const btf_type* t = btf__type_by_id(b, id);
    if (!t) return nullptr;
    if (!btf_is_typedef(t) && !btf_is_mod(t)) return t;
    id = t->type;
  }
  return nullptr;
}

}  // namespace

void DropReasonTable::add(uint32_t value, std::string name) {
  if (name.empty() || by_value_.count(value) || by_name_.count(name)) return;  // first one wins
  by_name_.emplace(name, value);
  by_value_.emplace(value, std::move(name));
}

std::string DropReasonTable::name(uint32_t reason) const {
  if (auto it = by_value_.find(reason); it != by_value_.end()) return it->second;
  const uint32_t subsys = reason >> RETINA_DROP_SUBSYS_SHIFT;
  const uint32_t code = reason & RETINA_DROP_CODE_MASK;
  if (reason == RETINA_DROP_REASON_OVERFLOW) return "COUNT_MAP_FULL";
  if (subsys == 0) return fmt::format("REASON_{}", reason);
  if (subsys < subsystems_.size() && !subsystems_[subsys].empty())
    return fmt::format("{}_{}", subsystems_[subsys], code);
  return fmt::format("SUBSYS{}_{}", subsys, code);
}

std::optional<uint32_t> DropReasonTable::value(std::string_view name) const {
  auto it = by_name_.find(name);
  if (it == by_name_.end()) return std::nullopt;
  return it->second;
}

void DropReasonTable::build_slots() {
  // Highest code per subsystem that needs a slot.
  std::map<uint32_t, uint32_t> top;  // subsystem -> one past the highest code
  for (const auto& [value, name] : by_value_) {
    const uint32_t slot = retina_drop_reason_slot(value);
    if (slot == RETINA_DROP_NO_SLOT) continue;
    auto& t = top[value >> RETINA_DROP_SUBSYS_SHIFT];
    t = std::max(t, (value & RETINA_DROP_CODE_MASK) + 1);
  }
  for (uint32_t s = 1; s < subsystems_.size() && s < RETINA_DROP_MAX_SUBSYS; ++s) {
    if (subsystems_[s].empty()) continue;
    auto& t = top[s];
    t = std::min(RETINA_DROP_REASON_SLOTS, std::max(t, kSubsysFallbackCodes));
  }
  auto slots = std::make_shared<std::vector<std::string>>();
  for (const auto& [subsys, end] : top) {
    const size_t need = size_t{subsys} * RETINA_DROP_REASON_SLOTS + end;
    if (slots->size() < need) slots->resize(need);
    for (uint32_t code = 0; code < end; ++code)
      (*slots)[size_t{subsys} * RETINA_DROP_REASON_SLOTS + code] = name((subsys << RETINA_DROP_SUBSYS_SHIFT) | code);
  }
  slots_ = std::move(slots);
}

Result<DropReasonTable> DropReasonTable::from_btf(const btf* vmlinux, std::span<const btf* const> modules) {
  if (!vmlinux) return unexpected(Error::invalid("drop reasons: no BTF"));
  const btf_type* reasons = find_enum(vmlinux, "skb_drop_reason");
  if (!reasons)
    return unexpected(Error::unsupported(
        "kernel BTF has no enum skb_drop_reason (drop reasons reach the kfree_skb tracepoint since Linux 5.17)"));

  DropReasonTable table;
  for_each_enumerator(vmlinux, reasons, [&](std::string_view name, uint64_t value) {
    // SKB_DROP_REASON_SUBSYS_MASK and anything else outside the core
    // range is not a reason.
    if (value > UINT32_MAX || (value >> RETINA_DROP_SUBSYS_SHIFT) != 0) return;
    if (starts_with(name, kReasonPrefix)) name.remove_prefix(kReasonPrefix.size());
    else if (starts_with(name, kSkbPrefix)) name.remove_prefix(kSkbPrefix.size());  // SKB_CONSUMED, SKB_NOT_DROPPED_YET
    if (name.empty() || name == "MAX" || starts_with(name, "_")) return;
    table.add(static_cast<uint32_t>(value), std::string(name));
  });
  if (table.by_value_.empty()) return unexpected(Error::invalid("drop reasons: enum skb_drop_reason names no reason"));

  table.subsystems_.assign(1, std::string());
  if (const btf_type* subsys = find_enum(vmlinux, "skb_drop_reason_subsys")) {
    for_each_enumerator(vmlinux, subsys, [&](std::string_view name, uint64_t value) {
      if (!starts_with(name, kSubsysPrefix) || value == 0 || value >= RETINA_DROP_MAX_SUBSYS) return;
      name.remove_prefix(kSubsysPrefix.size());
      if (name.empty() || name == "NUM" || name == "CORE") return;
      if (table.subsystems_.size() <= value) table.subsystems_.resize(value + 1);
      if (table.subsystems_[value].empty()) table.subsystems_[value] = std::string(name);
    });
  }

  // Subsystem reasons from the modules that own them.
  for (const btf* mod : modules) {
    if (!mod) continue;
    std::set<std::string_view> seen;
    for (const auto& se : kSubsystemEnums) {
      if (!seen.insert(se.enum_name).second) continue;
      const btf_type* t = find_enum(mod, std::string(se.enum_name).c_str());
      if (!t) continue;
      for_each_enumerator(mod, t, [&](std::string_view name, uint64_t value) {
        if (value > UINT32_MAX) return;
        const uint32_t s = static_cast<uint32_t>(value >> RETINA_DROP_SUBSYS_SHIFT);
        if (s == 0 || s >= table.subsystems_.size() || table.subsystems_[s].empty() || starts_with(name, "_")) return;
        // Only values of a subsystem this enum is known to carry.
        const bool owned = std::any_of(std::begin(kSubsystemEnums), std::end(kSubsystemEnums), [&](const SubsystemEnum& e) {
          return e.enum_name == se.enum_name && e.subsystem == table.subsystems_[s];
        });
        if (owned && (value & RETINA_DROP_CODE_MASK) != 0) table.add(static_cast<uint32_t>(value), std::string(name));
      });
    }
  }
  table.build_slots();
  return table;
}

Result<DropReasonTable> DropReasonTable::from_btf_data(std::span<const std::byte> data) {
  if (data.size() > UINT32_MAX) return unexpected(Error::invalid("drop reasons: BTF larger than 4 GiB"));
  loader::install_libbpf_logging();
  errno = 0;
  BtfPtr b(btf__new(data.data(), static_cast<uint32_t>(data.size())));
  if (!b) return unexpected(Error::system("btf__new", errno ? errno : EINVAL).wrap("drop reasons"));
  return from_btf(b.get());
}

Result<DropReasonTable> DropReasonTable::load_kernel(const std::string& sys_root) {
  loader::install_libbpf_logging();
  const std::string path = sys_root + "/kernel/btf/vmlinux";
  errno = 0;
  BtfPtr vmlinux(btf__parse(path.c_str(), nullptr));
  if (!vmlinux) {
    const int err = errno ? errno : ENOENT;
    return unexpected(Error::unsupported(
        fmt::format("drop reasons need kernel BTF: {}", Error::system(fmt::format("btf__parse({})", path), err).message)));
  }
  std::vector<BtfPtr> owned;
  std::set<std::string_view> tried;
  for (const auto& se : kSubsystemEnums) {
    if (!tried.insert(se.module).second) continue;
    const std::string mpath = fmt::format("{}/kernel/btf/{}", sys_root, se.module);
    if (::access(mpath.c_str(), R_OK) != 0) continue;  // module not loaded
    errno = 0;
    BtfPtr m(btf__parse_split(mpath.c_str(), vmlinux.get()));
    if (!m) {
      log::warn("dropreason", "cannot read module BTF; its drop reasons are named by number",
                {{"path", mpath}, {"error", Error::system("btf__parse_split", errno ? errno : EINVAL).message}});
      continue;
    }
    owned.push_back(std::move(m));
  }
  std::vector<const btf*> mods;
  for (const auto& m : owned) mods.push_back(m.get());
  return from_btf(vmlinux.get(), mods);
}

Status check_kfree_skb_tracepoint(const btf* vmlinux) {
  if (!vmlinux) return unexpected(Error::invalid("kfree_skb check: no BTF"));
  const int id = btf__find_by_name_kind(vmlinux, "btf_trace_kfree_skb", BTF_KIND_TYPEDEF);
  if (id <= 0) return unexpected(Error::unsupported("kernel BTF has no kfree_skb tracepoint (btf_trace_kfree_skb)"));
  const btf_type* t = resolve(vmlinux, static_cast<uint32_t>(id));
  if (t && btf_is_ptr(t)) t = resolve(vmlinux, t->type);
  if (!t || !btf_is_func_proto(t))
    return unexpected(Error::unsupported("kfree_skb tracepoint BTF is not a function prototype"));
  // (void *ctx, struct sk_buff *skb, void *location, enum skb_drop_reason reason, ...)
  if (btf_vlen(t) < 4)
    return unexpected(Error::unsupported("the kernel's kfree_skb tracepoint carries no drop reason (needs Linux 5.17+)"));
  const btf_type* r = resolve(vmlinux, btf_params(t)[3].type);
  const char* rname = r ? btf__name_by_offset(vmlinux, r->name_off) : nullptr;
  if (!r || !btf_is_any_enum(r) || !rname || std::string_view(rname) != "skb_drop_reason")
    return unexpected(
        Error::unsupported("the kfree_skb tracepoint's third argument is not an enum skb_drop_reason on this kernel"));
  return ok();
}

}  // namespace retina::dropreason
