// rtnetlink message parsing (links, routes, tc filters) over arbitrary
// bytes: never reads past a message, never crashes.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "loader/netlink.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > (1u << 20)) return 0;
  // Netlink buffers are 4-byte aligned; copy into an aligned one.
  std::vector<uint32_t> storage(size / 4 + 2);
  if (size) std::memcpy(storage.data(), data, size);
  auto* h = reinterpret_cast<nlmsghdr*>(storage.data());
  int len = static_cast<int>(size);
  for (; NLMSG_OK(h, len); h = NLMSG_NEXT(h, len)) {
    (void)retina::loader::parse_link_message(*h);
    (void)retina::loader::parse_route_message(*h);
    int ifindex = 0;
    (void)retina::loader::parse_tc_filter_message(*h, &ifindex);
  }
  return 0;
}
