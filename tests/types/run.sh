#!/usr/bin/env bash
# Type tests of the built npm package (default pkg/npm; a dev build is enough, the declarations are
# the same): copies it into node_modules/ferrosync, generates a drift check (drift.mjs: the
# hand-written declarations against the runtime module's classes and exports, the ErrorCode union
# against src/error.rs and the package README's error table), and type-checks the sample programs
# and the drift check with `tsc --noEmit`; first the library's own JavaScript (`src/**/*.js`,
# tsconfig.src.json, and ESLint: eslint.config.js). Installs its own TypeScript and ESLint; safe
# to run any number of
# times.
#
#   python3 scripts/pkg.py build [--dev]   # or --out DIR, then pass DIR/npm
#   bash tests/types/run.sh [NPM_DIR]
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
PKG="$(cd "${1:-$ROOT/pkg/npm}" 2>/dev/null && pwd)" || {
  echo "types: no package at ${1:-$ROOT/pkg/npm}: run \`python3 scripts/pkg.py build\` first" >&2
  exit 1
}
[ -f "$PKG/package.json" ] || { echo "types: $PKG has no package.json" >&2; exit 1; }
cd "$HERE"
if [ ! -x node_modules/.bin/tsc ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi
# The library's own JavaScript, checked from its JSDoc (`// @ts-check`), and linted.
./node_modules/.bin/tsc -p tsconfig.src.json
(cd "$ROOT" && "$HERE/node_modules/.bin/eslint" --config "$HERE/eslint.config.js" src)
rm -rf node_modules/ferrosync generated
mkdir -p node_modules/ferrosync generated
cp -R "$PKG"/. node_modules/ferrosync/
node drift.mjs > generated/drift.ts
./node_modules/.bin/tsc -p . --noEmit
echo "types: sample programs and drift check type-check against $(node -p 'require("./node_modules/ferrosync/package.json").version') from $PKG"
