#!/usr/bin/env bash
# The whole test suite, as CI runs it: install dependencies, build everything
# (library, agent, tests, benches, Python module, examples), run ctest
# (unit, privileged, install/find_package, fuzz-corpus replay, bench smoke,
# Python), then build the libFuzzer targets with clang and run each briefly.
#
#   ./scripts/test.sh                 # everything
#   RETINA_SKIP_FUZZ=1 ./scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
JOBS=${JOBS:-$(nproc)}

./scripts/install-deps.sh

# As root, the privileged suite must run: a test that cannot is a failure.
if [ "$(id -u)" -eq 0 ]; then
  export RETINA_REQUIRE_PRIVILEGED=${RETINA_REQUIRE_PRIVILEGED:-1}
fi

# ccache (from install-deps.sh) makes a rebuild of unchanged sources cheap.
LAUNCHER=()
command -v ccache >/dev/null && LAUNCHER=(-DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo "${LAUNCHER[@]}" \
  -DRETINA_BUILD_TESTS=ON -DRETINA_BUILD_BENCH=ON -DRETINA_BUILD_PYTHON=ON \
  -DPython3_EXECUTABLE=/usr/bin/python3
cmake --build build -j"$JOBS"
(cd build && ctest --output-on-failure -j"$JOBS" --timeout 900)

if [ -z "${RETINA_SKIP_FUZZ:-}" ]; then
  ./scripts/fuzz.sh "${RETINA_FUZZ_SECONDS:-15}"
fi
echo "all tests passed"
