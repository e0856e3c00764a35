// libFuzzer target for the flow decoder: any byte string as a ring-buffer
// record, taken apart first when it is a batch. Decoded flows are also
// rendered as JSON, the flow log's path.
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "retina/decoder.hpp"
#include "retina/flow_json.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static retina::DnsInfo scratch;
  static const std::vector<std::string> names = {"NOT_SPECIFIED", "NO_SOCKET", "PKT_TOO_SMALL", "TCP_CSUM",
                                                 "SOCKET_FILTER", "UDP_CSUM", "NETFILTER_DROP"};
  static std::string json;
  retina::DecodeContext ctx;
  ctx.dns_scratch = &scratch;
  ctx.drop_reason_names = &names;
  ctx.boot_to_realtime_ns = 1'700'000'000'000'000'000;
  retina::Flow flow;
  auto one = [&](std::span<const std::byte> rec) {
    if (!retina::decode(rec, ctx, flow)) return;
    json.clear();
    retina::append_flow_json(json, flow, {.node_name = "fuzz-node"});
    if (json.empty() || json.front() != '{' || json.back() != '}') __builtin_trap();
  };
  const auto rec = std::as_bytes(std::span<const uint8_t>(data, size));
  if (!retina::is_batch(rec)) {
    one(rec);
    return 0;
  }
  auto batch = retina::split_batch(rec);
  if (!batch) {
    if (retina::decode(rec, ctx, flow)) __builtin_trap();  // a bad batch never decodes
    return 0;
  }
  if (batch->records.data() < rec.data() || batch->records.data() + batch->records.size() > rec.data() + rec.size())
    __builtin_trap();
  for (size_t i = 0; i < batch->count; ++i) one(batch->record(i));
  return 0;
}
