// The drop-reason name table: from the running kernel's BTF, from
// synthetic BTF (absent, empty and odd enums, enum64, subsystems and module
// enums), the slot layout the decoder reads, and Retina's mapping.
#include <catch2/catch.hpp>

#include <bpf/btf.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "metrics/retina_values.hpp"
#include "plugins/dropreason/btf_reasons.hpp"
#include "retina/abi/events.h"
#include "retina/decoder.hpp"
#include "test_decoder_records.hpp"

using namespace retina;
using namespace retina::dropreason;

namespace {

struct BtfDeleter {
  void operator()(btf* b) const { btf__free(b); }
};
using BtfPtr = std::unique_ptr<btf, BtfDeleter>;

struct Enumerator {
  const char* name;
  uint64_t value;
};

// A BTF with an int and the given enums (ENUM64 when `wide`).
BtfPtr make_btf(const std::vector<std::pair<const char*, std::vector<Enumerator>>>& enums, bool wide = false) {
  BtfPtr b(btf__new_empty());
  REQUIRE(b);
  REQUIRE(btf__add_int(b.get(), "int", 4, BTF_INT_SIGNED) > 0);
  for (const auto& [name, values] : enums) {
    if (wide) {
      REQUIRE(btf__add_enum64(b.get(), name, 8, false) > 0);
      for (const auto& v : values) REQUIRE(btf__add_enum64_value(b.get(), v.name, v.value) == 0);
    } else {
      REQUIRE(btf__add_enum(b.get(), name, 4) > 0);
      for (const auto& v : values) REQUIRE(btf__add_enum_value(b.get(), v.name, static_cast<int64_t>(v.value)) == 0);
    }
  }
  return b;
}

std::vector<std::byte> raw(const btf* b) {
  uint32_t size = 0;
  const void* data = btf__raw_data(b, &size);
  REQUIRE(data);
  std::vector<std::byte> out(size);
  std::memcpy(out.data(), data, size);
  return out;
}

const std::vector<Enumerator> kCore = {
    {"SKB_NOT_DROPPED_YET", 0},   {"SKB_CONSUMED", 1},           {"SKB_DROP_REASON_NOT_SPECIFIED", 2},
    {"SKB_DROP_REASON_NO_SOCKET", 3}, {"SKB_DROP_REASON_NETFILTER_DROP", 8}, {"SKB_DROP_REASON_MAX", 9},
    {"SKB_DROP_REASON_SUBSYS_MASK", 0xffff0000u},
};
const std::vector<Enumerator> kSubsys = {
    {"SKB_DROP_REASON_SUBSYS_CORE", 0},
    {"SKB_DROP_REASON_SUBSYS_MAC80211_UNUSABLE", 1},
    {"SKB_DROP_REASON_SUBSYS_OPENVSWITCH", 2},
    {"SKB_DROP_REASON_SUBSYS_NUM", 3},
};

}  // namespace

TEST_CASE("drop reasons: the running kernel's BTF names every reason", "[dropreason]") {
  BtfPtr vmlinux(btf__load_vmlinux_btf());
  if (!vmlinux) {
    WARN("SKIPPED: no kernel BTF on this machine");
    return;
  }
  auto table = DropReasonTable::load_kernel("/sys");
  REQUIRE(table);
  CHECK(check_kfree_skb_tracepoint(vmlinux.get()));

  // Every enumerator of enum skb_drop_reason except MAX and SUBSYS_MASK.
  int id = btf__find_by_name_kind(vmlinux.get(), "skb_drop_reason", BTF_KIND_ENUM);
  REQUIRE(id > 0);
  const btf_type* t = btf__type_by_id(vmlinux.get(), static_cast<uint32_t>(id));
  const struct btf_enum* e = btf_enum(t);
  size_t expected = 0;
  for (uint16_t i = 0; i < btf_vlen(t); ++i) {
    std::string n = btf__name_by_offset(vmlinux.get(), e[i].name_off);
    if (n == "SKB_DROP_REASON_MAX" || n == "SKB_DROP_REASON_SUBSYS_MASK") continue;
    ++expected;
    const uint32_t v = static_cast<uint32_t>(e[i].val);
    const std::string stripped =
        n.rfind("SKB_DROP_REASON_", 0) == 0 ? n.substr(16) : (n.rfind("SKB_", 0) == 0 ? n.substr(4) : n);
    INFO(n);
    CHECK(table->name(v) == stripped);
    CHECK(table->value(stripped) == v);
    REQUIRE(retina_drop_reason_slot(v) < table->slots()->size());
    CHECK((*table->slots())[retina_drop_reason_slot(v)] == stripped);
  }
  CHECK(table->named() == expected);
  for (const char* n : {"NOT_SPECIFIED", "NO_SOCKET", "NETFILTER_DROP", "TCP_INVALID_SEQUENCE", "CONSUMED"})
    CHECK(table->value(n).has_value());
  CHECK_FALSE(table->value("MAX"));
  CHECK_FALSE(table->value("SUBSYS_MASK"));

  // Subsystems this kernel knows get names for their codes, in the slots too.
  for (uint32_t s = 1; s < table->subsystems().size(); ++s) {
    if (table->subsystems()[s].empty()) continue;
    const uint32_t v = (s << 16) | 3;
    INFO("subsystem " << table->subsystems()[s]);
    CHECK_FALSE(table->name(v).empty());
    REQUIRE(retina_drop_reason_slot(v) < table->slots()->size());
    CHECK((*table->slots())[retina_drop_reason_slot(v)] == table->name(v));
  }
}

TEST_CASE("drop reasons: a kernel without the enum is unsupported", "[dropreason]") {
  auto b = make_btf({{"other_enum", {{"A", 1}}}});
  auto t = DropReasonTable::from_btf(b.get());
  REQUIRE_FALSE(t);
  CHECK(t.error().kind == Error::Kind::kUnsupported);
  CHECK(t.error().message.find("skb_drop_reason") != std::string::npos);
  auto tp = check_kfree_skb_tracepoint(b.get());
  REQUIRE_FALSE(tp);
  CHECK(tp.error().kind == Error::Kind::kUnsupported);

  auto d = DropReasonTable::from_btf_data(raw(b.get()));
  REQUIRE_FALSE(d);
  CHECK(d.error().kind == Error::Kind::kUnsupported);
}

TEST_CASE("drop reasons: an enum that names nothing is rejected", "[dropreason]") {
  auto b = make_btf({{"skb_drop_reason", {{"SKB_DROP_REASON_MAX", 0}, {"SKB_DROP_REASON_SUBSYS_MASK", 0xffff0000u},
                                          {"SKB_DROP_REASON_", 4}, {"__SKB_X", 5}}}});
  auto t = DropReasonTable::from_btf(b.get());
  REQUIRE_FALSE(t);
  CHECK(t.error().kind == Error::Kind::kInvalidArgument);
}

TEST_CASE("drop reasons: malformed BTF bytes are an error, not a crash", "[dropreason]") {
  auto b = make_btf({{"skb_drop_reason", kCore}});
  auto bytes = raw(b.get());
  CHECK_FALSE(DropReasonTable::from_btf_data({}));
  CHECK_FALSE(DropReasonTable::from_btf_data(std::span(bytes).first(bytes.size() / 2)));
  auto broken = bytes;
  broken[0] = std::byte{0};  // magic
  CHECK_FALSE(DropReasonTable::from_btf_data(broken));
  REQUIRE(DropReasonTable::from_btf_data(bytes));
}

TEST_CASE("drop reasons: prefixes, duplicates and the values that are not reasons", "[dropreason]") {
  for (bool wide : {false, true}) {
    INFO((wide ? "enum64" : "enum"));
    auto core = kCore;
    core.push_back({"SKB_DROP_REASON_DUPLICATE", 3});  // value taken: first wins
    core.push_back({"CUSTOM_NAME", 12});               // no prefix: kept as is
    core.push_back({"SKB_DROP_REASON_NO_SOCKET", 13}); // name taken
    auto b = make_btf({{"skb_drop_reason", core}}, wide);
    auto t = DropReasonTable::from_btf(b.get());
    REQUIRE(t);
    CHECK(t->name(0) == "NOT_DROPPED_YET");
    CHECK(t->name(1) == "CONSUMED");
    CHECK(t->name(2) == "NOT_SPECIFIED");
    CHECK(t->name(3) == "NO_SOCKET");
    CHECK(t->name(8) == "NETFILTER_DROP");
    CHECK(t->name(12) == "CUSTOM_NAME");
    CHECK(t->name(13) == "REASON_13");
    CHECK(t->name(9) == "REASON_9");  // MAX is no reason
    CHECK(t->name(500) == "REASON_500");
    CHECK(t->named() == 6);
    CHECK_FALSE(t->value("MAX"));
    CHECK_FALSE(t->value("DUPLICATE"));
    // Slots cover the core up to the highest named value, gaps included.
    const auto& slots = *t->slots();
    REQUIRE(slots.size() == 13);
    CHECK(slots[8] == "NETFILTER_DROP");
    CHECK(slots[5] == "REASON_5");
    // No subsystem enum: subsystem values get numeric names.
    CHECK(t->name(0x20001) == "SUBSYS2_1");
  }
}

TEST_CASE("drop reasons: subsystems and the module enums that name their codes", "[dropreason]") {
  auto vmlinux = make_btf({{"skb_drop_reason", kCore}, {"skb_drop_reason_subsys", kSubsys}});
  auto ovs = make_btf({{"ovs_drop_reason",
                        {{"__OVS_DROP_REASON", 0x20000}, {"OVS_DROP_LAST_ACTION", 0x20001},
                         {"OVS_DROP_ACTION_ERROR", 0x20002}, {"OVS_DROP_WRONG_SUBSYS", 0x10007}}}});
  auto other = make_btf({{"mac80211_drop_reason", {{"RX_DROP_U_MIC_FAIL", 0x10002}, {"RX_CONTINUE", 1}}}});

  SECTION("without module BTF") {
    auto t = DropReasonTable::from_btf(vmlinux.get());
    REQUIRE(t);
    REQUIRE(t->subsystems().size() == 3);
    CHECK(t->subsystems()[1] == "MAC80211_UNUSABLE");
    CHECK(t->subsystems()[2] == "OPENVSWITCH");
    CHECK(t->name(0x20001) == "OPENVSWITCH_1");
    CHECK(t->name(0x10002) == "MAC80211_UNUSABLE_2");
    CHECK(t->name(0x70001) == "SUBSYS7_1");
    const auto& slots = *t->slots();
    REQUIRE(slots.size() > 2 * RETINA_DROP_REASON_SLOTS + 5);
    CHECK(slots[retina_drop_reason_slot(0x20005)] == "OPENVSWITCH_5");
  }
  SECTION("with module BTF") {
    const btf* mods[] = {ovs.get(), other.get()};
    auto t = DropReasonTable::from_btf(vmlinux.get(), mods);
    REQUIRE(t);
    CHECK(t->name(0x20001) == "OVS_DROP_LAST_ACTION");
    CHECK(t->name(0x20002) == "OVS_DROP_ACTION_ERROR");
    CHECK(t->name(0x20000) == "OPENVSWITCH_0");       // the enum's base is no reason
    CHECK(t->name(0x10007) == "MAC80211_UNUSABLE_7");  // ovs enum, mac80211 value: not taken
    CHECK(t->name(0x10002) == "RX_DROP_U_MIC_FAIL");
    CHECK(t->name(1) == "CONSUMED");                   // RX_CONTINUE is not a subsystem value
    CHECK(t->value("OVS_DROP_LAST_ACTION") == 0x20001u);
    const auto& slots = *t->slots();
    CHECK(slots[retina_drop_reason_slot(0x20001)] == "OVS_DROP_LAST_ACTION");

    // The decoder finds subsystem names through the slot layout.
    auto ev = testing::drop_event();
    ev.reason = 0x20001;
    DecodeContext ctx;
    ctx.drop_reason_names = &slots;
    auto rec = testing::record_of(ev);
    Flow f;
    REQUIRE(decode(rec, ctx, f));
    CHECK(f.drop_reason == 0x20001u);
    CHECK(f.drop_reason_desc == "OVS_DROP_LAST_ACTION");
    ev.reason = 0x20000u | RETINA_DROP_REASON_SLOTS;  // beyond the slots
    rec = testing::record_of(ev);
    REQUIRE(decode(rec, ctx, f));
    CHECK(f.drop_reason_desc == "UNKNOWN");
  }
}

TEST_CASE("drop reasons: the kfree_skb tracepoint must carry the reason", "[dropreason]") {
  // typedef void (*btf_trace_kfree_skb)(void *, struct sk_buff *, void *[, enum skb_drop_reason]);
  auto build = [](bool with_reason) {
    BtfPtr b(btf__new_empty());
    const int reason = btf__add_enum(b.get(), "skb_drop_reason", 4);
    REQUIRE(btf__add_enum_value(b.get(), "SKB_DROP_REASON_NOT_SPECIFIED", 2) == 0);
    const int vptr = btf__add_ptr(b.get(), 0);
    const int proto = btf__add_func_proto(b.get(), 0);
    REQUIRE(btf__add_func_param(b.get(), "", vptr) == 0);
    REQUIRE(btf__add_func_param(b.get(), "", vptr) == 0);
    REQUIRE(btf__add_func_param(b.get(), "", vptr) == 0);
    if (with_reason) REQUIRE(btf__add_func_param(b.get(), "", reason) == 0);
    const int fptr = btf__add_ptr(b.get(), proto);
    REQUIRE(btf__add_typedef(b.get(), "btf_trace_kfree_skb", fptr) > 0);
    return b;
  };
  CHECK(check_kfree_skb_tracepoint(build(true).get()));
  auto old = check_kfree_skb_tracepoint(build(false).get());
  REQUIRE_FALSE(old);
  CHECK(old.error().kind == Error::Kind::kUnsupported);
  CHECK(old.error().message.find("5.17") != std::string::npos);
}

TEST_CASE("drop reasons: Retina's reason for a kernel reason", "[dropreason]") {
  CHECK(metrics::retina_reason("NETFILTER_DROP") == "IPTABLE_RULE_DROP");
  CHECK(metrics::retina_reason("TCP_CLOSE") == "TCP_CLOSE_BASIC");
  CHECK(metrics::retina_reason("NOT_SPECIFIED") == "UNKNOWN_DROP");
  for (const char* none : {"NO_SOCKET", "TCP_INVALID_SEQUENCE", "QDISC_DROP", "IP_RPFILTER", "", "netfilter_drop"})
    CHECK(metrics::retina_reason(none).empty());
  // Retina's labels: UNKNOWN_DROP for those; a direction only for connect/accept.
  CHECK(metrics::retina_reason_or_unknown("NO_SOCKET") == "UNKNOWN_DROP");
  CHECK(metrics::retina_reason_or_unknown("NETFILTER_DROP") == "IPTABLE_RULE_DROP");
  CHECK(metrics::retina_drop_direction("IPTABLE_RULE_DROP") == "unknown");
  CHECK(metrics::retina_drop_direction("UNKNOWN_DROP") == "unknown");
  CHECK(metrics::retina_drop_direction("TCP_CONNECT_BASIC") == "egress");
  CHECK(metrics::retina_drop_direction("TCP_ACCEPT_BASIC") == "ingress");
  // Every mapped value is one of Retina's.
  BtfPtr vmlinux(btf__load_vmlinux_btf());
  if (!vmlinux) return;
  auto table = DropReasonTable::from_btf(vmlinux.get());
  REQUIRE(table);
  std::set<std::string_view> retina(std::begin(metrics::kRetinaDropReasons), std::end(metrics::kRetinaDropReasons));
  for (uint32_t v = 0; v < 1024; ++v) {
    auto r = metrics::retina_reason(table->name(v));
    if (!r.empty()) CHECK(retina.count(r));
  }
}
