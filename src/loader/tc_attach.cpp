#include "loader/tc_attach.hpp"

#include <bpf/libbpf.h>

#include <linux/pkt_sched.h>
#include <sys/socket.h>

#include <cerrno>
#include <utility>

#include <fmt/format.h>

#include "core/log.hpp"
#include "loader/prog_info.hpp"

namespace retina::loader {

namespace {

bpf_tc_hook make_hook(int ifindex, TcDirection dir) {
  bpf_tc_hook h{};
  h.sz = sizeof h;
  h.ifindex = ifindex;
  h.attach_point = dir == TcDirection::kIngress ? BPF_TC_INGRESS : BPF_TC_EGRESS;
  return h;
}

bool no_such_filter(int err) {
  // ENOENT: no filter in the slot; EINVAL: no clsact; ENODEV: no interface.
  err = err < 0 ? -err : err;
  return err == ENOENT || err == EINVAL || err == ENODEV;
}

}  // namespace

namespace {

// RTM_NEWQDISC / RTM_DELQDISC for clsact, through our own socket: an
// expected EEXIST or ENOENT stays quiet (libbpf logs the kernel's message).
Status clsact_request(int ifindex, uint16_t type, uint16_t flags, std::string_view what) {
  auto sock = NetlinkSocket::open();
  if (!sock) return unexpected(sock.error());
  struct {
    nlmsghdr h;
    tcmsg t;
    char attrs[64];
  } req{};
  req.h.nlmsg_len = NLMSG_LENGTH(sizeof(tcmsg));
  req.h.nlmsg_type = type;
  req.h.nlmsg_flags = flags;
  req.t.tcm_family = AF_UNSPEC;
  req.t.tcm_ifindex = ifindex;
  req.t.tcm_handle = TC_H_MAKE(TC_H_CLSACT, 0);
  req.t.tcm_parent = TC_H_CLSACT;
  static const char kKind[] = "clsact";
  append_rtattr(&req.h, sizeof req, TCA_KIND, kKind, sizeof kKind);
  return sock->request(&req.h, what);
}

}  // namespace

Result<bool> ensure_clsact(int ifindex) {
  auto st = clsact_request(ifindex, RTM_NEWQDISC, NLM_F_CREATE | NLM_F_EXCL,
                           fmt::format("RTM_NEWQDISC(ifindex {}, clsact)", ifindex));
  if (st) return true;
  if (st.error().code != EEXIST) return unexpected(st.error());
  // An earlier run killed before its cleanup leaves its clsact behind,
  // empty or holding only its own filters: that one is retina's to remove.
  for (TcDirection d : {TcDirection::kIngress, TcDirection::kEgress}) {
    auto filters = list_tc_filters(ifindex, d);
    if (!filters) return unexpected(filters.error());
    for (const auto& f : *filters) {
      if (f.handle == 0) continue;  // a priority's header entry, not a filter
      if (!is_retina_filter(f)) return false;
    }
  }
  return true;
}

Result<bool> remove_clsact_if_empty(int ifindex) {
  for (TcDirection d : {TcDirection::kIngress, TcDirection::kEgress}) {
    auto filters = list_tc_filters(ifindex, d);
    if (!filters) return unexpected(filters.error());
    if (!filters->empty()) return false;
  }
  auto st = clsact_request(ifindex, RTM_DELQDISC, 0, fmt::format("RTM_DELQDISC(ifindex {}, clsact)", ifindex));
  if (st) return true;
  if (no_such_filter(st.error().code)) return false;
  return unexpected(st.error());
}

Result<std::optional<TcFilterInfo>> tc_slot_filter(int ifindex, TcDirection dir, TcSlot slot) {
  // A dump rather than bpf_tc_query: an empty slot is the common answer
  // and should not log a kernel error.
  auto filters = list_tc_filters(ifindex, dir);
  if (!filters) return unexpected(filters.error());
  for (auto& f : *filters) {
    if (f.handle != slot.handle || f.priority != slot.priority) continue;
    return std::optional<TcFilterInfo>(std::move(f));
  }
  return std::optional<TcFilterInfo>{};
}

namespace {

Status detach_slot(int ifindex, TcDirection dir, TcSlot slot) {
  bpf_tc_hook h = make_hook(ifindex, dir);
  bpf_tc_opts o{};
  o.sz = sizeof o;
  o.handle = slot.handle;
  o.priority = slot.priority;
  int err = bpf_tc_detach(&h, &o);
  if (err && !no_such_filter(err))
    return unexpected(
        Error::system(fmt::format("bpf_tc_detach(ifindex {}, {}, handle {:#x})", ifindex, to_string(dir), slot.handle), err));
  return ok();
}

}  // namespace

Result<int> detach_stale_retina_filters(int ifindex, TcSlot slot) {
  int removed = 0;
  for (TcDirection d : {TcDirection::kIngress, TcDirection::kEgress}) {
    auto f = tc_slot_filter(ifindex, d, slot);
    if (!f) return unexpected(f.error());
    if (!*f || !is_retina_filter(**f)) continue;
    if (auto st = detach_slot(ifindex, d, slot); !st) return unexpected(st.error());
    ++removed;
  }
  return removed;
}

Result<TcFilter> TcFilter::attach(int ifindex, TcDirection dir, int prog_fd, TcSlot slot) {
  auto prog_id = bpf_prog_id_of_fd(prog_fd);
  if (!prog_id) return unexpected(prog_id.error());
  auto existing = tc_slot_filter(ifindex, dir, slot);
  if (!existing) return unexpected(existing.error());
  if (*existing && !is_retina_filter(**existing))
    return unexpected(Error::invalid(
        fmt::format("tc slot handle {:#x} priority {} on ifindex {} {} holds foreign program '{}'; not replacing it",
                    slot.handle, slot.priority, ifindex, to_string(dir),
                    (*existing)->bpf_name.empty() ? (*existing)->kind : (*existing)->bpf_name)));

  bpf_tc_hook h = make_hook(ifindex, dir);
  bpf_tc_opts o{};
  o.sz = sizeof o;
  o.prog_fd = prog_fd;
  o.flags = BPF_TC_F_REPLACE;
  o.handle = slot.handle;
  o.priority = slot.priority;
  int err = bpf_tc_attach(&h, &o);
  if (err)
    return unexpected(Error::system(fmt::format("bpf_tc_attach(ifindex {}, {})", ifindex, to_string(dir)), err));
  return TcFilter(ifindex, dir, slot, *prog_id);
}

TcFilter::TcFilter(TcFilter&& o) noexcept
    : ifindex_(o.ifindex_),
      dir_(o.dir_),
      slot_(o.slot_),
      prog_id_(o.prog_id_),
      attached_(std::exchange(o.attached_, false)) {}

TcFilter& TcFilter::operator=(TcFilter&& o) noexcept {
  if (this != &o) {
    if (attached_) (void)detach();
    ifindex_ = o.ifindex_;
    dir_ = o.dir_;
    slot_ = o.slot_;
    prog_id_ = o.prog_id_;
    attached_ = std::exchange(o.attached_, false);
  }
  return *this;
}

TcFilter::~TcFilter() {
  if (!attached_) return;
  if (auto st = detach(); !st) log::warn("tc", "filter cleanup failed", {{"error", st.error().message}});
}

Status TcFilter::detach() {
  if (!attached_) return ok();
  attached_ = false;
  // Only remove what is still this filter's program: someone may have
  // replaced it. The dump's program id says so without looking the program
  // up by id, which would need CAP_SYS_ADMIN.
  auto f = tc_slot_filter(ifindex_, dir_, slot_);
  if (!f) return unexpected(f.error());
  if (!*f || (*f)->bpf_prog_id != prog_id_) return ok();
  return detach_slot(ifindex_, dir_, slot_);
}

}  // namespace retina::loader
