#!/usr/bin/env bash
# make demo: start a local Kafka, run four synthetic cameras through lookout,
# print the captions read back from Kafka for about 30 seconds, stop all.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${DEMO_SECONDS:-30}
mkdir -p .state/demo
scripts/kafka.sh start
bin/lookout run --config configs/demo.yaml --log-format json >.state/demo/lookout.log 2>&1 &
pid=$!
stop() {
  if kill -0 "$pid" 2>/dev/null; then
    kill -INT "$pid"; wait "$pid" || true
  fi
  scripts/kafka.sh stop
}
trap stop EXIT
echo "demo: lookout running (pid $pid, log .state/demo/lookout.log, metrics http://127.0.0.1:9464/metrics)"
# lookout creates the topic with its first record; wait for it (not a fixed sleep).
for _ in $(seq 1 120); do
  kcat -b 127.0.0.1:9092 -L -t lookout.demo -m 2 2>/dev/null | grep -q 'partition 0' && break
  kill -0 "$pid" 2>/dev/null || { echo "demo: lookout exited; see .state/demo/lookout.log" >&2; tail -5 .state/demo/lookout.log >&2; exit 1; }
  sleep 0.5
done
echo "demo: captions from Kafka topic lookout.demo for ${secs}s:"
bin/lookout tail --brokers 127.0.0.1:9092 --topic lookout.demo --timeout "${secs}s" || true
