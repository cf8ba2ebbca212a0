#!/usr/bin/env bash
# Runs every test of the project on a fresh machine: installs what is missing (scripts/setup.sh), then
# lint; native tests (core; server on SQLite and on PostgreSQL); browser tests in headless Chromium
# against real IndexedDB and a real server behind the fault proxy (debug and release builds, main
# thread and dedicated worker); a real QuotaExceededError on a small volume; the release npm package
# (no test hooks, size budget, TypeScript declarations, a Vite consumer app, React/Vue/Svelte/RxJS
# apps using the framework bindings); and the PWA end to end with Playwright.
# Exits non-zero on the first failure and says which stage failed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT="$PWD"
. scripts/setup.sh

STAGES=()
PIDS=()
stage() { printf '\n\033[1;34m==== %s\033[0m\n' "$1"; STAGES+=("$1"); }
cleanup() {
  local rc=$?
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  [ $rc -eq 0 ] || printf '\n\033[1;31mFAILED in stage: %s\033[0m\n' "${STAGES[-1]:-setup}"
  exit $rc
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_http() { # url: wait up to 30 s for a 2xx answer
  python3 - "$1" <<'PY'
import sys, time, urllib.request
for _ in range(300):
    try:
        urllib.request.urlopen(sys.argv[1], timeout=1).read()
        sys.exit(0)
    except Exception:
        time.sleep(0.1)
sys.exit(f"nothing answered at {sys.argv[1]}")
PY
}
SCRATCH="$(mktemp -d /tmp/ferrosync-test.XXXXXX)"
SERVER=target/debug/ferrosync-server

stage "format"
cargo fmt --all -- --check

stage "clippy (native crates)"
cargo clippy --locked -p ferrosync-core -p ferrosync-server -p ferrosync-load --all-targets -- -D warnings

stage "clippy (browser crate, wasm32)"
# The tests are built with the `test-hooks` feature (the self dev-dependency in Cargo.toml turns it
# on), which --all-targets then unifies into the library too; --lib checks the library as the npm
# package builds it, without the hooks.
cargo clippy --locked -p ferrosync --target wasm32-unknown-unknown --all-targets -- -D warnings
cargo clippy --locked -p ferrosync --target wasm32-unknown-unknown --lib -- -D warnings

stage "native tests: core + server on SQLite"
cargo test --locked -p ferrosync-core -p ferrosync-server

stage "native tests: the browser test runner's patched tiny_http (vendor/tiny_http/PATCHES.md)"
CARGO_TARGET_DIR=target/vendor cargo test --locked --manifest-path vendor/tiny_http/Cargo.toml --tests

stage "native tests: server on PostgreSQL"
eval "$(bash scripts/postgres.sh)"
DATABASE_URL="$DATABASE_URL" cargo test --locked -p ferrosync-server
unset DATABASE_URL

stage "sync server + fault proxy for the browser tests"
cargo build --locked -p ferrosync-server
UP="$(free_port)"; PROXY="$(free_port)"
python3 tests/support/faultproxy.py --listen "$PROXY" --upstream-port "$UP" --db-file "$SCRATCH/sync.db" -- \
  "$SERVER" --listen "127.0.0.1:$UP" --database "sqlite://$SCRATCH/sync.db" --auth dev \
  > "$SCRATCH/proxy.log" 2>&1 &
PIDS+=($!)
wait_http "http://127.0.0.1:$PROXY/__control/stats"
export FERROSYNC_TEST_SERVER="http://127.0.0.1:$PROXY" FERROSYNC_TEST_CONTROL="http://127.0.0.1:$PROXY"
# A second server with the example push hook (tests/push_hook.rs).
HOOK="$(free_port)"; HOOKED="$(free_port)"
python3 examples/push-hook/hook.py --port "$HOOK" > "$SCRATCH/hook.log" 2>&1 &
PIDS+=($!)
"$SERVER" --listen "127.0.0.1:$HOOKED" --database "sqlite://$SCRATCH/hooked.db" --auth dev \
  --push-hook "http://127.0.0.1:$HOOK/hook" > "$SCRATCH/hooked.log" 2>&1 &
PIDS+=($!)
wait_http "http://127.0.0.1:$HOOKED/healthz"
export FERROSYNC_TEST_HOOK_SERVER="http://127.0.0.1:$HOOKED"
# The benchmark test files run here as small smoke tests of their code paths (correctness asserted,
# figures printed); their headers say how to run them at full size. Debug builds are slow: long timeout.
export WASM_BINDGEN_TEST_TIMEOUT=300

# Every `wasm-pack test` below builds the browser crate with its `test-hooks` feature
# (`db._setOfflineForTest`, `sync.clockSkewMs`, the Rust `*_for_test` hooks): Cargo.toml's self
# dev-dependency enables it for test builds; the package stages check that the npm package has none.
stage "browser tests: headless Chromium, debug build"
wasm-pack test --headless --chrome

stage "browser tests: headless Chromium, release build"
wasm-pack test --headless --chrome --release

stage "browser tests: QuotaExceededError on a 64 MB volume"
mkdir -p /tmp/ferrosync-quota
mountpoint -q /tmp/ferrosync-quota || mount -t tmpfs -o size=64m tmpfs /tmp/ferrosync-quota
rm -rf /tmp/ferrosync-quota/profile
WASM_BINDGEN_TEST_WEBDRIVER_JSON=tests/quota-webdriver.json \
  wasm-pack test --headless --chrome -- --features quota-test --test quota

stage "package: release build with wasm-opt"
python3 scripts/pkg.py build

stage "package: no test hook in the release package (.wasm exports, JS glue, .d.ts)"
python3 scripts/pkg.py exports --check

stage "package: size budget (.wasm < 260 KB gzipped)"
python3 scripts/pkg.py sizes --check

stage "package: TypeScript declarations (tsc + drift check), the library JS type-checked and linted"
bash tests/types/run.sh

stage "package: consumer app (npm pack -> Vite + TypeScript -> headless Chromium)"
bash tests/consumer/run.sh

stage "package: framework bindings (React, Vue, Svelte, RxJS apps -> headless Chromium + sync server)"
FERROSYNC_SERVER="$ROOT/$SERVER" bash tests/frameworks/run.sh

stage "PWA end to end: Playwright against the server serving www/ (release package)"
E2E="$(free_port)"
"$SERVER" --listen "127.0.0.1:$E2E" --database "sqlite://$SCRATCH/e2e.db" --static www --auth dev \
  > "$SCRATCH/e2e-server.log" 2>&1 &
PIDS+=($!)
wait_http "http://127.0.0.1:$E2E/healthz"
(cd tests/e2e && FERROSYNC_E2E_URL="http://127.0.0.1:$E2E" npm test)

printf '\n\033[1;32mall %d stages passed:\033[0m\n' "${#STAGES[@]}"
printf '  - %s\n' "${STAGES[@]}"
