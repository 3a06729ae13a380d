#!/usr/bin/env bash
# Throughput of small charts through the /api/v1 API, in one run:
#  - 1000 uploads of distinct versions, 200 at a time, into an empty space, and again into
#    a space that already holds PRELOAD versions (the ratio shows whether upload cost grows
#    with the repository; it should stay near 1.0);
#  - downloads of those archives from chartyard, side by side with nginx serving the very
#    same bytes as static files (the ratio is chartyard / nginx);
#  - chartyard's peak memory.
# Usage: bench/api-v1.sh [PRELOAD]   (default 10000; needs nginx: apt-get install nginx-light)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PRELOAD=${1:-10000}

source bench/lib.sh
mkdir -p "$WORK/static" "$WORK/data"
CY_PORT=$(free_port)
NGINX_PORT=$(free_port)
CHARTYARD_LOG=warn "$BIN" serve --listen "127.0.0.1:$CY_PORT" --root-directory "$WORK/data" 2>"$WORK/chartyard.log" &
CY_PID=$!
PIDS+=("$CY_PID")
start_nginx "$NGINX_PORT"
wait_for "http://127.0.0.1:$CY_PORT/health"

CY="http://127.0.0.1:$CY_PORT"

# Warm up past one-time costs (threads, the 256 blob folders) so both sizes are measured
# in steady state.
"$LOADGEN" upload "$CY" warmup app 0 4000 200 >/dev/null
curl -sf -X POST "$CY/api/v1/spaces?space=bench" >/dev/null
empty=$("$LOADGEN" upload "$CY" bench app 0 1000 200 "$WORK/static")
cy_dl=$("$LOADGEN" download "$CY/api/v1/spaces/bench/charts/{c}/versions/{v}" "" 0 1000 64 20 app)
ng_dl=$("$LOADGEN" download "http://127.0.0.1:$NGINX_PORT/{c}-{v}" ".tgz" 0 1000 64 20 app)
preload=$("$LOADGEN" upload "$CY" bench app 2000 "$PRELOAD" 32)
full=$("$LOADGEN" upload "$CY" bench app 1000 1000 200)
peak_kib=$(awk '/VmHWM/ {print $2}' "/proc/$CY_PID/status")

echo "chartyard $("$BIN" --version | cut -d' ' -f2), $(nproc) cores, fsync on, archive $(stat -c %s "$WORK/static/app-1.0.0.tgz") bytes"
echo "raw results:"
for r in "$empty" "$cy_dl" "$ng_dl" "$preload" "$full"; do echo "  $r"; done
python3 - "$empty" "$full" "$cy_dl" "$ng_dl" "$preload" "$PRELOAD" "$peak_kib" <<'PY'
import json, sys
empty, full, cy, ng, pre = (json.loads(a) for a in sys.argv[1:6])
preload, peak = int(sys.argv[6]), int(sys.argv[7])
errors = sum(r["errors"] for r in (empty, full, cy, ng, pre))
print(f"| measurement | result |\n|---|---|")
print(f"| 1000 uploads (200 concurrent), empty space | {empty['per_second']:.0f}/s (p50 {empty['p50_ms']:.1f} ms, p99 {empty['p99_ms']:.1f} ms) |")
print(f"| 1000 uploads (200 concurrent), space with {preload + 1000} versions | {full['per_second']:.0f}/s (p50 {full['p50_ms']:.1f} ms, p99 {full['p99_ms']:.1f} ms) |")
print(f"| upload ratio full / empty | {full['per_second']/empty['per_second']:.2f} |")
print(f"| preload of {preload} uploads at concurrency 32 | {pre['per_second']:.0f}/s |")
print(f"| downloads, chartyard /api/v1 (64 concurrent) | {cy['per_second']:.0f}/s, {cy['mib_per_second']:.1f} MiB/s (p99 {cy['p99_ms']:.1f} ms) |")
print(f"| downloads, nginx static (64 concurrent) | {ng['per_second']:.0f}/s, {ng['mib_per_second']:.1f} MiB/s (p99 {ng['p99_ms']:.1f} ms) |")
print(f"| download ratio chartyard / nginx | {cy['per_second']/ng['per_second']:.2f} |")
print(f"| chartyard peak RSS | {peak/1024:.0f} MiB |")
print(f"| failed requests | {errors} |")
PY
