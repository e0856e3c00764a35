// The packet events in packetparser's ring, for the privileged tests that
// count them: it waits for the batches of aggregation low to be sent, then
// takes each batch apart, so both aggregation levels give one list.
#pragma once

#include <catch2/catch.hpp>

#include <cstring>
#include <span>
#include <vector>

#include "plugins/packetparser/packetparser.hpp"
#include "retina/abi/events.h"
#include "retina/decoder.hpp"

namespace retina::test {

inline std::vector<retina_packet_event> drain_packet_events(PacketParserPlugin& pp, size_t per_call = 1024) {
  REQUIRE(pp.wait_batches_sent() == 0);
  std::vector<retina_packet_event> evs;
  auto fn = [](void* user, std::span<const std::byte> rec) {
    auto* v = static_cast<std::vector<retina_packet_event>*>(user);
    auto one = [v](std::span<const std::byte> r) {
      REQUIRE(r.size() == sizeof(retina_packet_event));
      retina_packet_event e;
      std::memcpy(&e, r.data(), sizeof e);
      REQUIRE(e.hdr.type == RETINA_EV_PACKET);
      v->push_back(e);
    };
    if (!is_batch(rec)) return one(rec);
    auto batch = split_batch(rec);
    REQUIRE(batch);
    CHECK(batch->stride == sizeof(retina_packet_event));
    for (size_t i = 0; i < batch->count; ++i) one(batch->record(i));
  };
  for (auto* src : pp.event_sources())
    while (src->drain(fn, &evs, per_call)) {
    }
  return evs;
}

}  // namespace retina::test
