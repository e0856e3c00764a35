#!/usr/bin/env bash
# Builds the libFuzzer targets with clang-14 (ASan+UBSan) and runs each for
# N seconds (default 15) over its corpus. Any crash fails.
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-15}
LAUNCHER=()
command -v ccache >/dev/null && LAUNCHER=(-DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo "${LAUNCHER[@]}" \
  -DCMAKE_C_COMPILER=clang-14 -DCMAKE_CXX_COMPILER=clang++-14 \
  -DRETINA_BUILD_FUZZ=ON -DRETINA_BUILD_TESTS=OFF -DRETINA_BUILD_BENCH=OFF \
  -DRETINA_BUILD_PYTHON=OFF -DRETINA_BUILD_EXAMPLES=OFF
cmake --build build-fuzz -j"$(nproc)"
for bin in build-fuzz/fuzz/fuzz_*; do
  [ -x "$bin" ] || continue
  name=$(basename "$bin")
  corpus=fuzz/corpus/$name
  work=build-fuzz/corpus-work/$name
  mkdir -p "$work"
  echo "== $name (${SECS}s)"
  args=("$work")
  [ -d "$corpus" ] && args+=("$corpus")
  "$bin" -max_total_time="$SECS" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 "${args[@]}" 2>&1 | tail -n 3
done
