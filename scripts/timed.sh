#!/usr/bin/env bash
# timed.sh NAME CMD...: runs CMD and prints its wall time and CPU time
# (user+sys, its children included), so stage times from a loaded machine
# can still be compared. The exit status is CMD's.
set -uo pipefail
name=$1
shift
tf=$(mktemp)
echo "== stage $name: started $(date -u +%H:%M:%S)"
/usr/bin/time -f "%e %U %S" -o "$tf" "$@"
rc=$?
tail -n 1 "$tf" | awk -v n="$name" -v rc="$rc" \
  '{ printf "== stage %s: %.0f s wall, %.0f s CPU, exit %d\n", n, $1, $2 + $3, rc }'
rm -f "$tf"
exit "$rc"
