// The drop-reason table builder over arbitrary BTF bytes: libbpf parses
// the blob, then every enumerator is read; never crashes, never reads out
// of bounds, and every slot a table fills agrees with name() for its value.
#include <cstddef>
#include <cstdint>
#include <span>

#include "plugins/dropreason/btf_reasons.hpp"
#include "retina/abi/events.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > (1u << 20)) return 0;
  auto t = retina::dropreason::DropReasonTable::from_btf_data(
      std::span<const std::byte>(reinterpret_cast<const std::byte*>(data), size));
  if (!t) return 0;
  const auto& slots = *t->slots();
  for (size_t i = 0; i < slots.size(); ++i) {
    if (slots[i].empty()) continue;
    const uint32_t value = static_cast<uint32_t>(((i / RETINA_DROP_REASON_SLOTS) << RETINA_DROP_SUBSYS_SHIFT) |
                                                 (i % RETINA_DROP_REASON_SLOTS));
    if (retina_drop_reason_slot(value) != i || t->name(value) != slots[i]) __builtin_trap();
  }
  for (uint32_t v : {0u, 1u, 2u, 0x10001u, 0x20003u, 0xffffffffu}) {
    if (t->name(v).empty()) __builtin_trap();
  }
  return 0;
}
