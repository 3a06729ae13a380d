#!/usr/bin/env bash
# Web UI page cost at scale, in one run: a space of CHARTS charts x VERSIONS versions each
# (100,000 by default) plus a large real chart (kube-prometheus-stack), then for each page:
#  - the server time of one request (median of 30 sequential requests on loopback, from
#    curl's time_total, so an upper bound that includes the transfer);
#  - requests per second at 8 connections, and nginx serving the very same bytes as a
#    static file (the ratio is chartyard / nginx: rendering live against a copy made
#    before the run);
#  - the first request for a chart page after a restart (its archive read and unpacked).
# Usage: bench/ui.sh [CHARTS] [VERSIONS]   (defaults 1000 100; needs nginx-light and wrk)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
CHARTS=${1:-1000}
VERSIONS=${2:-100}
REAL=kube-prometheus-stack-88.5.3

source bench/lib.sh
CY_PORT=$(free_port)
NGINX_PORT=$(free_port)
CY="http://127.0.0.1:$CY_PORT"

start_nginx "$NGINX_PORT"
start_chartyard
started=$(date +%s)
for c in $(seq 0 $((CHARTS - 1))); do
  "$LOADGEN" upload "$CY" bench "chart$c" 0 "$VERSIONS" 64 >/dev/null
done
curl -sf -F "chartfile=@../shared/charts/real/$REAL.tgz" "$CY/api/v1/spaces/bench/charts" >/dev/null
total=$((CHARTS * VERSIONS + 1))
echo "filled $total versions in $(($(date +%s) - started)) s" >&2

median_ms() {
  for _ in $(seq 30); do curl -sf -o /dev/null -w '%{time_total}\n' "$1"; done |
    sort -n | awk '{a[NR] = $1} END {printf "%.1f", a[int((NR + 1) / 2)] * 1000}'
}
rps() { wrk -t2 -c8 -d5s --timeout 30s "$1" | awk '/Requests\/sec/ {printf "%.0f", $2}'; }

mid=$((CHARTS / 2))
real_name=${REAL%-*}
real_version=${REAL##*-}
pages=(
  "spaces|/_/ui/"
  "space ($CHARTS charts)|/_/ui/bench"
  "space, filtered|/_/ui/bench?q=chart$mid"
  "chart, latest|/_/ui/bench/chart$mid"
  "chart, one version|/_/ui/bench/chart$mid/1.0.$((VERSIONS / 2))"
  "chart, older versions|/_/ui/bench/chart$mid?versions=50"
  "$real_name (large README)|/_/ui/bench/$real_name/$real_version"
  "template|/_/ui/bench/$real_name/$real_version/templates/prometheus/prometheus.yaml"
  "search|/_/ui/-/search?q=chart$mid"
)

# The first chart page after a restart reads and unpacks the archive.
kill "$CY_PID"; wait "$CY_PID" 2>/dev/null || true
start_chartyard
curl -sf -o /dev/null "$CY/bench/index.yaml" # the index loaded, as any request would
first_real=$(curl -sf -o /dev/null -w '%{time_total}' "$CY/_/ui/bench/$real_name/$real_version")
first_small=$(curl -sf -o /dev/null -w '%{time_total}' "$CY/_/ui/bench/chart$mid")

echo "chartyard $("$BIN" --version | cut -d' ' -f2), $(nproc) cores, $total versions in the space ($CHARTS charts x $VERSIONS + $REAL)"
echo "| page | bytes | one request (median of 30) | chartyard req/s | nginx req/s (same bytes) | ratio |"
echo "|---|---|---|---|---|---|"
i=0
for page in "${pages[@]}"; do
  label=${page%%|*}
  path=${page#*|}
  curl -sf "$CY$path" -o "$WORK/static/page$i.html"
  bytes=$(stat -c %s "$WORK/static/page$i.html")
  ms=$(median_ms "$CY$path")
  cy=$(rps "$CY$path")
  ng=$(rps "http://127.0.0.1:$NGINX_PORT/page$i.html")
  ratio=$(python3 -c "print(f'{$cy / $ng:.2f}')")
  echo "| $label | $((bytes / 1024)) KiB | $ms ms | $cy | $ng | $ratio |"
  i=$((i + 1))
done
echo "first chart page after a restart: $real_name $(python3 -c "print(f'{$first_real * 1000:.1f}')") ms, chart$mid $(python3 -c "print(f'{$first_small * 1000:.1f}')") ms"
