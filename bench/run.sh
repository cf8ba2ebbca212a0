#!/usr/bin/env bash
# The local store benchmark in one command: ferrosync vs raw IndexedDB vs Dexie in headless Chromium.
#   bash bench/run.sh                 full run (5 repetitions + warm-up), prints the table, writes bench/results.json
#   bash bench/run.sh --boundary      also times the WASM/JS conversion strategies (builds bench/boundary)
#   bash bench/run.sh --profile       CPU profiles of each phase into bench/profiles/ (top functions printed)
#   bash bench/run.sh --first-sync    first sync of 100,000 docs: ferrosync vs hand-written IndexedDB, same server
#                                     (a release ferrosync-server: cargo build --release -p ferrosync-server)
#   bash bench/run.sh --quick         smoke run of the harness (small sizes, nothing written)
#   bash bench/run.sh --ref HEAD      benchmark a commit instead of the working tree (exported with git archive
#                                     into bench/.ref, built there): reproducible figures while others edit src/
# Other options go to bench/run.mjs (see its header): --reps N, --only ferrosync,raw, --nice -10, --serve.
# Builds the release package (wasm-opt on, as shipped) into bench/.pkg when it is missing or older than
# its sources; FERROSYNC_BENCH_PKG=DIR uses an already built `web` target instead.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
. scripts/setup.sh >/dev/null

stale() { # output, inputs...: true when output is missing or any input file is newer
  local out="$1"; shift
  [ ! -f "$out" ] || [ -n "$(find "$@" -type f -newer "$out" -print -quit 2>/dev/null)" ]
}

# --ref REV (consumed here): build that commit's tree instead of the working tree.
REF=""
args=()
while [ $# -gt 0 ]; do
  if [ "$1" = "--ref" ]; then REF="${2:?--ref needs a commit}"; shift 2; else args+=("$1"); shift; fi
done
set -- "${args[@]+"${args[@]}"}"

PKG="${FERROSYNC_BENCH_PKG:-}"
if [ -z "$PKG" ] && [ -n "$REF" ]; then
  rev="$(git rev-parse --short "$REF^{commit}")"
  # Builds are cached by the content of what goes into the package, so commits that only touch
  # other files (docs, tests, bench/) reuse one build.
  key="$(for p in src core Cargo.toml Cargo.lock wasm-pack.toml scripts/pkg.py; do git rev-parse "$rev:$p"; done | sha1sum | cut -c1-12)"
  PKG="bench/.ref/$key/out/web"
  if [ ! -f "$PKG/ferrosync_bg.wasm" ]; then
    echo "[bench] building the release package of $rev (git archive into bench/.ref/$key)"
    rm -rf "bench/.ref/$key" && mkdir -p "bench/.ref/$key"
    git archive "$rev" | tar -x -C "bench/.ref/$key"
    # The checkout's target dir by default: dependencies are reused, only ferrosync is rebuilt.
    target="${CARGO_TARGET_DIR:-$PWD/target}"
    (cd "bench/.ref/$key" && CARGO_TARGET_DIR="$target" python3 scripts/pkg.py build --target web --out out)
    # Cargo names a workspace member's artifacts without its path and judges them fresh by the
    # files it read last time (this copy's), so the next build of another tree would reuse this
    # tree's ferrosync and core: drop them from the shared target dir.
    (cd "bench/.ref/$key" && CARGO_TARGET_DIR="$target" cargo clean -q -p ferrosync -p ferrosync-core \
      --target wasm32-unknown-unknown --profile wasm)
  fi
  echo "$rev" > "bench/.ref/$key/out/SOURCE"
fi
if [ -z "$PKG" ]; then
  PKG=bench/.pkg/web
  if stale "$PKG/ferrosync_bg.wasm" src core/src Cargo.toml Cargo.lock wasm-pack.toml; then
    echo "[bench] building the release package (web target) into bench/.pkg"
    # What is built, for results.json (the working tree may have uncommitted changes).
    src="$(git rev-parse --short HEAD)"
    [ -z "$(git status --porcelain -- src core Cargo.toml Cargo.lock)" ] || src="$src + uncommitted changes in src/, core/ or the manifests"
    if grep -q -- '--out DIR' scripts/pkg.py; then
      # A private build: leaves pkg/ and www/pkg (used by the demo and tests) alone.
      python3 scripts/pkg.py build --target web --out bench/.pkg
    else
      python3 scripts/pkg.py build --target web
      rm -rf bench/.pkg && mkdir -p bench/.pkg && cp -r pkg/web bench/.pkg/web
    fi
    echo "$src (built $(date -u +%Y-%m-%dT%H:%MZ))" > bench/.pkg/SOURCE
  fi
fi

if [[ " $* " == *" --boundary "* ]] && stale bench/.boundary-pkg/boundary_bg.wasm bench/boundary/src bench/boundary/Cargo.toml core/src; then
  echo "[bench] building bench/boundary into bench/.boundary-pkg"
  (cd bench/boundary && wasm-pack build . --target web --release --no-opt --no-pack \
    --out-dir ../.boundary-pkg --out-name boundary)
  # The same wasm-opt flags as the package (wasm-pack.toml [wasm_opt]).
  mapfile -t flags < <(python3 -c 'import tomllib; [print(f) for f in tomllib.load(open("wasm-pack.toml","rb"))["wasm_opt"]["flags"]]')
  wasm-opt "${flags[@]}" bench/.boundary-pkg/boundary_bg.wasm -o bench/.boundary-pkg/boundary_bg.wasm
fi

exec node bench/run.mjs --pkg "$PKG" "$@"
