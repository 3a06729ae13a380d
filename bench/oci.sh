#!/usr/bin/env bash
# OCI blob push and pull throughput, chartyard side by side with Debian's docker-registry
# (distribution 2.8) on the same machine, in one run: 4 KiB and 1 MiB blobs, at
# concurrency 1 and 8. Both store on the local filesystem.
# Usage: bench/oci.sh [COUNT_SMALL] [COUNT_LARGE]   (defaults 2000 and 200; needs docker-registry)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
SMALL=${1:-2000}
LARGE=${2:-200}

source bench/lib.sh
CY_PORT=$(free_port)
REG_PORT=$(free_port)

CHARTYARD_LOG=warn "$BIN" serve --listen "127.0.0.1:$CY_PORT" --root-directory "$WORK/chartyard" \
  --max-upload-size 104857600 2>"$WORK/chartyard.log" &
PIDS+=($!)
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
PIDS+=($!)
wait_for "http://127.0.0.1:$CY_PORT/v2/"
wait_for "http://127.0.0.1:$REG_PORT/v2/"

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
