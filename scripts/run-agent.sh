#!/usr/bin/env bash
# Installs the dependencies, builds the agent, and runs it in the foreground.
# Without arguments the agent uses defaults that work on a plain Linux host:
# metrics on http://localhost:10093/metrics, health on /healthz.
#
#   ./scripts/run-agent.sh                            # defaults
#   ./scripts/run-agent.sh --config my.yaml           # Retina's config.yaml keys
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DPython3_EXECUTABLE=/usr/bin/python3 >/dev/null
cmake --build build --target retina-agent -j"$(nproc)"
exec ./build/tools/retina-agent/retina-agent "$@"
