#!/usr/bin/env bash
# The whole test suite, as CI runs it: install dependencies, build everything
# (library, agent, tests, benches, Python module, examples), run ctest
# (unit, privileged, install/find_package, fuzz-corpus replay, bench smoke,
# Python); meanwhile, in the background, the sanitizer builds
# (scripts/sanitizers.sh): ASan+UBSan unit tests and corpus replay, then
# the libFuzzer runs from that same build, and the TSan concurrency tests;
# last, the privileged agent tests against the ASan+UBSan agent.
#
#   ./scripts/test.sh                        # everything (CI)
#   RETINA_SKIP_SANITIZERS=1 ./scripts/test.sh   # no ASan/UBSan/TSan stages
#   RETINA_SKIP_FUZZ=1 ./scripts/test.sh         # no libFuzzer runs
#
# Order, for a 2-core machine: the plain build has both cores; ctest -j2
# spends most of its time waiting on traffic between namespaces, so the
# sanitizer builds and runs share the cores with it; the privileged ASan
# stage runs after ctest so two suites never attach BPF at once. Each stage
# prints its wall and CPU time (scripts/timed.sh).
#
# Cost, cold (no ccache), in CPU seconds: the ASan+UBSan build replaces the
# old separate fuzz build and adds the agent and the test binaries to it;
# the TSan build is the core/bpf/k8s/engine layers plus the concurrency
# tests (~570 s), not the whole tree; the sanitizer runs are mostly waiting
# (unit tests ~75 s CPU, concurrency tests ~50 s). Left out on purpose: the
# Python module, benches and examples from both sanitizer builds (their code
# paths are the library's, tested there), the agent's RSS test under ASan,
# and the 64 MiB watch-line case under TSan (see scripts/sanitizers.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
JOBS=${JOBS:-$(nproc)}
T0=$SECONDS

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
./scripts/timed.sh build cmake --build build -j"$JOBS"

# Background jobs log to build/logs/<name>.log; finish NAME prints the log
# (all of it when the job failed) and returns the job's status.
LOGS=$ROOT/build/logs
mkdir -p "$LOGS"
declare -A PIDS=()
background() {
  local name=$1
  shift
  "$@" >"$LOGS/$name.log" 2>&1 &
  PIDS[$name]=$!
  echo "== $name: started in the background (log: build/logs/$name.log)"
}
finish() {
  local name=$1 rc=0
  wait "${PIDS[$name]}" || rc=$?
  echo "== $name: exit $rc"
  if [ "$rc" -eq 0 ]; then
    # Stage times, test summaries and the fuzzers' last lines.
    grep -E '^(== |All tests passed|test cases:|#[0-9]+.*DONE|Done [0-9]+ runs|stat::number_of_executed_units)' \
      "$LOGS/$name.log" || true
  else
    cat "$LOGS/$name.log"
  fi
  return "$rc"
}

SANITIZE=$([ -z "${RETINA_SKIP_SANITIZERS:-}" ] && echo 1 || true)
FUZZ=$([ -z "${RETINA_SKIP_FUZZ:-}" ] && echo 1 || true)
if [ -n "$SANITIZE" ]; then
  # The fuzzers reuse build-asan: one clang compile serves both.
  # A failing asan-run still lets the fuzzers run: one CI run reports both.
  background asan bash -c "./scripts/sanitizers.sh asan-build || exit 1; rc=0
    ./scripts/sanitizers.sh asan-run || rc=1
    if [ -n '$FUZZ' ]; then RETINA_FUZZ_BUILD=build-asan RETINA_FUZZ_JOBS=2 \
       ./scripts/timed.sh fuzz ./scripts/fuzz.sh ${RETINA_FUZZ_SECONDS:-15} || rc=1; fi
    exit \$rc"
  background tsan ./scripts/sanitizers.sh tsan-build tsan-run
elif [ -n "$FUZZ" ]; then
  background fuzz ./scripts/timed.sh fuzz ./scripts/fuzz.sh "${RETINA_FUZZ_SECONDS:-15}"
fi

rc=0
./scripts/timed.sh ctest bash -c "cd build && ctest --output-on-failure -j$JOBS --timeout 900" || rc=$?
for name in "${!PIDS[@]}"; do
  finish "$name" || rc=1
done
if [ "$rc" -ne 0 ]; then
  # ctest's own output scrolls far up a CI log: repeat, last, what failed.
  # Catch2 reports "file:line: FAILED:" with its expansion and messages,
  # pytest "E " lines; capped so the digest stays readable.
  if [ -f build/Testing/Temporary/LastTestsFailed.log ]; then
    echo "== failed ctest entries"
    cat build/Testing/Temporary/LastTestsFailed.log
    echo "== why (build/Testing/Temporary/LastTest.log)"
    grep -E -B3 -A25 ': FAILED:$|^E   ' build/Testing/Temporary/LastTest.log | cut -c1-400 | head -300 || true
  fi
  echo "tests failed" >&2
  exit 1
fi

if [ -n "$SANITIZE" ]; then
  ./scripts/sanitizers.sh asan-priv
fi
echo "== total: $((SECONDS - T0)) s wall"
echo "all tests passed"
