#!/usr/bin/env bash
# Sanitizer builds and their test runs (clang-14), one stage per argument:
#
#   asan-build  build-asan: the library, agent, CLI, unit and privileged
#               tests and the libFuzzer targets, all with ASan+UBSan (and
#               libFuzzer's coverage hooks, so scripts/fuzz.sh reuses it).
#   asan-run    the unit tests, then every fuzz corpus replayed once
#               (libFuzzer -runs=0), under ASan+UBSan with leak checking.
#   asan-priv   the privileged agent tests ('[agent]', root, real BPF): the
#               agent they spawn is the ASan+UBSan build.
#   tsan-build  build-tsan: only retina_concurrency_tests and the layers it
#               tests, with TSan.
#   tsan-run    retina_concurrency_tests under TSan.
#
#   ./scripts/sanitizers.sh                      # all five, in this order
#   ./scripts/sanitizers.sh tsan-build tsan-run
#
# Any sanitizer report fails its stage: nothing recovers, leaks count, and
# the only suppressions (tests/sanitizers/*.supp) name third-party code.
# Each stage prints its wall and CPU time (scripts/timed.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
JOBS=${JOBS:-$(nproc)}
SUPP=$ROOT/tests/sanitizers

export ASAN_OPTIONS=${ASAN_OPTIONS:-halt_on_error=1:abort_on_error=0:detect_leaks=1:detect_stack_use_after_return=1:check_initialization_order=1:strict_init_order=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1:suppressions=$SUPP/ubsan.supp}
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$SUPP/lsan.supp:print_suppressions=0}
export TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=1:second_deadlock_stack=1:suppressions=$SUPP/tsan.supp}

LAUNCHER=()
command -v ccache >/dev/null && LAUNCHER=(-DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
CLANG=(-DCMAKE_C_COMPILER=clang-14 -DCMAKE_CXX_COMPILER=clang++-14 -DCMAKE_BUILD_TYPE=RelWithDebInfo
       -DRETINA_BUILD_BENCH=OFF -DRETINA_BUILD_PYTHON=OFF -DRETINA_BUILD_EXAMPLES=OFF)

asan_build() {
  cmake -S . -B build-asan -G Ninja "${LAUNCHER[@]}" "${CLANG[@]}" \
    -DRETINA_BUILD_FUZZ=ON -DRETINA_BUILD_TESTS=ON >/dev/null
  cmake --build build-asan -j"$JOBS"
}

asan_run() {
  build-asan/tests/retina_unit_tests
  # The corpora once through, as the replay tests of the plain build do;
  # scripts/fuzz.sh then fuzzes from them.
  local n=0 bin out
  for bin in build-asan/fuzz/fuzz_*; do
    [ -f "$bin" ] && [ -x "$bin" ] || continue
    if ! out=$("$bin" -runs=0 "fuzz/corpus/$(basename "$bin")" 2>&1); then
      printf '%s: FAILED\n%s\n' "$(basename "$bin")" "$(tail -n 60 <<<"$out")"
      return 1
    fi
    printf '%s: %s\n' "$(basename "$bin")" "$(grep -m1 -E 'INITED|Done' <<<"$out")"
    n=$((n + 1))
  done
  [ "$n" -gt 0 ] || { echo "no fuzz targets in build-asan" >&2; return 1; }
}

asan_priv() {
  # [rss] measures the agent's memory, which ASan's shadow and quarantine
  # make meaningless; the plain build runs it.
  build-asan/tests/retina_priv_tests '[agent]~[rss]'
}

tsan_build() {
  cmake -S . -B build-tsan -G Ninja "${LAUNCHER[@]}" "${CLANG[@]}" \
    -DRETINA_SANITIZE=thread -DRETINA_BUILD_TESTS=ON >/dev/null
  cmake --build build-tsan -j"$JOBS" --target retina_concurrency_tests
}

tsan_run() {
  # Left out: the k8s watcher's hostile-stream case pushes a 64 MiB line
  # through TLS, a throughput test that TSan's slowdown turns into a
  # timeout; the plain and ASan builds run it.
  build-tsan/tests/retina_concurrency_tests '~k8s watcher: hostile watch streams*'
}

if [ "${1:-}" = __run ]; then
  "${2//-/_}"
  exit
fi
[ "$#" -gt 0 ] || set -- asan-build asan-run asan-priv tsan-build tsan-run
for s in "$@"; do
  case $s in
    asan-build | asan-run | asan-priv | tsan-build | tsan-run)
      "$ROOT/scripts/timed.sh" "$s" "$ROOT/scripts/sanitizers.sh" __run "$s" ;;
    *) echo "unknown stage: $s" >&2; exit 2 ;;
  esac
done
