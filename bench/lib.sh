# Shared by the bench scripts: build, a scratch folder cleaned on exit, free ports, nginx.
# Sourced; the caller has `set -euo pipefail` and is in the repository root.

cargo build --release --quiet --bin chartyard --example loadgen
BIN=target/release/chartyard
LOADGEN=target/release/examples/loadgen
WORK=$(mktemp -d)
chmod 755 "$WORK" # nginx workers read its static folder
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  [[ -f $WORK/nginx.pid ]] && kill "$(cat "$WORK/nginx.pid")" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# Waits until a URL answers.
wait_for() { for _ in $(seq 100); do curl -sf "$1" >/dev/null && return; sleep 0.05; done; }

# Serves $WORK/static with nginx on port $1, one worker per core, sendfile on.
start_nginx() {
  mkdir -p "$WORK/static" "$WORK/tmp"
  cat >"$WORK/nginx.conf" <<CONF
user root;
worker_processes $(nproc);
pid $WORK/nginx.pid;
error_log $WORK/nginx-error.log;
events { worker_connections 4096; }
http {
  access_log off;
  sendfile on;
  client_body_temp_path $WORK/tmp; proxy_temp_path $WORK/tmp; fastcgi_temp_path $WORK/tmp;
  uwsgi_temp_path $WORK/tmp; scgi_temp_path $WORK/tmp;
  server { listen 127.0.0.1:$1; root $WORK/static; }
}
CONF
  nginx -c "$WORK/nginx.conf"
}

field() { python3 -c "import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])" "$1" "$2"; }

# Starts chartyard on $CY_PORT over $WORK/data (set CY_PORT and CY first), logging warnings
# only; sets CY_PID and waits until it answers.
start_chartyard() {
  CHARTYARD_LOG=warn "$BIN" serve --listen "127.0.0.1:$CY_PORT" --root-directory "$WORK/data" 2>>"$WORK/chartyard.log" &
  CY_PID=$!
  PIDS+=("$CY_PID")
  wait_for "$CY/health"
}
