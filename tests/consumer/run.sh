#!/usr/bin/env bash
# Consumer test of the npm package: `npm pack` the assembled package, install the tarball (not a
# workspace link) into the fresh Vite + TypeScript app in tests/consumer/app, type-check it
# (`tsc --noEmit`), build it (`vite build`), and load the built app in headless Chromium, which stores,
# queries and watches data on the page and in a module worker and keeps it across a reload
# (check.mjs asserts it). Installs its own npm dependencies; safe to run any number of times.
#
#   python3 scripts/pkg.py build          # release build with wasm-opt into pkg/npm
#   bash tests/consumer/run.sh [NPM_DIR]  # default NPM_DIR: pkg/npm
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
APP="$HERE/app"
PKG="$(cd "${1:-$ROOT/pkg/npm}" 2>/dev/null && pwd)" || {
  echo "consumer: no package at ${1:-$ROOT/pkg/npm}: run \`python3 scripts/pkg.py build\` first" >&2
  exit 1
}
[ -f "$PKG/package.json" ] || { echo "consumer: $PKG has no package.json" >&2; exit 1; }
log() { printf '\n\033[1m[consumer] %s\033[0m\n' "$*"; }

log "npm pack $PKG"
PACK="$HERE/.pack"
rm -rf "$PACK" && mkdir -p "$PACK"
TARBALL="$PACK/$(cd "$PKG" && npm pack --silent --pack-destination "$PACK" | tail -1)"
[ -f "$TARBALL" ] || { echo "consumer: npm pack produced no tarball" >&2; exit 1; }
# What the tarball must hold (and nothing from the build's scratch files).
listing="$(tar tzf "$TARBALL" | sed 's|^package/||' | sort)"
for f in package.json README.md LICENSE-MIT LICENSE-APACHE web/ferrosync.js web/ferrosync.d.ts web/ferrosync_bg.wasm \
  bundler/ferrosync.js bundler/ferrosync_bg.js bundler/ferrosync.d.ts bundler/ferrosync_bg.wasm; do
  grep -qx "$f" <<<"$listing" || { echo "consumer: $f missing from $(basename "$TARBALL"):"$'\n'"$listing" >&2; exit 1; }
done
if grep -E '(^|/)\.gitignore$|\.tgz$' <<<"$listing"; then echo "consumer: stray files in the tarball" >&2; exit 1; fi
# The package README (wasm-pack.toml [package].readme), not the repository's.
# (Read it whole first: `tar | grep -q` under pipefail fails when grep exits before tar is done writing.)
readme="$(tar xzf "$TARBALL" -O package/README.md)"
grep -q '^npm install ferrosync$' <<<"$readme" ||
  { echo "consumer: the tarball's README.md is not docs/PACKAGE-README.md" >&2; exit 1; }
echo "$(basename "$TARBALL"): $(wc -l <<<"$listing") files, $(du -k "$TARBALL" | cut -f1) KB"

cd "$APP"
if [ ! -d node_modules/vite ] || [ ! -d node_modules/typescript ] || [ ! -d node_modules/playwright-core ] ||
  [ package-lock.json -nt node_modules/.package-lock.json ]; then
  log "npm ci (vite, typescript, playwright-core from package-lock.json)"
  npm ci --no-audit --no-fund
fi

log "install $(basename "$TARBALL") (fresh, from the tarball)"
rm -rf node_modules/ferrosync dist
npm install --no-save --no-package-lock --no-audit --no-fund "$TARBALL"
# Really the tarball's files, not a link back into the repository, and really this build.
[ ! -L node_modules/ferrosync ] || { echo "consumer: node_modules/ferrosync is a symlink" >&2; exit 1; }
cmp "$PKG/web/ferrosync_bg.wasm" node_modules/ferrosync/web/ferrosync_bg.wasm
node -e 'const p = require("./node_modules/ferrosync/package.json"); console.log(`installed ${p.name}@${p.version}`)'

log "tsc --noEmit"
./node_modules/.bin/tsc --noEmit

log "vite build"
./node_modules/.bin/vite build

log "headless Chromium: store, query, watch (page + worker), reload"
node "$HERE/check.mjs"
