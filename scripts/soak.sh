#!/usr/bin/env bash
# Soak: eight synthetic 720p cameras through `lookout run` for DURATION
# (default 30m), sampling resident memory and goroutines from /metrics every
# INTERVAL (default 60s). Writes .state/soak/report.md and fails when memory
# or goroutines grow: RSS slope over MAX_RSS_SLOPE_MB_PER_MIN (default 2) in
# the second half of the run, or more goroutines at the end than at the first
# sample plus MAX_GOROUTINE_GROWTH (default 10).
#   scripts/soak.sh 30m 60s      # make soak
#   scripts/soak.sh 2m 10s       # the CI version (make test)
set -euo pipefail
cd "$(dirname "$0")/.."
dur=${1:-30m}
interval=${2:-60s}
max_slope=${MAX_RSS_SLOPE_MB_PER_MIN:-1}
max_growth=${MAX_RSS_GROWTH_MB:-64}
max_gr=${MAX_GOROUTINE_GROWTH:-10}
port=${SOAK_HTTP_PORT:-19464}
out=.state/soak
rm -rf "$out"; mkdir -p "$out"

secs() { local v=$1; case $v in *m) echo $(( ${v%m} * 60 ));; *s) echo "${v%s}";; *) echo "$v";; esac; }
total=$(secs "$dur"); step=$(secs "$interval")

{
  echo "data_dir: data"   # paths in a config are relative to its folder, $out
  echo "log: {level: warn, format: json}"
  echo "http: {listen: 127.0.0.1:$port}"
  echo "pipeline: {max_batch: 8, max_wait: 100ms}"
  echo "sources:"
  for i in 1 2 3 4; do
    echo "  - {id: road-$i, uri: 'synth://driving?seed=$((100 + i))&fps=15&size=1280x720', every: 1s}"
    echo "  - {id: lot-$i, uri: 'synth://surveillance?seed=$((200 + i))&fps=15&size=1280x720', every: 1s}"
  done
  echo "sinks: {jsonl: {path: records.jsonl}}"
} >"$out/soak.yaml"

bin/lookout run --config "$out/soak.yaml" 2>"$out/lookout.log" &
pid=$!
trap 'kill -INT $pid 2>/dev/null || true' EXIT
metric() { awk -v m="$1" '$1 == m { print $2 }' <<<"$body"; }
for _ in $(seq 1 100); do curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break; sleep 0.2; done

echo "minute,rss_mb,goroutines,records" >"$out/samples.csv"
start=$(date +%s)
while :; do
  kill -0 "$pid" 2>/dev/null || { echo "soak: lookout exited early; see $out/lookout.log" >&2; exit 1; }
  now=$(date +%s); t=$(( now - start ))
  body=$(curl -fsS "http://127.0.0.1:$port/metrics")
  rss=$(metric process_resident_memory_bytes); gr=$(metric go_goroutines)
  recs=$(wc -l <"$out/records.jsonl" 2>/dev/null || echo 0)
  awk -v t="$t" -v r="$rss" -v g="$gr" -v n="$recs" 'BEGIN { printf "%.2f,%.1f,%d,%d\n", t / 60, r / 1048576, g, n }' >>"$out/samples.csv"
  [ "$t" -ge "$total" ] && break
  sleep "$step"
done
kill -INT "$pid"; wait "$pid"; rc=$?; trap - EXIT

# Least-squares slope of RSS over the second half (the first half is warm-up).
read -r slope gr0 gr1 recs peak1 peak2 < <(awk -F, 'NR > 1 { n++; t[n] = $1; r[n] = $2; g[n] = $3; c = $4 }
  END { h = int(n / 2) + 1; for (i = h; i <= n; i++) { k++; sx += t[i]; sy += r[i]; sxx += t[i] * t[i]; sxy += t[i] * r[i] }
        for (i = 1; i <= n; i++) { if (i < h && r[i] > p1) p1 = r[i]; if (i >= h && r[i] > p2) p2 = r[i] }
        s = (k > 1 && k * sxx - sx * sx != 0) ? (k * sxy - sx * sy) / (k * sxx - sx * sx) : 0
        printf "%.3f %d %d %d %.1f %.1f\n", s, g[1], g[n], c, p1, p2 }' "$out/samples.csv")
{
  echo "# Soak report: 8 synthetic 1280x720 sources, $dur, sampled every $interval"
  echo
  echo "| figure | value |"; echo "|---|---|"
  echo "| records written | $recs |"
  echo "| RSS slope, second half (MB/min) | $slope |"
  echo "| peak RSS first half / second half (MB) | $peak1 / $peak2 |"
  echo "| goroutines first / last sample | $gr0 / $gr1 |"
  echo "| exit status after SIGINT | $rc |"
  echo; echo '```'; cat "$out/samples.csv"; echo '```'
} >"$out/report.md"
cat "$out/report.md"
awk -v a="$peak1" -v b="$peak2" -v m="$max_growth" 'BEGIN { exit !(b - a <= m) }' ||
  { echo "soak: peak RSS grew from $peak1 MB to $peak2 MB (max growth $max_growth MB)" >&2; exit 1; }
if [ "$total" -ge 600 ]; then
  awk -v s="$slope" -v m="$max_slope" 'BEGIN { exit !(s <= m) }' || { echo "soak: RSS grows $slope MB/min (max $max_slope)" >&2; exit 1; }
fi
[ "$gr1" -le $(( gr0 + max_gr )) ] || { echo "soak: goroutines grew from $gr0 to $gr1" >&2; exit 1; }
[ "$rc" -eq 0 ] || { echo "soak: lookout exited with $rc" >&2; exit 1; }
echo "soak: passed"
