// The kernel feature detector on the machine running the tests: what every
// plugin relies on is present, and what is missing says why.
#include <catch2/catch.hpp>

#include "retina/features.hpp"
#include "support/privileged.hpp"

using namespace retina;

TEST_CASE("kernel feature detector answers every feature and caches it", "[priv][loader][features]") {
  RETINA_REQUIRE_PRIVILEGED();
  auto det = make_kernel_feature_detector();
  for (KernelFeature f : {KernelFeature::kBpfSyscall, KernelFeature::kBtf, KernelFeature::kRingBuf,
                          KernelFeature::kTcCls, KernelFeature::kSocketFilter, KernelFeature::kCgroupSkb,
                          KernelFeature::kRawTp, KernelFeature::kAtomics}) {
    INFO(to_string(f));
    auto st = det->probe(f);
    CHECK(st.has_value());
    if (!st) UNSCOPED_INFO(st.error().message);
  }
  for (int i = 0; i < static_cast<int>(KernelFeature::kCount); ++i) {
    const auto f = static_cast<KernelFeature>(i);
    auto first = det->probe(f);
    auto second = det->probe(f);
    INFO(to_string(f) << ": " << (first ? std::string("present") : first.error().message));
    CHECK(first.has_value() == second.has_value());
    if (!first) {
      CHECK(first.error().kind == Error::Kind::kUnsupported);
      CHECK_FALSE(first.error().message.empty());
      CHECK(first.error().message == second.error().message);
    }
  }
  CHECK_FALSE(det->probe(KernelFeature::kCount).has_value());
}
