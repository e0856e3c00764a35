#include "loader/tcx_link.hpp"

#include <linux/bpf.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include <bpf/bpf.h>

#include "loader/fd.hpp"

namespace retina::loader {

namespace {

// BPF_LINK_CREATE attributes with the TCX fields (6.6 layout).
struct LinkCreateAttr {
  uint32_t prog_fd;
  uint32_t target_ifindex;
  uint32_t attach_type;
  uint32_t flags;
  uint32_t relative_fd;
  uint32_t pad;
  uint64_t expected_revision;
};

// BPF_PROG_QUERY attributes (6.6 layout).
struct ProgQueryAttr {
  uint32_t target_ifindex;
  uint32_t attach_type;
  uint32_t query_flags;
  uint32_t attach_flags;
  uint64_t prog_ids;
  uint32_t count;
  uint32_t pad;
  uint64_t prog_attach_flags;
  uint64_t link_ids;
  uint64_t link_attach_flags;
  uint64_t revision;
};

// The kernel accepts attributes larger than it knows when the tail is zero.
union AttrBuf {
  LinkCreateAttr link;
  ProgQueryAttr query;
  unsigned char raw[sizeof(union bpf_attr) > 128 ? sizeof(union bpf_attr) : 128];
};

long sys_bpf(int cmd, AttrBuf* attr) { return ::syscall(__NR_bpf, cmd, attr, sizeof(*attr)); }

// The kernel's name of program `id`. Looking a program up by id needs
// CAP_SYS_ADMIN: only this inspection listing does it, never the agent.
std::string prog_name_by_id(uint32_t id) {
  UniqueFd fd(bpf_prog_get_fd_by_id(id));
  if (fd.get() < 0) return {};
  bpf_prog_info info;
  std::memset(&info, 0, sizeof info);
  uint32_t len = sizeof info;
  if (bpf_obj_get_info_by_fd(fd.get(), &info, &len) < 0) return {};
  return std::string(info.name, strnlen(info.name, sizeof info.name));
}

}  // namespace

uint32_t tcx_attach_type(TcDirection dir) { return dir == TcDirection::kIngress ? kBpfTcxIngress : kBpfTcxEgress; }

Result<TcxLink> TcxLink::attach(int ifindex, TcDirection dir, int prog_fd) {
  AttrBuf a;
  std::memset(&a, 0, sizeof a);
  a.link.prog_fd = static_cast<uint32_t>(prog_fd);
  a.link.target_ifindex = static_cast<uint32_t>(ifindex);
  a.link.attach_type = tcx_attach_type(dir);
  a.link.flags = kBpfFBefore;
  long fd = sys_bpf(BPF_LINK_CREATE, &a);
  if (fd < 0)
    return unexpected(
        Error::system(fmt::format("bpf_link_create(ifindex {}, BPF_TCX_{})", ifindex, dir == TcDirection::kIngress ? "INGRESS" : "EGRESS"),
                      errno));
  return TcxLink(UniqueFd(static_cast<int>(fd)), ifindex, dir);
}

Result<std::vector<TcxProgram>> list_tcx_programs(int ifindex, TcDirection dir) {
  std::vector<uint32_t> ids(64);
  AttrBuf a;
  std::memset(&a, 0, sizeof a);
  a.query.target_ifindex = static_cast<uint32_t>(ifindex);
  a.query.attach_type = tcx_attach_type(dir);
  a.query.prog_ids = reinterpret_cast<uintptr_t>(ids.data());
  a.query.count = static_cast<uint32_t>(ids.size());
  if (sys_bpf(BPF_PROG_QUERY, &a) < 0)
    return unexpected(Error::system(fmt::format("bpf_prog_query(ifindex {}, tcx {})", ifindex, to_string(dir)), errno));
  std::vector<TcxProgram> out;
  for (uint32_t i = 0; i < a.query.count && i < ids.size(); ++i) {
    TcxProgram p;
    p.prog_id = ids[i];
    p.name = prog_name_by_id(ids[i]);
    out.push_back(std::move(p));
  }
  return out;
}

}  // namespace retina::loader

namespace retina {

Result<std::vector<TcxProgram>> tcx_programs(int ifindex, bool ingress) {
  return loader::list_tcx_programs(ifindex, ingress ? loader::TcDirection::kIngress : loader::TcDirection::kEgress);
}

}  // namespace retina

namespace retina::loader {

Result<bool> probe_tcx(int sched_cls_prog_fd) {
  AttrBuf a;
  std::memset(&a, 0, sizeof a);
  a.link.prog_fd = static_cast<uint32_t>(sched_cls_prog_fd);
  a.link.target_ifindex = 0;
  a.link.attach_type = kBpfTcxIngress;
  long fd = sys_bpf(BPF_LINK_CREATE, &a);
  if (fd >= 0) {  // cannot happen for ifindex 0, but never leak a link
    ::close(static_cast<int>(fd));
    return true;
  }
  if (errno == ENODEV) return true;
  if (errno == EINVAL) return false;
  return unexpected(Error::system("bpf_link_create(ifindex 0, BPF_TCX_INGRESS) probe", errno));
}

}  // namespace retina::loader
