#!/usr/bin/env bash
# The cost of access control on downloads, in one run: 1000 archives downloaded 60 times
# each (64 at a time) from one chartyard with access control on:
#  - anonymously (an anonymous read rule),
#  - with a password (Basic; bcrypt cost 10, about 100 ms per check, remembered briefly),
#  - with an API token (Bearer; one store read, remembered for a few seconds),
# and, side by side, from ChartMuseum with and without its single Basic user.
# The ratios authenticated / anonymous are what access control costs.
# Usage: bench/auth.sh   (ChartMuseum from ../shared/peers/chartmuseum.xz, skipped if absent)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

source bench/lib.sh
mkdir -p "$WORK/static" "$WORK/data"
CY_PORT=$(free_port)
CY="http://127.0.0.1:$CY_PORT"
echo bench-pw | "$BIN" hash-password bench --cost 10 >"$WORK/htpasswd"
cat >"$WORK/config.yaml" <<CONF
manager:
  parameters:
    storagedriver: filesystem
    rootdirectory: $WORK/data
auth:
  htpasswd: $WORK/htpasswd
  admins: [bench]
  anonymous:
    - spaces: ["*"]
      role: read
CONF
CHARTYARD_LOG=warn "$BIN" serve --listen "127.0.0.1:$CY_PORT" --config "$WORK/config.yaml" 2>"$WORK/chartyard.log" &
PIDS+=("$!")
wait_for "$CY/health"

BASIC="Basic $(printf bench:bench-pw | base64)"
curl -sf -X POST -H "Authorization: $BASIC" "$CY/api/v1/spaces?space=bench" >/dev/null
LOADGEN_AUTHORIZATION="$BASIC" "$LOADGEN" upload "$CY" bench app 0 1000 64 "$WORK/static" >/dev/null
TOKEN=$(curl -sf -X POST -H "Authorization: $BASIC" "$CY/_/tokens" -d '{"description":"bench"}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')

URL="$CY/api/v1/spaces/bench/charts/{c}/versions/{v}"
download() { "$LOADGEN" download "$1" "$2" 0 1000 64 60 app; }
anonymous=$(download "$URL" "")
password=$(LOADGEN_AUTHORIZATION="$BASIC" download "$URL" "")
token=$(LOADGEN_AUTHORIZATION="Bearer $TOKEN" download "$URL" "")
classic=$(LOADGEN_AUTHORIZATION="$BASIC" download "$CY/bench/charts/{c}-{v}" ".tgz")
classic_anonymous=$(download "$CY/bench/charts/{c}-{v}" ".tgz")

cm_open='{"per_second":0}'
cm_auth='{"per_second":0}'
if [[ -f ../shared/peers/chartmuseum.xz ]]; then
  xz -dc ../shared/peers/chartmuseum.xz >"$WORK/chartmuseum" && chmod +x "$WORK/chartmuseum"
  mkdir -p "$WORK/cm-open" "$WORK/cm-auth"
  cp "$WORK"/static/*.tgz "$WORK/cm-open/" && cp "$WORK"/static/*.tgz "$WORK/cm-auth/"
  CM_OPEN=$(free_port)
  CM_AUTH=$(free_port)
  "$WORK/chartmuseum" --storage local --storage-local-rootdir "$WORK/cm-open" --port "$CM_OPEN" \
    --listen-host 127.0.0.1 --disable-metrics >/dev/null 2>&1 &
  PIDS+=("$!")
  "$WORK/chartmuseum" --storage local --storage-local-rootdir "$WORK/cm-auth" --port "$CM_AUTH" \
    --listen-host 127.0.0.1 --disable-metrics --basic-auth-user bench --basic-auth-pass bench-pw >/dev/null 2>&1 &
  PIDS+=("$!")
  wait_for "http://127.0.0.1:$CM_OPEN/health"
  wait_for "http://127.0.0.1:$CM_AUTH/health"
  cm_open=$(download "http://127.0.0.1:$CM_OPEN/charts/{c}-{v}" ".tgz")
  cm_auth=$(LOADGEN_AUTHORIZATION="$BASIC" download "http://127.0.0.1:$CM_AUTH/charts/{c}-{v}" ".tgz")
fi

echo "chartyard $("$BIN" --version | cut -d' ' -f2), $(nproc) cores, bcrypt cost 10"
echo "raw results:"
for r in "$anonymous" "$password" "$token" "$classic_anonymous" "$classic" "$cm_open" "$cm_auth"; do echo "  $r"; done
python3 - "$anonymous" "$password" "$token" "$classic_anonymous" "$classic" "$cm_open" "$cm_auth" <<'PY'
import json, sys
anon, pw, tok, cl_anon, cl, cm_open, cm_auth = (json.loads(a) for a in sys.argv[1:8])
def rate(r): return f"{r['per_second']:.0f}/s (p99 {r.get('p99_ms', 0):.1f} ms)"
print("| downloads (64 concurrent, 60,000 each) | result | ratio to anonymous |\n|---|---|---|")
print(f"| chartyard /api/v1, anonymous | {rate(anon)} | 1.00 |")
print(f"| chartyard /api/v1, password (Basic, bcrypt 10) | {rate(pw)} | {pw['per_second']/anon['per_second']:.2f} |")
print(f"| chartyard /api/v1, API token (Bearer) | {rate(tok)} | {tok['per_second']/anon['per_second']:.2f} |")
print(f"| chartyard classic repo, anonymous | {rate(cl_anon)} | 1.00 |")
print(f"| chartyard classic repo, password | {rate(cl)} | {cl['per_second']/cl_anon['per_second']:.2f} |")
if cm_open["per_second"]:
    print(f"| ChartMuseum, open | {rate(cm_open)} | 1.00 |")
    print(f"| ChartMuseum, Basic user | {rate(cm_auth)} | {cm_auth['per_second']/cm_open['per_second']:.2f} |")
    print(f"| chartyard password / ChartMuseum Basic | | {cl['per_second']/cm_auth['per_second']:.2f} |")
errors = sum(r.get("errors", 0) for r in (anon, pw, tok, cl_anon, cl, cm_open, cm_auth))
print(f"| failed requests | {errors} | |")
PY
