#!/usr/bin/env bash
# Installs everything the build, demo and tests need on a fresh Debian machine of this kind, skipping
# what is already there, so it is safe to run any number of times. Source it (`. scripts/setup.sh`) to
# also get PATH and CHROMEDRIVER set for the current shell.
set -euo pipefail
_fs_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
_fs_pkg() { python3 "$_fs_root/scripts/pkg.py" "$@"; }
_fs_log() { printf '\n\033[1m[setup] %s\033[0m\n' "$*"; }

export PATH="$HOME/.cargo/bin:$_fs_root/tools/node_modules/.bin:$PATH"

if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  _fs_log "adding rust target wasm32-unknown-unknown"
  rustup target add wasm32-unknown-unknown
fi
rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy rustfmt
# The standard library's source: release builds of the .wasm compile it (wasm-pack.toml [release_std]).
rustup component list --installed 2>/dev/null | grep -q "^rust-src" || rustup component add rust-src

# Cargo tools at the versions pinned in wasm-pack.toml. `--locked` first (reproducible); crates.io can
# yank a locked dependency, then fall back to a fresh resolution of the same tool version.
_fs_cargo_tool() { # crate version binary
  local have
  have="$("$3" --version 2>/dev/null | awk '{print $2}' || true)"
  if [ "$have" != "$2" ]; then
    _fs_log "installing $1 $2 (found '${have:-none}')"
    cargo install "$1" --version "$2" --locked --force || cargo install "$1" --version "$2" --force
  fi
}
_fs_pkg check
_fs_cargo_tool wasm-pack "$(_fs_pkg tool wasm-pack)" wasm-pack
_fs_cargo_tool wasm-bindgen-cli "$(_fs_pkg tool wasm-bindgen-cli)" wasm-bindgen

# The same wasm-bindgen built against vendor/tiny_http (vendor/tiny_http/PATCHES.md: the published
# test runner's server can leave a page's module request unread, and a browser test hangs before it
# loads). Built once per machine and per change of its sources, into a directory put first on PATH:
# wasm-pack runs the test runner next to the first `wasm-bindgen` of the pinned version on PATH.
_fs_runner_key="$(cd "$_fs_root" && find tools/test-runner/Cargo.toml tools/test-runner/Cargo.lock \
  tools/test-runner/src vendor/tiny_http/Cargo.toml vendor/tiny_http/src -type f | LC_ALL=C sort |
  xargs cat | sha256sum | cut -c1-16)"
_fs_runner="${XDG_CACHE_HOME:-$HOME/.cache}/ferrosync/test-runner-$_fs_runner_key"
if [ ! -x "$_fs_runner/bin/wasm-bindgen-test-runner" ]; then
  _fs_log "building wasm-bindgen's test runner with the patched tiny_http (tools/test-runner)"
  cargo install --path "$_fs_root/tools/test-runner" --root "$_fs_runner" --locked --force
fi
export PATH="$_fs_runner/bin:$PATH"

# Debian packages: Chromium + driver for browser tests; PostgreSQL for the server's second backend.
_fs_apt=()
[ -x /usr/bin/chromium ] || _fs_apt+=(chromium)
[ -x /usr/bin/chromedriver ] || _fs_apt+=(chromium-driver)
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then _fs_apt+=(postgresql); fi
# openssl: server/tests/jwt.rs makes real RSA and EC keys with it.
command -v openssl >/dev/null 2>&1 || _fs_apt+=(openssl)
if [ ${#_fs_apt[@]} -gt 0 ]; then
  _fs_log "apt-get install ${_fs_apt[*]}"
  apt-get update
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${_fs_apt[@]}"
fi
export CHROMEDRIVER=/usr/bin/chromedriver

# npm tools (wasm-opt from binaryen, playwright-core, dexie), from the committed lock file.
_fs_npm() { # dir
  if [ -f "$1/package.json" ] && { [ ! -d "$1/node_modules" ] || [ "$1/package-lock.json" -nt "$1/node_modules/.package-lock.json" ]; }; then
    _fs_log "npm ci in ${1#"$_fs_root"/}"
    (cd "$1" && npm ci --no-audit --no-fund)
  fi
}
_fs_npm "$_fs_root/tools"
_fs_npm "$_fs_root/tests/e2e"
wasm-opt --version >/dev/null
_fs_log "toolchain ready: $(wasm-pack --version), wasm-bindgen $(wasm-bindgen --version | awk '{print $2}') ($(command -v wasm-bindgen-test-runner)), $(wasm-opt --version | awk '{print $1, $3}'), $(/usr/bin/chromium --version 2>/dev/null | head -1)"
