#!/usr/bin/env bash
# Consumer apps of the framework bindings: `npm pack` the assembled package, install the tarball
# (not a link) into the apps here (React 19 + StrictMode, Vue 3, Svelte 5, RxJS, and a plain app),
# type-check them with each framework's checker (tsc, vue-tsc, svelte-check), build them with Vite,
# check that an app using no binding installs and bundles none, then serve them from a real
# ferrosync-server (`--static dist --auth dev`, SQLite) and drive them in headless Chromium
# (check.mjs). One shared npm install (package-lock.json) for every app; safe to run any number of
# times.
#
#   python3 scripts/pkg.py build && cargo build -p ferrosync-server
#   bash tests/frameworks/run.sh [NPM_DIR]     # default NPM_DIR: pkg/npm
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
PKG="$(cd "${1:-$ROOT/pkg/npm}" 2>/dev/null && pwd)" || {
  echo "frameworks: no package at ${1:-$ROOT/pkg/npm}: run \`python3 scripts/pkg.py build\` first" >&2
  exit 1
}
[ -f "$PKG/package.json" ] || { echo "frameworks: $PKG has no package.json" >&2; exit 1; }
SERVER="${FERROSYNC_SERVER:-$ROOT/target/debug/ferrosync-server}"
[ -x "$SERVER" ] || { echo "frameworks: no server at $SERVER: run \`cargo build -p ferrosync-server\` first" >&2; exit 1; }
log() { printf '\n\033[1m[frameworks] %s\033[0m\n' "$*"; }
fail() { echo "frameworks: $*" >&2; exit 1; }
BINDINGS="observable react vue svelte"

log "npm pack $PKG"
PACK="$HERE/.pack"
rm -rf "$PACK" && mkdir -p "$PACK"
TARBALL="$PACK/$(cd "$PKG" && npm pack --silent --pack-destination "$PACK" | tail -1)"
[ -f "$TARBALL" ] || fail "npm pack produced no tarball"
listing="$(tar tzf "$TARBALL" | sed 's|^package/||' | sort)"
for b in $BINDINGS; do
  for f in "bindings/$b.js" "bindings/$b.d.ts"; do
    grep -qx "$f" <<<"$listing" || fail "$f missing from $(basename "$TARBALL")"
  done
done
grep -qx bindings/source.js <<<"$listing" || fail "bindings/source.js missing from $(basename "$TARBALL")"
# Subpath exports, optional peers, and no side effects declared for the bindings.
tar xzf "$TARBALL" -O package/package.json | node -e '
  const p = JSON.parse(require("fs").readFileSync(0, "utf8"));
  const fail = (m) => { console.error("frameworks: package.json: " + m); process.exit(1); };
  for (const b of process.argv[1].split(" ")) {
    const e = p.exports["./" + b];
    if (!e || e.types !== `./bindings/${b}.d.ts` || e.default !== `./bindings/${b}.js`) fail(`exports["./${b}"] is ${JSON.stringify(e)}`);
  }
  for (const peer of ["react", "vue", "svelte"]) {
    if (!p.peerDependencies?.[peer]) fail(`no peerDependencies.${peer}`);
    if (p.peerDependenciesMeta?.[peer]?.optional !== true) fail(`peer ${peer} is not optional`);
  }
  if (p.dependencies) fail("the package must have no dependencies");
  if (!Array.isArray(p.sideEffects) || p.sideEffects.some((s) => s.includes("bindings"))) fail(`sideEffects ${JSON.stringify(p.sideEffects)}`);
' "$BINDINGS"

cd "$HERE"
if [ ! -d node_modules/vite ] || [ ! -d node_modules/playwright-core ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  log "npm ci (React, Vue, Svelte, RxJS, their checkers, Vite, playwright-core from package-lock.json)"
  npm ci --no-audit --no-fund
fi

log "an app that uses no binding installs none of their peers"
BARE="$HERE/.bare"
rm -rf "$BARE" && mkdir -p "$BARE"
echo '{ "name": "bare-app", "private": true, "version": "0.0.0" }' > "$BARE/package.json"
(cd "$BARE" && npm install --no-audit --no-fund --silent "$TARBALL")
installed="$(cd "$BARE/node_modules" && ls -A | grep -v '^\.package-lock\.json$' | tr '\n' ' ')"
[ "$installed" = "ferrosync " ] || fail "installing the tarball alone installed: $installed"
rm -rf "$BARE"

log "install $(basename "$TARBALL") (fresh, from the tarball)"
rm -rf node_modules/ferrosync dist
npm install --no-save --no-package-lock --no-audit --no-fund "$TARBALL"
[ ! -L node_modules/ferrosync ] || fail "node_modules/ferrosync is a symlink"
cmp "$PKG/bindings/react.js" node_modules/ferrosync/bindings/react.js
cmp "$PKG/web/ferrosync_bg.wasm" node_modules/ferrosync/web/ferrosync_bg.wasm

log "type-check: tsc (React, RxJS, plain), vue-tsc (Vue), svelte-check (Svelte)"
./node_modules/.bin/tsc -p tsconfig.json
./node_modules/.bin/vue-tsc -p tsconfig.vue.json --noEmit
./node_modules/.bin/svelte-check --tsconfig ./tsconfig.svelte.json --fail-on-warnings --output human

log "vite build (every app, development mode: StrictMode double-mounts) + the plain app (production)"
NODE_ENV=development ./node_modules/.bin/vite build --logLevel warn
./node_modules/.bin/vite build --config vite.plain.config.mjs --logLevel warn
# Markers only the bindings contain (error messages and the interop key survive minification).
markers='ferrosync/react:|ferrosync/vue:|@@observable|useSyncExternalStore|onScopeDispose'
if grep -rlE "$markers" dist/plain; then fail "the plain app's bundle contains binding code (files above)"; fi
grep -rqE 'ferrosync/react:' dist/assets || fail "marker check is blind: no ferrosync/react code found in the React app"
echo "plain app: $(du -sk dist/plain | cut -f1) KB, no binding code"

log "ferrosync-server --static dist --auth dev, and headless Chromium"
SCRATCH="$(mktemp -d /tmp/ferrosync-frameworks.XXXXXX)"
PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
"$SERVER" --listen "127.0.0.1:$PORT" --database "sqlite://$SCRATCH/sync.db" --static "$HERE/dist" --auth dev \
  > "$SCRATCH/server.log" 2>&1 &
SERVER_PID=$!
trap 'kill $SERVER_PID 2>/dev/null || true; rm -rf "$SCRATCH"' EXIT
for _ in $(seq 300); do
  curl -fsS "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1 && break
  kill -0 $SERVER_PID 2>/dev/null || { cat "$SCRATCH/server.log" >&2; fail "the server exited"; }
  sleep 0.1
done
node check.mjs "http://127.0.0.1:$PORT" || { echo "server log: $SCRATCH/server.log" >&2; tail -20 "$SCRATCH/server.log" >&2; exit 1; }
