#!/usr/bin/env bash
# Repository index cost as a space grows, in one run:
#  - upload throughput with 10,000 and with 100,000 versions already in the space (the
#    ratio shows whether an upload's cost grows with the repository; it should stay near 1);
#  - index.yaml requests per second from chartyard, and from nginx serving the very same
#    bytes as a static file (the ratio is chartyard / nginx; the goal is >= 0.8);
#  - time to serve the first index.yaml after a restart;
#  - chart searches (GET /api/v1/search) per second and the time of one;
#  - chartyard's peak memory.
# Usage: bench/index.sh [SMALL] [LARGE]   (defaults 10000 100000; needs nginx-light and wrk)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
SMALL=${1:-10000}
LARGE=${2:-100000}
CHARTS=10

source bench/lib.sh
CY_PORT=$(free_port)
NGINX_PORT=$(free_port)
CY="http://127.0.0.1:$CY_PORT"

peak_mib() { awk '/VmHWM/ {printf "%.0f", $2 / 1024}' "/proc/$CY_PID/status"; }
rss_kib() { awk '/VmRSS/ {print $2}' "/proc/$CY_PID/status"; }

start_nginx "$NGINX_PORT"
start_chartyard

# Fill the space to `target` versions, spread over $CHARTS charts, 1.0.N each.
filled=0
fill_to() {
  local target=$1 per=$(( ($1 - filled) / CHARTS ))
  (( per > 0 )) || return 0
  for c in $(seq 0 $((CHARTS - 1))); do
    "$LOADGEN" upload "$CY" bench "chart$c" $((filled / CHARTS)) "$per" 64 >/dev/null
  done
  filled=$target
}
rps() { wrk -t2 -c8 -d5s --timeout 30s "$1" | awk '/Requests\/sec/ {printf "%.0f", $2}'; }

declare -A upload index_cy index_ng first_index index_bytes rss_after search_rps search_time
for size in "$SMALL" "$LARGE"; do
  fill_to "$size"
  # 1000 more uploads at concurrency 200 into a space of this size (new chart, same space)
  upload[$size]=$(field "$("$LOADGEN" upload "$CY" bench "extra$size" 0 1000 200)" per_second)
  filled=$((filled + 1000))
  curl -sf "$CY/bench/index.yaml" -o "$WORK/static/index.yaml"
  index_bytes[$size]=$(stat -c %s "$WORK/static/index.yaml")
  index_cy[$size]=$(rps "$CY/bench/index.yaml")
  index_ng[$size]=$(rps "http://127.0.0.1:$NGINX_PORT/index.yaml")
  search_time[$size]=$(curl -sf -o /dev/null -w '%{time_total}' "$CY/api/v1/search?q=chart1")
  search_rps[$size]=$(rps "$CY/api/v1/search?q=chart1")
  peak=$(peak_mib)
  kill "$CY_PID"; wait "$CY_PID" 2>/dev/null || true
  start_chartyard
  first_index[$size]=$(curl -sf -o /dev/null -w '%{time_total}' "$CY/bench/index.yaml")
  rss_after[$size]=$(rss_kib)
  echo "size $size: upload ${upload[$size]}/s, index ${index_cy[$size]} vs nginx ${index_ng[$size]} req/s, first index after restart ${first_index[$size]} s, peak RSS before restart ${peak} MiB" >&2
done

echo "chartyard $("$BIN" --version | cut -d' ' -f2), $(nproc) cores, $CHARTS charts, fsync on"
echo "| versions in space | uploads/s (1000, 200 concurrent) | index.yaml size | chartyard index req/s | nginx req/s | ratio | first index after restart | searches/s | one search |"
echo "|---|---|---|---|---|---|---|---|---|"
for size in "$SMALL" "$LARGE"; do
  ratio=$(python3 -c "print(f'{${index_cy[$size]} / ${index_ng[$size]}:.2f}')")
  echo "| $size | ${upload[$size]} | $((index_bytes[$size] / 1024)) KiB | ${index_cy[$size]} | ${index_ng[$size]} | $ratio | ${first_index[$size]} s | ${search_rps[$size]} | ${search_time[$size]} s |"
done
python3 -c "print(f'upload ratio {$LARGE} / {$SMALL}: {${upload[$LARGE]} / ${upload[$SMALL]}:.2f}')"
echo "chartyard peak RSS after the last restart and first index: $(peak_mib) MiB"
# What one more indexed version costs: resident memory after a restart and the first
# index, at both sizes (the index loaded, nothing else warmed).
python3 -c "print(f'memory per indexed version: {(${rss_after[$LARGE]} - ${rss_after[$SMALL]}) * 1024 / ($LARGE - $SMALL):.0f} bytes (RSS {${rss_after[$SMALL]} // 1024} MiB at $SMALL, {${rss_after[$LARGE]} // 1024} MiB at $LARGE)')"
