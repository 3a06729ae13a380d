#!/usr/bin/env bash
# The whole test suite, from a fresh clone: installs the external test tools (real helm
# v3 and v4, moto, chromium and the browser tests' npm packages), then checks formatting
# and lints and runs every test.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/install-test-tools.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings

log=$(mktemp)
trap 'rm -f "$log"' EXIT
cargo test --workspace --locked 2>&1 | tee "$log"
# One closing line for the whole run (cargo's last line is a per-crate doc-test summary).
passed=$(grep -oE '[0-9]+ passed' "$log" | awk '{n += $1} END {print n + 0}')
failed=$(grep -oE '[0-9]+ failed' "$log" | awk '{n += $1} END {print n + 0}')
echo "all tests: $passed passed, $failed failed"
