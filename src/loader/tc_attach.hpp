// Legacy tc attachment: a clsact qdisc and direct-action cls_bpf filters
// in a fixed (handle, priority) slot per retina program. The fixed slot
// makes a restart after a crash replace retina's own stale filter instead
// of adding a second one; filters of other software are never touched.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "loader/netlink.hpp"
#include "retina/error.hpp"

namespace retina::loader {

struct TcSlot {
  uint32_t handle;
  uint16_t priority;
};

// packetparser's slot on both hooks ("RTNA", "RT").
inline constexpr TcSlot kPacketParserTcSlot{0x52544e41u, 0x5254};

// Creates clsact on the interface if missing. True when retina owns it
// (removes it once empty): this call created it, or it already held
// nothing but retina filters (an earlier run killed before its cleanup). An
// empty clsact of someone else's is adopted too; removing it changes nothing.
Result<bool> ensure_clsact(int ifindex);

// Deletes clsact when neither hook has any filter left; true when deleted.
Result<bool> remove_clsact_if_empty(int ifindex);

// The filter in `slot`, or nullopt when the slot is empty (or the
// interface has no clsact).
Result<std::optional<TcFilterInfo>> tc_slot_filter(int ifindex, TcDirection dir, TcSlot slot);

// Removes retina filters (is_retina_filter) from `slot` on both hooks of an
// interface; returns how many were removed.
Result<int> detach_stale_retina_filters(int ifindex, TcSlot slot);

// One retina filter on one hook. Detaches on destruction.
class TcFilter {
 public:
  // Attaches with BPF_TC_F_REPLACE. Fails, touching nothing, when the slot
  // holds a program that is not retina's.
  static Result<TcFilter> attach(int ifindex, TcDirection dir, int prog_fd, TcSlot slot);

  TcFilter(TcFilter&& o) noexcept;
  TcFilter& operator=(TcFilter&& o) noexcept;
  TcFilter(const TcFilter&) = delete;
  TcFilter& operator=(const TcFilter&) = delete;
  ~TcFilter();

  // Removes the filter if it still runs the program this attached; a
  // filter already gone or replaced is not an error.
  Status detach();
  // The interface went away (and its filters with it): drop without a call.
  void forget() noexcept { attached_ = false; }

  int ifindex() const { return ifindex_; }
  TcDirection direction() const { return dir_; }
  bool attached() const { return attached_; }

 private:
  TcFilter(int ifindex, TcDirection dir, TcSlot slot, uint32_t prog_id)
      : ifindex_(ifindex), dir_(dir), slot_(slot), prog_id_(prog_id), attached_(true) {}
  int ifindex_ = 0;
  TcDirection dir_ = TcDirection::kIngress;
  TcSlot slot_{};
  uint32_t prog_id_ = 0;  // the program attached, as the filter dump's TCA_BPF_ID names it
  bool attached_ = false;
};

}  // namespace retina::loader
