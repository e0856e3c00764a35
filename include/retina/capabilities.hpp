// Linux capabilities: the sets a plugin needs to start and to keep running
// (its row in the plugin table), reading the calling thread's sets, and
// dropping every thread of the process to a smaller set once start-up is
// done. Raw capget/capset/prctl: no libcap.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "retina/error.hpp"

namespace retina {

// The kernel's capability numbers (linux/capability.h) of those retina
// names; any number up to 63 works in a CapabilitySet.
enum class Capability : uint8_t {
  kChown = 0,
  kDacOverride = 1,
  kSetpcap = 8,
  kNetBindService = 10,
  kNetAdmin = 12,
  kNetRaw = 13,
  kSysPtrace = 19,
  kSysAdmin = 21,
  kSysResource = 24,
  kPerfmon = 38,
  kBpf = 39,
};

class CapabilitySet {
 public:
  constexpr CapabilitySet() = default;
  constexpr CapabilitySet(std::initializer_list<Capability> caps) {
    for (Capability c : caps) bits_ |= bit(static_cast<unsigned>(c));
  }
  static constexpr CapabilitySet from_bits(uint64_t bits) {
    CapabilitySet s;
    s.bits_ = bits;
    return s;
  }
  constexpr uint64_t bits() const { return bits_; }
  constexpr bool empty() const { return bits_ == 0; }
  constexpr bool has(Capability c) const { return (bits_ & bit(static_cast<unsigned>(c))) != 0; }
  constexpr bool has_number(unsigned n) const { return n < 64 && (bits_ & bit(n)) != 0; }
  // Every capability of `other` is in this set.
  constexpr bool contains(CapabilitySet other) const { return (other.bits_ & ~bits_) == 0; }
  friend constexpr CapabilitySet operator|(CapabilitySet a, CapabilitySet b) { return from_bits(a.bits_ | b.bits_); }
  friend constexpr CapabilitySet operator&(CapabilitySet a, CapabilitySet b) { return from_bits(a.bits_ & b.bits_); }
  // What is in a and not in b.
  friend constexpr CapabilitySet operator-(CapabilitySet a, CapabilitySet b) { return from_bits(a.bits_ & ~b.bits_); }
  friend constexpr bool operator==(CapabilitySet a, CapabilitySet b) { return a.bits_ == b.bits_; }
  CapabilitySet& operator|=(CapabilitySet o) {
    bits_ |= o.bits_;
    return *this;
  }

 private:
  static constexpr uint64_t bit(unsigned n) { return n < 64 ? uint64_t{1} << n : 0; }
  uint64_t bits_ = 0;
};

// What a plugin needs: `start` to load and attach, `run` to keep working
// after start-up (attaching to new interfaces, reopening a socket) and to
// detach at exit.
struct PluginCapabilities {
  CapabilitySet start;
  CapabilitySet run;
};

// "CAP_NET_ADMIN"; "CAP_<number>" for a number this file does not name.
std::string capability_name(unsigned number);
// Kubernetes' spelling without the prefix: "NET_ADMIN".
std::string capability_short_name(unsigned number);
// "CAP_BPF, CAP_NET_ADMIN" in number order, or "none".
std::string to_string(CapabilitySet s);
// Kubernetes' spelling, in number order: {"NET_ADMIN", "BPF"}.
std::vector<std::string> short_names(CapabilitySet s);
// "BPF", "cap_bpf", "CAP_BPF" (any case); nullopt for an unknown name.
std::optional<Capability> parse_capability(std::string_view name);

// The five sets of one thread, as /proc/<pid>/status shows them.
struct ThreadCapabilities {
  CapabilitySet effective, permitted, inheritable, bounding, ambient;
};

// The calling thread's sets (capget and PR_CAPBSET_READ).
Result<ThreadCapabilities> current_capabilities();
// The Cap* lines of a /proc/<pid>/status or /proc/<pid>/task/<tid>/status text.
Result<ThreadCapabilities> parse_status_capabilities(std::string_view status);
// What the kernel's capability checks accept from `effective` for `needed`:
// before CAP_BPF and CAP_PERFMON existed (5.8), CAP_SYS_ADMIN stood for both.
CapabilitySet missing_capabilities(CapabilitySet needed, CapabilitySet effective);

struct CapabilityDrop {
  CapabilitySet kept;     // the permitted and effective sets now, on every thread
  CapabilitySet dropped;  // what was permitted before and is not any more
  bool bounding_reduced = false;  // false without CAP_SETPCAP: the bounding set is left as given
  size_t threads = 0;             // threads changed
};

// Lowers every thread of the process to `keep` (intersected with what it
// has): permitted and effective to that, inheritable and ambient to
// nothing, the bounding set to `keep` when CAP_SETPCAP allows it, and
// no_new_privs set so no exec gains anything back. Capabilities are per
// thread: the others are reached with a signal whose handler makes the
// same calls, and the result is read back from /proc/self/task. An error
// names any thread that still holds more.
Result<CapabilityDrop> restrict_capabilities(CapabilitySet keep);

}  // namespace retina
