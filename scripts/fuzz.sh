#!/usr/bin/env bash
# Runs every Go fuzz target for a short time (default 10s each): the seed
# corpora run in `go test` anyway; this explores beyond them.
set -euo pipefail
cd "$(dirname "$0")/.."
fuzztime=${1:-10s}
n=0
for pkg in $(go list ./...); do
  for target in $(go test -list '^Fuzz' "$pkg" 2>/dev/null | grep '^Fuzz' || true); do
    echo "fuzz: $pkg $target ($fuzztime)"
    go test -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" "$pkg" >/tmp/lookout-fuzz.log 2>&1 || { cat /tmp/lookout-fuzz.log; exit 1; }
    n=$((n + 1))
  done
done
echo "fuzz: $n targets passed"
