#!/usr/bin/env python3
"""Builds the ferrosync npm package as declared in wasm-pack.toml (see that file's header).

Usage:
  pkg.py tool NAME          print the pinned version of a tool from [tools]
  pkg.py check              fail if wasm-bindgen-cli in wasm-pack.toml differs from Cargo.lock
                            or from the test runner's (tools/test-runner/Cargo.lock)
  pkg.py build [--dev] [--target NAME] [--out DIR] [--test-hooks]
                            wasm-pack build each [[target]] (no wasm-opt in wasm-pack), run wasm-opt with
                            [wasm_opt].flags on release builds, assemble [package].out_dir, copy the demo target.
                            --out DIR: put the targets in DIR/<target> and the npm package in DIR/npm instead,
                            and leave the demo copy alone (a private build that cannot clobber a shared one)
                            release builds compile std with the module and abort on panic at once ([release_std])
                            --test-hooks: a test variant with the browser crate's `test-hooks` feature
                            (`db._setOfflineForTest`, the `clockSkewMs` sync option); only with --out, so it
                            never lands in the published package or the demo
  pkg.py sizes [NPM_DIR] [--markdown] [--check]
                            print the size of each target's .wasm (raw, gzip -9) and JS glue in the assembled
                            npm package (default [package].out_dir); --markdown prints a table for docs;
                            --check exits 1 when a .wasm is 260 KB or more gzipped (docs/BENCHMARKS.md says why)
  pkg.py exports [NPM_DIR] [--check]
                            list each target's .wasm exports (read from the module) and any test hook found in
                            the package (the browser crate's `test-hooks` feature: `_setOfflineForTest` and the
                            other `*ForTest`/`*_for_test` names, the `clockSkewMs` option) in its .wasm exports,
                            .wasm bytes, JS glue or .d.ts; --check exits 1 when there is one
"""
import gzip
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The texts of the dual license declared in package.json, shipped in the package.
LICENSES = ["LICENSE-MIT", "LICENSE-APACHE"]
# The framework bindings (hand-written JS + .d.ts in bindings/, copied as they are): subpath
# `ferrosync/<name>` -> bindings/<name>.js. source.js is their shared internals, not an export.
BINDINGS = ["observable", "react", "vue", "svelte"]
# Optional peers: an app that uses no binding installs (and bundles) none of them.
PEERS = {"react": ">=18", "vue": ">=3.3", "svelte": ">=3"}


def load(name):
    with open(os.path.join(ROOT, name), "rb") as f:
        return tomllib.load(f)


def lock_version(crate, lock_file="Cargo.lock"):
    lock = load(lock_file)
    versions = [p["version"] for p in lock.get("package", []) if p["name"] == crate]
    if len(versions) != 1:
        sys.exit(f"pkg.py: expected exactly one {crate} in {lock_file}, found {versions}")
    return versions[0]


def check(cfg):
    want = cfg["tools"]["wasm-bindgen-cli"]
    have = lock_version("wasm-bindgen")
    if want != have:
        sys.exit(
            f"pkg.py: wasm-pack.toml pins wasm-bindgen-cli {want} but Cargo.lock has wasm-bindgen {have}; "
            "they must be equal (update wasm-pack.toml [tools] and the `=` pin in Cargo.toml together)"
        )
    runner = lock_version("wasm-bindgen-cli", "tools/test-runner/Cargo.lock")
    if want != runner:
        sys.exit(
            f"pkg.py: wasm-pack.toml pins wasm-bindgen-cli {want} but tools/test-runner builds {runner}; "
            "update the `=` pin in tools/test-runner/Cargo.toml (and its version) with the others"
        )


def run(cmd, **kw):
    print("+ " + " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, cwd=ROOT, **kw)


def wasm_opt(cfg, wasm):
    exe = shutil.which("wasm-opt")
    if not exe:
        sys.exit("pkg.py: wasm-opt not on PATH (scripts/setup.sh puts npm binaryen's on PATH)")
    run([exe, *cfg["wasm_opt"]["flags"], wasm, "-o", wasm])


def package_json(cfg, version, targets):
    p = cfg["package"]
    repo = p["repository"]
    name = p["out_name"]
    web = "./web/" if "web" in targets else None
    exports = {}
    if web:
        exports["."] = {"types": f"{web}{name}.d.ts", "default": f"{web}{name}.js"}
        exports["./web"] = exports["."]
        exports[f"./{name}_bg.wasm"] = f"{web}{name}_bg.wasm"
    if "bundler" in targets:
        exports["./bundler"] = {"types": f"./bundler/{name}.d.ts", "default": f"./bundler/{name}.js"}
    for b in BINDINGS:
        exports[f"./{b}"] = {"types": f"./bindings/{b}.d.ts", "default": f"./bindings/{b}.js"}
    exports["./package.json"] = "./package.json"
    return {
        "name": p["name"],
        "version": version,
        "description": p["description"],
        "license": p["license"],
        "repository": {"type": "git", "url": "git+" + repo + ".git"},
        "homepage": p.get("homepage", repo + "#readme"),
        "bugs": {"url": repo + "/issues"},
        "keywords": p["keywords"],
        "type": "module",
        "main": f"{web}{name}.js" if web else None,
        "types": f"{web}{name}.d.ts" if web else None,
        "exports": exports,
        "files": [f"{t}/" for t in targets] + ["bindings/", "README.md", *LICENSES],
        "peerDependencies": PEERS,
        "peerDependenciesMeta": {k: {"optional": True} for k in PEERS},
        # The web target's entry only defines things until init() runs; the bundler entry instantiates
        # the module on import, so bundlers must keep it. The bindings have no side effects.
        "sideEffects": ["./bundler/*.js", "./bundler/snippets/*"],
    }


DISPOSABLE_REF = '/// <reference lib="esnext.disposable" />\n'


def self_contained_dts(path):
    """wasm-bindgen declares `[Symbol.dispose](): void` on every class, which needs TypeScript's
    `esnext.disposable` lib: without it an app that type-checks libraries (skipLibCheck off) gets
    errors from our .d.ts. Referencing the lib from the file makes it work with any `lib` setting."""
    if not os.path.isfile(path):
        return
    with open(path) as f:
        text = f.read()
    if "Symbol.dispose" in text and DISPOSABLE_REF not in text:
        with open(path, "w") as f:
            f.write(DISPOSABLE_REF + text)


def build(cfg, dev, only, out_root=None, test_hooks=False):
    check(cfg)
    if test_hooks and not out_root:
        sys.exit("pkg.py: --test-hooks needs --out DIR (a test variant never goes to the package or demo dirs)")
    version = load("Cargo.toml")["package"]["version"]
    name = cfg["package"]["out_name"]
    targets = [t for t in cfg["target"] if only in (None, t["name"])]
    if out_root:
        out_root = os.path.abspath(out_root)
        targets = [dict(t, out_dir=os.path.join(out_root, t["name"])) for t in targets]
    env = None
    if not dev:
        # cargo's `-Z build-std` as configuration (wasm-pack takes a `-Z` after `--` for a path).
        std = cfg["release_std"]
        env = dict(os.environ, RUSTC_BOOTSTRAP="1", CARGO_UNSTABLE_BUILD_STD=std["build_std"],
                   CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUSTFLAGS=" ".join(std["rustflags"]))
    for t in targets:
        out = os.path.join(ROOT, t["out_dir"])
        run(["wasm-pack", "build", "--target", t["name"], "--out-dir", out, "--out-name", name,
             *(["--dev"] if dev else ["--profile", "wasm"]), "--no-opt", "--no-pack",
             *(["--", "--features", "test-hooks"] if test_hooks else [])], env=env)
        if not dev:
            wasm_opt(cfg, os.path.join(out, f"{name}_bg.wasm"))
    npm_dir = os.path.join(out_root, "npm") if out_root else os.path.join(ROOT, cfg["package"]["out_dir"])
    shutil.rmtree(npm_dir, ignore_errors=True)
    os.makedirs(npm_dir)
    names = []
    for t in targets:
        dst = os.path.join(npm_dir, t["name"])
        shutil.copytree(os.path.join(ROOT, t["out_dir"]), dst,
                        ignore=shutil.ignore_patterns("package.json", ".gitignore", "README*", "LICENSE*"))
        self_contained_dts(os.path.join(dst, f"{name}.d.ts"))
        names.append(t["name"])
    shutil.copytree(os.path.join(ROOT, "bindings"), os.path.join(npm_dir, "bindings"),
                    ignore=shutil.ignore_patterns("README*", ".*"))
    pj = {k: v for k, v in package_json(cfg, version, names).items() if v is not None}
    with open(os.path.join(npm_dir, "package.json"), "w") as f:
        json.dump(pj, f, indent=2)
        f.write("\n")
    readme = os.path.join(ROOT, cfg["package"].get("readme", "README.md"))
    shutil.copy(readme, os.path.join(npm_dir, "README.md"))
    for lic in LICENSES:
        shutil.copy(os.path.join(ROOT, lic), os.path.join(npm_dir, lic))
    demo = None if out_root else cfg.get("demo")
    if demo and any(t["name"] == demo["target"] for t in targets):
        src = next(t["out_dir"] for t in targets if t["name"] == demo["target"])
        dst = os.path.join(ROOT, demo["pkg_dir"])
        shutil.rmtree(dst, ignore_errors=True)
        shutil.copytree(os.path.join(ROOT, src), dst, ignore=shutil.ignore_patterns(".gitignore"))
    kind = ("dev" if dev else "release") + (", with test hooks" if test_hooks else "")
    print(f"pkg.py: built {', '.join(names)} ({kind}) into {npm_dir}")


def kb(n):
    return f"{n / 1024:.1f} KB"


def sizes(cfg, npm_dir, markdown):
    """Sizes of what an app downloads: per target, the .wasm and the JS glue, raw and gzip -9."""
    name = cfg["package"]["out_name"]
    npm_dir = os.path.abspath(npm_dir or os.path.join(ROOT, cfg["package"]["out_dir"]))
    rows = []
    for t in cfg["target"]:
        d = os.path.join(npm_dir, t["name"])
        if not os.path.isdir(d):
            continue
        # The entry, the bundler target's `_bg.js`, and the snippets (our `module = "..."` JS files).
        js = [os.path.join(d, f"{name}.js"), os.path.join(d, f"{name}_bg.js")]
        js += sorted(os.path.join(r, f) for r, _, fs in os.walk(os.path.join(d, "snippets"))
                     for f in fs if f.endswith(".js"))
        js = [f for f in js if os.path.isfile(f)]
        for label, files in ((".wasm", [os.path.join(d, f"{name}_bg.wasm")]), ("JS glue", js)):
            data = b"".join(open(f, "rb").read() for f in files)
            rows.append((t["name"], label, len(data), len(gzip.compress(data, 9, mtime=0))))
    if not rows:
        sys.exit(f"pkg.py: no built targets in {npm_dir} (run `python3 scripts/pkg.py build` first)")
    if markdown:
        print("| target | file | raw | gzip -9 |")
        print("| --- | --- | ---: | ---: |")
        for t, label, raw, gz in rows:
            print(f"| `{t}` | {label} | {kb(raw)} ({raw} B) | {kb(gz)} ({gz} B) |")
    else:
        for t, label, raw, gz in rows:
            print(f"{t:8} {label:8} raw {raw:>9} B ({kb(raw):>9})   gzip {gz:>8} B ({kb(gz):>8})")
    wasm_gz = max(gz for _, label, _, gz in rows if label == ".wasm")
    limit = 260 * 1024
    verdict = "under" if wasm_gz < limit else "OVER"
    if markdown:
        print()
    print(f".wasm gzipped: {kb(wasm_gz)}, {verdict} the 260 KB budget")
    return wasm_gz < limit


def wasm_exports(path):
    """The export names of a WebAssembly module (its export section, id 7)."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:4] != b"\0asm":
        sys.exit(f"pkg.py: {path} is not a WebAssembly module")

    def leb(pos):
        n = shift = 0
        while True:
            b = data[pos]
            pos += 1
            n |= (b & 0x7F) << shift
            shift += 7
            if b < 0x80:
                return n, pos

    pos = 8
    while pos < len(data):
        section = data[pos]
        size, pos = leb(pos + 1)
        if section == 7:
            count, pos = leb(pos)
            names = []
            for _ in range(count):
                length, pos = leb(pos)
                names.append(data[pos:pos + length].decode())
                _, pos = leb(pos + length + 1)  # the kind byte, then the index
            return names
        pos += size
    return []


# What the browser crate's `test-hooks` feature adds (Cargo.toml): the release package has none of it.
TEST_HOOK = re.compile(rb"ForTest|for_test|clockSkew", re.IGNORECASE)


def exports(cfg, npm_dir):
    """Prints each target's .wasm exports and the test hooks found in the package; True if none."""
    name = cfg["package"]["out_name"]
    npm_dir = os.path.abspath(npm_dir or os.path.join(ROOT, cfg["package"]["out_dir"]))
    found = []
    seen = False
    for t in cfg["target"]:
        d = os.path.join(npm_dir, t["name"])
        wasm = os.path.join(d, f"{name}_bg.wasm")
        if not os.path.isfile(wasm):
            continue
        seen = True
        names = wasm_exports(wasm)
        ours = [n for n in names if not n.startswith("__wbindgen") and not n.startswith("__wbg")]
        print(f"{t['name']}: {len(names)} exports, {len(ours)} of them ours (the rest wasm-bindgen's):")
        print("  " + " ".join(sorted(ours)))
        found += [f"{t['name']}: .wasm export {n}" for n in names if TEST_HOOK.search(n.encode())]
        files = [wasm] + sorted(os.path.join(r, f) for r, _, fs in os.walk(d) for f in fs
                                if f.endswith((".js", ".d.ts")))
        for path in files:
            with open(path, "rb") as f:
                hits = sorted({m.group().decode() for m in TEST_HOOK.finditer(f.read())})
            found += [f"{os.path.relpath(path, npm_dir)}: {h}" for h in hits]
    if not seen:
        sys.exit(f"pkg.py: no built targets in {npm_dir} (run `python3 scripts/pkg.py build` first)")
    for f in found:
        print(f"test hook in the package: {f}")
    print("no test hook in the package" if not found else f"{len(found)} test hook(s) in the package")
    return not found


def main(argv):
    cfg = load("wasm-pack.toml")
    if len(argv) >= 2 and argv[0] == "tool":
        print(cfg["tools"][argv[1]])
    elif argv[:1] == ["check"]:
        check(cfg)
    elif argv[:1] == ["build"]:
        only = argv[argv.index("--target") + 1] if "--target" in argv else None
        out_root = argv[argv.index("--out") + 1] if "--out" in argv else None
        build(cfg, "--dev" in argv, only, out_root, "--test-hooks" in argv)
    elif argv[:1] == ["sizes"]:
        rest = [a for a in argv[1:] if not a.startswith("--")]
        if not sizes(cfg, rest[0] if rest else None, "--markdown" in argv) and "--check" in argv:
            sys.exit(1)
    elif argv[:1] == ["exports"]:
        rest = [a for a in argv[1:] if not a.startswith("--")]
        if not exports(cfg, rest[0] if rest else None) and "--check" in argv:
            sys.exit(1)
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
