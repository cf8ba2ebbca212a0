#!/usr/bin/env bash
# One browser test file against its own sync server and fault proxy, on free ports, as
# scripts/test.sh's "sync server + fault proxy" stage starts them (for a developer who wants one
# file, not the whole suite).
# usage: bash scripts/browser-test.sh <test-file-name> [extra wasm-pack test args, e.g. --release]
# FERROSYNC_NOCAPTURE=1 shows what the tests print (the benchmarks in tests/sync_bench.rs report
# their figures that way): the runner gets --nocapture, which extra args cannot reach (they go
# before the `--`).
set -u
cd "$(dirname "$0")/.."
. scripts/setup.sh >/dev/null 2>&1
# setup.sh turns on errexit and pipefail in this shell; this script checks statuses itself (an
# errexit inside the EXIT trap, from pkill finding nothing, turned a passing run's status into 1).
set +e +o pipefail
cargo build -q -p ferrosync-server --bin ferrosync-server || exit 1
S=$(mktemp -d /tmp/fs-browser-test.XXXX)
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
UP=$(free_port); PROXY=$(free_port)
python3 tests/support/faultproxy.py --listen "$PROXY" --upstream-port "$UP" --db-file "$S/sync.db" -- \
  target/debug/ferrosync-server --listen "127.0.0.1:$UP" --database "sqlite://$S/sync.db" --auth dev > "$S/proxy.log" 2>&1 &
P=$!
rc=1
trap 'kill $P 2>/dev/null; pkill -P $P 2>/dev/null; rm -rf "$S"; exit $rc' EXIT
for _ in $(seq 1 100); do
  curl -sf "http://127.0.0.1:$PROXY/healthz" >/dev/null 2>&1 && break
  sleep 0.1
done
export FERROSYNC_TEST_SERVER="http://127.0.0.1:$PROXY" FERROSYNC_TEST_CONTROL="http://127.0.0.1:$PROXY"
export WASM_BINDGEN_TEST_TIMEOUT=${WASM_BINDGEN_TEST_TIMEOUT:-300}
test=$1; shift
nocapture=()
[ "${FERROSYNC_NOCAPTURE:-}" = 1 ] && nocapture=(-- --nocapture)
wasm-pack test --headless --chrome "$@" -- --test "$test" "${nocapture[@]}"
rc=$?
echo "browser-test: $test exit $rc"
exit $rc
