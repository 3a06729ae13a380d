#!/usr/bin/env bash
# OCI blob push and pull throughput, chartyard side by side with Debian's docker-registry
# (distribution 2.8) on the same machine, in one run: 4 KiB and 1 MiB blobs, at
# concurrency 1 and 8. Both store on the local filesystem.
# Usage: bench/oci.sh [COUNT_SMALL] [COUNT_LARGE]   (defaults 2000 and 200; needs docker-registry)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
SMALL=${1:-2000}
LARGE=${2:-200}

cargo build --release --quiet --bin chartyard --example loadgen
BIN=target/release/chartyard
LOADGEN=target/release/examples/loadgen
WORK=$(mktemp -d)
cleanup() {
  [[ -n ${CY_PID:-} ]] && kill "$CY_PID" 2>/dev/null || true
  [[ -n ${REG_PID:-} ]] && kill "$REG_PID" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
CY_PORT=$(free_port)
REG_PORT=$(free_port)

CHARTYARD_LOG=warn "$BIN" serve --listen "127.0.0.1:$CY_PORT" --root-directory "$WORK/chartyard" \
  --max-upload-size 104857600 2>"$WORK/chartyard.log" &
CY_PID=$!
cat >"$WORK/registry.yml" <<CONF
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $WORK/registry
http:
  addr: 127.0.0.1:$REG_PORT
CONF
docker-registry serve "$WORK/registry.yml" 2>"$WORK/registry.log" &
REG_PID=$!
for url in "http://127.0.0.1:$CY_PORT/v2/" "http://127.0.0.1:$REG_PORT/v2/"; do
  for _ in $(seq 100); do curl -sf "$url" >/dev/null && break; sleep 0.05; done
done

field() { python3 -c "import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])" "$1" "$2"; }
echo "| blob | concurrency | operation | chartyard ops/s | distribution ops/s | ratio |"
echo "|---|---|---|---|---|---|"
for spec in "4096 $SMALL" "1048576 $LARGE"; do
  read -r size count <<<"$spec"
  for concurrency in 1 8; do
    repo="bench/s${size}c${concurrency}"
    for op in push pull; do
      cy=$("$LOADGEN" "oci-$op" "http://127.0.0.1:$CY_PORT" "$repo" "$size" "$count" "$concurrency")
      reg=$("$LOADGEN" "oci-$op" "http://127.0.0.1:$REG_PORT" "$repo" "$size" "$count" "$concurrency")
      for result in "$cy" "$reg"; do
        [[ $(field "$result" errors) == 0 ]] || { echo "failed requests: $result" >&2; exit 1; }
      done
      a=$(field "$cy" per_second)
      b=$(field "$reg" per_second)
      label=$([[ $size == 4096 ]] && echo "4 KiB" || echo "1 MiB")
      echo "| $label | $concurrency | $op | $a | $b | $(python3 -c "print(f'{$a / $b:.2f}')") |"
    done
  done
done
