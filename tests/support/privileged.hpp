// Privileged tests load BPF and build network namespaces. Without root they
// skip with a printed reason; with RETINA_REQUIRE_PRIVILEGED=1 (CI) a
// missing privilege fails the test instead of skipping it.
#pragma once

#include <string>

#include <catch2/catch.hpp>

namespace retina::test {

// Empty when the test may run; otherwise the reason it cannot.
std::string privilege_problem();
bool privileged_required();

}  // namespace retina::test

#define RETINA_REQUIRE_PRIVILEGED()                                                  \
  do {                                                                               \
    const std::string retina_why_ = ::retina::test::privilege_problem();             \
    if (!retina_why_.empty()) {                                                      \
      if (::retina::test::privileged_required()) FAIL("cannot run: " << retina_why_); \
      WARN("SKIPPED: " << retina_why_);                                              \
      return;                                                                        \
    }                                                                                \
  } while (0)
