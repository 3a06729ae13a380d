#!/usr/bin/env bash
# The whole test suite, from a fresh clone: installs the external test tools (real helm
# v3 and v4, moto), then checks formatting and lints and runs every test.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/install-test-tools.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --locked
