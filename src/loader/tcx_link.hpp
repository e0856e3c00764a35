// TCX attachment (Linux 6.6+): a BPF link per hook. The link is owned by
// its file descriptor only (never pinned), so it goes away with the
// process, and a restart after a crash starts clean.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "loader/fd.hpp"
#include "loader/netlink.hpp"
#include "retina/error.hpp"
#include "retina/tcx.hpp"

namespace retina::loader {

// uapi values, for headers older than 6.6.
inline constexpr uint32_t kBpfTcxIngress = 46;  // BPF_TCX_INGRESS
inline constexpr uint32_t kBpfTcxEgress = 47;   // BPF_TCX_EGRESS
inline constexpr uint32_t kBpfFBefore = 1u << 3; // BPF_F_BEFORE

uint32_t tcx_attach_type(TcDirection dir);

class TcxLink {
 public:
  // Attaches prog_fd first in the hook's chain (BPF_F_BEFORE, no anchor),
  // so a program that drops before us cannot hide packets from it.
  static Result<TcxLink> attach(int ifindex, TcDirection dir, int prog_fd);

  TcxLink(TcxLink&&) noexcept = default;
  TcxLink& operator=(TcxLink&&) noexcept = default;

  // Closing the only reference detaches the link.
  void detach() noexcept { fd_.reset(); }
  // The interface is gone; releasing the fd is all there is to do.
  void forget() noexcept { fd_.reset(); }

  int fd() const { return fd_.get(); }
  int ifindex() const { return ifindex_; }
  TcDirection direction() const { return dir_; }

 private:
  TcxLink(UniqueFd fd, int ifindex, TcDirection dir) : fd_(std::move(fd)), ifindex_(ifindex), dir_(dir) {}
  UniqueFd fd_;
  int ifindex_ = 0;
  TcDirection dir_ = TcDirection::kIngress;
};

using retina::TcxProgram;  // include/retina/tcx.hpp

// Programs attached through TCX on one hook, in run order (BPF_PROG_QUERY,
// which needs CAP_NET_ADMIN; names need CAP_SYS_ADMIN and are empty without).
Result<std::vector<TcxProgram>> list_tcx_programs(int ifindex, TcDirection dir);

// Whether the kernel knows TCX: a link_create against ifindex 0 fails with
// ENODEV when it does and EINVAL when the attach type is unknown.
Result<bool> probe_tcx(int sched_cls_prog_fd);

}  // namespace retina::loader
