// The tcpretrans plugin without privileges: option checks and missing
// kernel features as errors of the right kind, the tracepoint's shape from
// kernel BTF, and the flows its records become.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <set>
#include <string>

#include "plugins/tcpretrans/tcpretrans.hpp"
#include "retina/decoder.hpp"
#include "retina/features.hpp"
#include "support/fake_plugin.hpp"
#include "unit/test_decoder_records.hpp"

using namespace retina;

namespace {

class MissingFeatures final : public FeatureDetector {
 public:
  explicit MissingFeatures(std::set<KernelFeature> missing) : missing_(std::move(missing)) {}
  Status probe(KernelFeature f) override {
    if (missing_.count(f)) return unexpected(Error::unsupported(std::string("fake kernel lacks ") + to_string(f)));
    return ok();
  }

 private:
  std::set<KernelFeature> missing_;
};

Error init_error(TcpRetransOptions o, FeatureDetector& features) {
  TcpRetransPlugin p(o);
  PluginContext ctx;
  ctx.features = &features;
  auto st = p.init(ctx);
  REQUIRE_FALSE(st);
  return st.error();
}

}  // namespace

TEST_CASE("tcpretrans plugin: names and factory", "[tcpretrans]") {
  auto p = make_builtin_plugin("tcpretrans");
  REQUIRE(p);
  CHECK(p->name() == "tcpretrans");
  CHECK(p->event_sources().empty());
}

TEST_CASE("tcpretrans plugin: a bad ring size is invalid", "[tcpretrans]") {
  test::AllFeatures all;
  TcpRetransOptions o;
  o.ring_buffer_size = 12345;
  Error e = init_error(o, all);
  CHECK(e.kind == Error::Kind::kInvalidArgument);
  CHECK(e.message.find("ring buffer size 12345 must be a power of two") != std::string::npos);
}

TEST_CASE("tcpretrans plugin: missing kernel features disable it with the reason", "[tcpretrans]") {
  {
    MissingFeatures f({KernelFeature::kBtf});
    Error e = init_error({}, f);
    CHECK(e.kind == Error::Kind::kUnsupported);
    CHECK(e.message == "tcpretrans: fake kernel lacks btf");
  }
  {
    MissingFeatures f({KernelFeature::kTpBtf, KernelFeature::kRawTp});
    Error e = init_error({}, f);
    CHECK(e.kind == Error::Kind::kUnsupported);
    CHECK(e.message.find("tp_btf: fake kernel lacks tp_btf; raw_tp: fake kernel lacks raw_tp") != std::string::npos);
  }
  {
    // raw_tp forced and missing: tp_btf is not even asked.
    MissingFeatures f({KernelFeature::kRawTp});
    TcpRetransOptions o;
    o.force_raw_tp = true;
    Error e = init_error(o, f);
    CHECK(e.kind == Error::Kind::kUnsupported);
    CHECK(e.message.find("tp_btf: not used: raw_tp forced") != std::string::npos);
  }
}

TEST_CASE("tcpretrans: the tracepoint's arguments from kernel BTF", "[tcpretrans]") {
  if (::access("/sys/kernel/btf/vmlinux", R_OK) != 0) {
    auto s = retransmit_tracepoint_shape();
    REQUIRE_FALSE(s);
    CHECK(s.error().kind == Error::Kind::kUnsupported);
    return;
  }
  auto s = retransmit_tracepoint_shape();
  REQUIRE(s);  // any kernel with BTF has the tracepoint (4.15+)
}

TEST_CASE("tcpretrans: a record becomes an egress RETRANSMISSION flow", "[tcpretrans]") {
  auto ev = testing::tcpretrans_event();
  ev.netns_ino = 4026531840u;
  ev.segs = 3;
  Flow f;
  REQUIRE(decode(testing::record_of(ev), DecodeContext{}, f));
  CHECK(f.origin == FlowSource::kTcpRetrans);
  CHECK(f.verdict == Verdict::RETRANSMISSION);
  CHECK(f.direction == TrafficDirection::EGRESS);
  CHECK(f.src == *IpAddr::parse("fd00::1"));
  CHECK(f.dst == *IpAddr::parse("fd00::2"));
  CHECK(f.src_port == 5555);
  CHECK(f.dst_port == 8080);
  CHECK(f.tcp_state == 1);
  // The 64-byte layout of before is too short now.
  auto rec = testing::record_of(ev);
  rec.resize(64);
  retina_event_hdr hdr;
  std::memcpy(&hdr, rec.data(), sizeof hdr);
  hdr.len = 64;
  std::memcpy(rec.data(), &hdr, sizeof hdr);
  auto r = decode(rec, DecodeContext{}, f);
  REQUIRE_FALSE(r);
  CHECK(r.error() == DecodeError::kTooShort);
}
