#!/usr/bin/env bash
# Replicas of chartyard over one S3 bucket, in one run. The bucket is moto's; each replica
# talks to it through its own bench/s3proxy.py, which counts the S3 requests by kind and can
# add a delay to each (as a distant bucket would). Measured:
#  - S3 requests per /api/v1 upload into a space whose index is loaded, by kind;
#  - S3 requests per index.yaml GET while the index is fresh (the first GET after 1 s idle,
#    then repeats within ~100 ms), and per replica per second while idle for 5 s with one
#    space in use;
#  - upload throughput at concurrency 32 with 1 replica and with 3 (round robin), with 0
#    and DELAY_MS added to each S3 request;
#  - propagation: an upload on replica A until replica B's index.yaml lists it (p50/p99);
#  - downloads per second from one replica, and S3 requests per download.
# Usage: bench/replicas.sh [UPLOADS] [SAMPLES] [DELAY_MS]   (defaults 200 200 20; needs moto
# in .tools/venv: scripts/install-test-tools.sh). CHARTYARD_BIN and LOADGEN_BIN use those
# binaries instead of building.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
UPLOADS=${1:-200}
SAMPLES=${2:-200}
DELAY_MS=${3:-20}
CONCURRENCY=32
REPLICAS=3
BUCKET=charts
SPACE=bench

if [[ -n ${CHARTYARD_BIN:-} && -n ${LOADGEN_BIN:-} ]]; then
  BIN=$CHARTYARD_BIN
  LOADGEN=$LOADGEN_BIN
  WORK=$(mktemp -d)
  PIDS=()
  cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    rm -rf "$WORK"
  }
  trap cleanup EXIT
  free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
  wait_for() { for _ in $(seq 100); do curl -sf "$1" >/dev/null && return; sleep 0.05; done; }
  field() { python3 -c "import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])" "$1" "$2"; }
else
  source bench/lib.sh
fi
MOTO_BIN=.tools/venv/bin/moto_server
[[ -x $MOTO_BIN ]] || { echo "moto_server not found at $MOTO_BIN (scripts/install-test-tools.sh)" >&2; exit 1; }

# moto, and the bucket (moto takes an unsigned PUT).
MOTO_PORT=$(free_port)
"$MOTO_BIN" -H 127.0.0.1 -p "$MOTO_PORT" >"$WORK/moto.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 200); do curl -sf "http://127.0.0.1:$MOTO_PORT/" >/dev/null && break; sleep 0.1; done
curl -sf -X PUT "http://127.0.0.1:$MOTO_PORT/$BUCKET" >/dev/null

# One proxy and one replica per index r; CY[r] is the replica's base URL, PROXY[r] its proxy's.
CY=()
PROXY=()
for r in $(seq 0 $((REPLICAS - 1))); do
  port=$(free_port)
  python3 bench/s3proxy.py --listen "$port" --upstream "127.0.0.1:$MOTO_PORT" 2>>"$WORK/proxy$r.log" &
  PIDS+=($!)
  PROXY[r]="http://127.0.0.1:$port"
  wait_for "${PROXY[r]}/_proxy/counts"
done
for r in $(seq 0 $((REPLICAS - 1))); do
  port=$(free_port)
  CHARTYARD_LOG=warn AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench "$BIN" serve --listen "127.0.0.1:$port" \
    --storage-driver s3 --s3-bucket "$BUCKET" --s3-endpoint "${PROXY[r]}" --s3-region us-east-1 \
    2>>"$WORK/chartyard$r.log" &
  PIDS+=($!)
  CY[r]="http://127.0.0.1:$port"
  wait_for "${CY[r]}/health"
  curl -sf "${CY[r]}/health" >/dev/null || { echo "replica $r did not start:" >&2; cat "$WORK/chartyard$r.log" >&2; exit 1; }
done

# Counts of proxies (all, or the indexes given) as one JSON object of sums.
counts() {
  local r urls=() ids=("$@")
  ((${#ids[@]})) || ids=($(seq 0 $((REPLICAS - 1))))
  for r in "${ids[@]}"; do urls+=("${PROXY[r]}/_proxy/counts"); done
  python3 - "${urls[@]}" <<'PY'
import json, sys, urllib.request
total = {}
for url in sys.argv[1:]:
    for k, v in json.load(urllib.request.urlopen(url)).items():
        if k != "delay_ms":
            total[k] = total.get(k, 0) + v
print(json.dumps(total))
PY
}
# A field that may be null (no sample propagated): "n/a" then.
maybe() { python3 -c "import json,sys; v=json.loads(sys.argv[1])[sys.argv[2]]; print('n/a' if v is None else v)" "$1" "$2"; }
set_delay() { for r in $(seq 0 $((REPLICAS - 1))); do curl -sf -X PUT "${PROXY[r]}/_proxy/delay?ms=$1" >/dev/null; done; }
# "GET 2.00, PUT 4.00, ..., total 9.00": (after - before) / n, kinds that occurred.
per() {
  python3 - "$1" "$2" "$3" <<'PY'
import json, sys
before, after, n = json.loads(sys.argv[1]), json.loads(sys.argv[2]), float(sys.argv[3])
kinds = ("GET", "HEAD", "PUT", "POST", "DELETE", "LIST", "OTHER", "total")
print(", ".join(f"{k} {(after[k] - before[k]) / n:.2f}" for k in kinds if after[k] != before[k] or k == "total"))
PY
}

# The space, some versions in it, and its index loaded on every replica.
curl -sf -X POST "${CY[0]}/api/v1/spaces?space=$SPACE" >/dev/null
"$LOADGEN" upload "${CY[0]}" "$SPACE" warmup 0 50 8 >/dev/null
for r in $(seq 0 $((REPLICAS - 1))); do curl -sf "${CY[r]}/$SPACE/index.yaml" -o /dev/null; done

ROWS=()
row() { ROWS+=("| $1 | $2 |"); echo "| $1 | $2 |" >&2; }

# Upload throughput: 1 replica and REPLICAS replicas, 0 ms and DELAY_MS per S3 request.
# The first run (1 replica, 0 ms) also gives the S3 requests per upload.
per_upload=
for delay in 0 "$DELAY_MS"; do
  set_delay "$delay"
  for n in 1 "$REPLICAS"; do
    bases=$(IFS=,; echo "${CY[*]:0:n}")
    before=$(counts)
    before_a=$(counts 0)
    result=$("$LOADGEN" upload "$bases" "$SPACE" "app-$n-$delay" 0 "$UPLOADS" "$CONCURRENCY")
    after=$(counts)
    after_a=$(counts 0)
    echo "  upload, $n replica(s), $delay ms: $result" >&2
    [[ -z $per_upload ]] && per_upload=$(per "$before_a" "$after_a" "$UPLOADS")
    errors=$(field "$result" errors)
    row "uploads/s, $n replica(s), ${delay} ms per S3 request ($UPLOADS, $CONCURRENCY concurrent)" \
      "$(printf '%.0f' "$(field "$result" per_second)")/s (p50 $(field "$result" p50_ms) ms, p99 $(field "$result" p99_ms) ms, $errors failed; S3 per upload: $(per "$before" "$after" "$UPLOADS"))"
  done
done
set_delay 0
row "S3 requests per upload, by the replica uploading (1 replica, index loaded)" "$per_upload"

# index.yaml while fresh: the first GET after 1 s without requests, then 9 more at once.
sleep 1
before=$(counts 0)
curl -sf "${CY[0]}/$SPACE/index.yaml" -o /dev/null
middle=$(counts 0)
took=$(curl -sf -w '%{time_total}\n' $(for _ in $(seq 9); do echo "-o /dev/null ${CY[0]}/$SPACE/index.yaml"; done) |
  awk '{s += $1} END {printf "%.1f", s * 1000}')
after=$(counts 0)
row "S3 requests for the first index.yaml GET after 1 s idle" "$(per "$before" "$middle" 1)"
row "S3 requests per index.yaml GET, 9 more within ${took} ms" "$(per "$middle" "$after" 9)"

# Idle: every replica has the space's index loaded; 5 s without client requests.
for r in $(seq 0 $((REPLICAS - 1))); do curl -sf "${CY[r]}/$SPACE/index.yaml" -o /dev/null; done
idle_before=()
for r in $(seq 0 $((REPLICAS - 1))); do idle_before[r]=$(counts "$r"); done
sleep 5
idle=
for r in $(seq 0 $((REPLICAS - 1))); do idle+="${idle:+; }replica $r: $(per "${idle_before[r]}" "$(counts "$r")" 5)"; done
row "S3 requests per second per idle replica (5 s, 1 space loaded)" "$idle"

# Propagation from replica 0 to replica 1.
result=$("$LOADGEN" propagation "${CY[0]}" "${CY[1]}" "$SPACE" "$SAMPLES" 2000)
echo "  propagation: $result" >&2
row "propagation A -> B (index.yaml polled every 10 ms, $SAMPLES samples)" \
  "p50 $(maybe "$result" p50_ms) ms, p99 $(maybe "$result" p99_ms) ms, max $(maybe "$result" max_ms) ms; $(field "$result" propagated) propagated, $(field "$result" timeouts) timed out after 2000 ms, $(field "$result" errors) failed uploads"

# Downloads from replica 0 of the versions of the first throughput run, twice each.
before=$(counts 0)
result=$("$LOADGEN" download "${CY[0]}/api/v1/spaces/$SPACE/charts/{c}/versions/{v}" "" 0 "$UPLOADS" "$CONCURRENCY" 2 app-1-0)
after=$(counts 0)
echo "  download: $result" >&2
row "downloads/s, 1 replica, 0 ms ($((UPLOADS * 2)), $CONCURRENCY concurrent)" \
  "$(printf '%.0f' "$(field "$result" per_second)")/s (p50 $(field "$result" p50_ms) ms, p99 $(field "$result" p99_ms) ms, $(field "$result" errors) failed; S3 per download: $(per "$before" "$after" $((UPLOADS * 2))))"

dropped=$(cat "$WORK"/proxy*.log | grep -c 'connection dropped' || true)
echo "chartyard $("$BIN" --version | cut -d' ' -f2), $(nproc) cores, $REPLICAS replicas on one moto bucket, each through its own counting proxy ($dropped connections dropped by the proxies)"
echo "| measurement | result |"
echo "|---|---|"
printf '%s\n' "${ROWS[@]}"
