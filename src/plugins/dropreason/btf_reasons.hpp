// The kernel's drop reasons by name, learned at run time from BTF: every
// value of enum skb_drop_reason ("SKB_DROP_REASON_NETFILTER_DROP" becomes
// "NETFILTER_DROP"), the subsystems of enum skb_drop_reason_subsys, and the
// per-subsystem enums of modules that register their own reasons
// (openvswitch, mac80211). A value the tables do not name still gets a
// stable name: "<SUBSYSTEM>_<code>" or "REASON_<value>".
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "retina/error.hpp"

struct btf;

namespace retina::dropreason {

class DropReasonTable {
 public:
  // The name of a raw enum skb_drop_reason value. Never empty.
  std::string name(uint32_t reason) const;
  // The raw value of a name ("NOT_SPECIFIED"), if this kernel has it.
  std::optional<uint32_t> value(std::string_view name) const;
  // Names indexed by retina_drop_reason_slot() (abi/events.h), for
  // Pipeline::set_drop_reason_names. Every slot of the core and of each
  // known subsystem up to its highest named code has a name.
  std::shared_ptr<const std::vector<std::string>> slots() const { return slots_; }
  // Reasons named by BTF (core and subsystems).
  size_t named() const { return by_value_.size(); }
  // Subsystem names by id (index 0 is the core, "").
  const std::vector<std::string>& subsystems() const { return subsystems_; }

  // Builds the table from a vmlinux BTF and, optionally, module BTFs that
  // split from it. kUnsupported when the kernel has no enum
  // skb_drop_reason; kInvalid when the enum names no reason at all.
  static Result<DropReasonTable> from_btf(const btf* vmlinux, std::span<const btf* const> modules = {});
  // From raw BTF bytes (a vmlinux-style BTF blob).
  static Result<DropReasonTable> from_btf_data(std::span<const std::byte> data);
  // From the running kernel: <sys_root>/kernel/btf/vmlinux, plus the BTF
  // of loaded modules that register drop-reason subsystems.
  static Result<DropReasonTable> load_kernel(const std::string& sys_root = "/sys");

 private:
  void add(uint32_t value, std::string name);
  void build_slots();

  std::map<uint32_t, std::string> by_value_;
  std::map<std::string, uint32_t, std::less<>> by_name_;
  std::vector<std::string> subsystems_;
  std::shared_ptr<const std::vector<std::string>> slots_ = std::make_shared<std::vector<std::string>>();
};

// Whether the kernel's kfree_skb tracepoint hands programs a drop reason
// (its BTF prototype has the reason argument: Linux 5.17+). kUnsupported
// with the reason otherwise.
Status check_kfree_skb_tracepoint(const btf* vmlinux);

// Modules whose BTF carries a subsystem's reasons, and the enum to read.
struct SubsystemEnum {
  std::string_view subsystem;  // as in enum skb_drop_reason_subsys, prefix stripped
  std::string_view module;     // /sys/kernel/btf/<module>
  std::string_view enum_name;
};
inline constexpr SubsystemEnum kSubsystemEnums[] = {
    {"OPENVSWITCH", "openvswitch", "ovs_drop_reason"},
    {"MAC80211_UNUSABLE", "mac80211", "mac80211_drop_reason"},
    {"MAC80211_MONITOR", "mac80211", "mac80211_drop_reason"},
};

}  // namespace retina::dropreason
