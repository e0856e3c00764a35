#!/usr/bin/env bash
# Builds the libFuzzer targets with clang-14 (ASan+UBSan) and runs each for
# N seconds (default 15) over its corpus. Any crash or sanitizer report fails.
#
#   ./scripts/fuzz.sh 60
#   RETINA_FUZZ_BUILD=build-asan ./scripts/fuzz.sh   # reuse scripts/sanitizers.sh's build
#   RETINA_FUZZ_JOBS=2 ./scripts/fuzz.sh              # targets run two at a time
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-15}
BUILD=${RETINA_FUZZ_BUILD:-build-fuzz}
FUZZ_JOBS=${RETINA_FUZZ_JOBS:-1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}

if [ -z "${RETINA_FUZZ_BUILD:-}" ]; then
  LAUNCHER=()
  command -v ccache >/dev/null && LAUNCHER=(-DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
  cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo "${LAUNCHER[@]}" \
    -DCMAKE_C_COMPILER=clang-14 -DCMAKE_CXX_COMPILER=clang++-14 \
    -DRETINA_BUILD_FUZZ=ON -DRETINA_BUILD_TESTS=OFF -DRETINA_BUILD_BENCH=OFF \
    -DRETINA_BUILD_PYTHON=OFF -DRETINA_BUILD_EXAMPLES=OFF
elif ! grep -q '^RETINA_BUILD_FUZZ:BOOL=ON' "$BUILD/CMakeCache.txt" 2>/dev/null; then
  echo "fuzz.sh: $BUILD is not a RETINA_BUILD_FUZZ=ON build" >&2
  exit 2
fi
cmake --build "$BUILD" -j"$(nproc)"

# run_one BIN: fuzzes one target, prints its last lines; the exit status is
# the fuzzer's.
run_one() {
  local bin=$1 name work out rc=0
  [ -f "$bin" ] && [ -x "$bin" ] || return 0
  name=$(basename "$bin")
  work=$BUILD/corpus-work/$name
  mkdir -p "$work"
  local args=("$work")
  [ -d "fuzz/corpus/$name" ] && args+=("fuzz/corpus/$name")
  out=$("$bin" -max_total_time="$SECS" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 "${args[@]}" 2>&1) || rc=$?
  if [ "$rc" -ne 0 ]; then
    printf '== %s (%ss) FAILED, exit %d\n%s\n' "$name" "$SECS" "$rc" "$(tail -n 60 <<<"$out")"
  else
    printf '== %s (%ss)\n%s\n' "$name" "$SECS" "$(tail -n 3 <<<"$out")"
  fi
  return "$rc"
}

export -f run_one
export BUILD SECS
ls "$BUILD"/fuzz/fuzz_* >/dev/null
# xargs exits non-zero when any target did.
if ! printf '%s\n' "$BUILD"/fuzz/fuzz_* | xargs -P "$FUZZ_JOBS" -I{} bash -c 'run_one "$1"' _ {}; then
  echo "fuzz.sh: a target failed (see above)" >&2
  exit 1
fi
