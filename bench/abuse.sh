#!/usr/bin/env bash
# Hostile clients against the release server, on loopback, each load against a fresh
# server so that its peak RSS (VmHWM) is that load's:
#   (a) 100 connections that each send 19 MiB of a 20 MiB upload, then stall;
#   (b) 1,100 slowloris connections (a header line every 5 s, reopened when closed)
#       against a server limited to 1,024 open files.
# /health is checked while each load is on. Everything stops by itself (about 3 minutes).
# Usage: bench/abuse.sh            (CHARTYARD_BIN=path uses that binary instead of building)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if [[ -n ${CHARTYARD_BIN:-} ]]; then
  BIN=$CHARTYARD_BIN
else
  cargo build --release --quiet --bin chartyard
  BIN=target/release/chartyard
fi
WORK=$(mktemp -d)
SERVER=
cleanup() {
  [[ -n $SERVER ]] && kill "$SERVER" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_for() { for _ in $(seq 100); do curl -sf "$1" >/dev/null && return; sleep 0.05; done; }

# Starts a server with the given open files limit and flags; sets PORT and SERVER.
start() {
  local files=$1
  shift
  PORT=$(free_port)
  rm -rf "$WORK/data"
  (ulimit -n "$files" && exec env CHARTYARD_LOG=warn "$BIN" serve --listen "127.0.0.1:$PORT" \
    --root-directory "$WORK/data" "$@" 2>>"$WORK/server.log") &
  SERVER=$!
  wait_for "http://127.0.0.1:$PORT/health"
}

stop() {
  kill "$SERVER"
  wait "$SERVER" 2>/dev/null || true
  SERVER=
}

# The load generator itself holds over 1,100 sockets.
ulimit -n 4096 2>/dev/null || echo "warning: cannot raise the open files limit to 4096; the slowloris load may fall short"

echo "# (a) stalled uploads, default limits"
start 1024
echo "idle server: $(grep VmHWM "/proc/$SERVER/status")"
python3 bench/abuse.py bodies "$PORT" "$SERVER" 100 $((20 << 20)) $((19 << 20)) 90
stop

echo "# (b) slowloris, 1,024 open files"
start 1024
python3 bench/abuse.py slowloris "$PORT" "$SERVER" 1100 60 5
stop

echo "# server warnings and errors"
sed -E 's/^[^ ]+ +//; s/[0-9]+/N/g' "$WORK/server.log" | cut -c1-160 | sort | uniq -c | sort -rn | head -8
