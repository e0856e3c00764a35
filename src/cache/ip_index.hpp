// The reader-side index of the IpCache: address -> endpoint, one of the two
// left-right copies. Hashing is xxHash3 over the 16 address bytes, compiled
// inline (XXH_INLINE_ALL) so a lookup is one hash plus one probe with no call.
#pragma once

#include <absl/container/flat_hash_map.h>

#include <cstdint>
#include <cstring>

#include "retina/endpoint.hpp"
#include "retina/ip.hpp"

#ifndef XXH_INLINE_ALL
#define XXH_INLINE_ALL
#endif
#include <xxhash.h>

namespace retina::cache {

struct IpHash {
  size_t operator()(const IpAddr& ip) const noexcept {
    return static_cast<size_t>(XXH3_64bits(ip.bytes.data(), ip.bytes.size()));
  }
};

// Two 64-bit compares instead of a byte loop.
struct IpEq {
  bool operator()(const IpAddr& a, const IpAddr& b) const noexcept {
    uint64_t a0, a1, b0, b1;
    std::memcpy(&a0, a.bytes.data(), 8);
    std::memcpy(&a1, a.bytes.data() + 8, 8);
    std::memcpy(&b0, b.bytes.data(), 8);
    std::memcpy(&b1, b.bytes.data() + 8, 8);
    return ((a0 ^ b0) | (a1 ^ b1)) == 0;
  }
};

// Each copy holds a reference to its endpoints, so a reader can take an
// owning reference from the copy it reads (ReadGuard::lookup_owned).
using IpIndex = absl::flat_hash_map<IpAddr, EndpointPtr, IpHash, IpEq>;

}  // namespace retina::cache
