#!/usr/bin/env bash
# scripts/test-go.sh: every Go test, in two concurrent `go test` processes so that
# the fleet's end-to-end tests (mostly waiting for failovers and rebalances, a few
# percent of a core) overlap with the rest instead of adding their ~6 minutes:
#   1. go test ./... without the fleet e2e tests (brokers on the default test ports)
#   2. go test ./e2e -run TestE2EFleet on a broker of its own (port 19692)
# Both logs are printed; the exit status is non-zero when either failed.
set -uo pipefail
cd "$(dirname "$0")/.."
STATE=${LOOKOUT_STATE:-$PWD/.state}
mkdir -p "$STATE"
fleet_log=$STATE/test-go-fleet.log
start=$SECONDS

LOOKOUT_E2E_KAFKA_PORT=${LOOKOUT_FLEET_KAFKA_PORT:-19692} LOOKOUT_E2E_RTSP_PORT=${LOOKOUT_FLEET_RTSP_PORT:-18654} \
	go test -count=1 -timeout 30m -run 'TestE2EFleet' ./e2e/ >"$fleet_log" 2>&1 &
fleet=$!

go test -count=1 -timeout 30m -skip 'TestE2EFleet' ./...
rc=$?
echo "test-go: go test ./... (without the fleet e2e tests) finished in $((SECONDS - start)) s, exit $rc"

wait "$fleet"
frc=$?
echo "test-go: fleet e2e tests (go test -run TestE2EFleet ./e2e/) finished in $((SECONDS - start)) s, exit $frc:"
cat "$fleet_log"
((rc == 0 && frc == 0))
