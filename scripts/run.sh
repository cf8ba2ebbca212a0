#!/usr/bin/env bash
# The main job: build the ferrosync package (release, wasm-opt), start the reference sync server with its
# embedded SQLite database and `--auth dev`, serving the PWA demo from www/, and print the URL.
# Open the URL in two browser windows (same ?space= link) to see two devices sync.
# Environment: PORT (default 8080), DATA_DIR (default ./data).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
. scripts/setup.sh
PORT="${PORT:-8080}"
DATA_DIR="${DATA_DIR:-data}"
mkdir -p "$DATA_DIR"
python3 scripts/pkg.py build
cargo build --release --locked -p ferrosync-server
echo
echo "ferrosync demo: http://127.0.0.1:${PORT}/   (Ctrl-C to stop)"
echo
exec target/release/ferrosync-server --listen "127.0.0.1:${PORT}" --database "sqlite://${DATA_DIR}/ferrosync.db" \
  --static www --auth dev
