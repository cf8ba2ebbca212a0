// Serves bench/ (+ the built package + Dexie) on 127.0.0.1, runs the benchmark page in headless
// Chromium through playwright-core, prints a table and writes bench/results.json.
// Normally started by bench/run.sh (which builds the package first). Options:
//   --reps N          repetitions per library after one warm-up (default 5)
//   --only a,b        libraries: ferrosync,raw,dexie,layout (default all; `layout` is a diagnostic:
//                     hand-written IndexedDB doing ferrosync's storage work, see adapters/layout.js)
//   --pkg DIR         the built `web` target of ferrosync (default bench/.pkg/web)
//   --out FILE        where to write the JSON (default bench/results.json)
//   --phases a,b      only these phases (bulk always runs: it fills the database): get,find,put,watch
//   --settle MS       wait MS (default 20) before each timed phase of the store bench: a long wait
//                     shows whether a phase pays for work left running by the one before it
//   --quick           small sizes, one repetition: a smoke run that checks the harness, not a measurement
//   --profile         also record Chrome CPU profiles (CDP Profiler) of each phase into bench/profiles/
//                     and print the top self-time functions (slows the run; figures are then not reported)
//   --boundary        also time the WASM/JS document conversion strategies (bench/boundary)
//   --nice N          keep every thread of the browser's processes at niceness N (e.g. -10; needs root
//                     for N < 0) for the whole run: on a machine whose cores are saturated by other
//                     jobs this keeps the measurement about the code, not about the scheduler. Chromium
//                     forks its renderers and services from a zygote at niceness 0, so `nice node ...`
//                     alone does not reach them; this re-applies N to new threads every 200 ms
//   --alt DIR         a second built `web` target, run as library `ferrosync-alt` (A/B a change:
//                     --only ferrosync,ferrosync-alt)
//   --source TEXT     what the package was built from, recorded in the JSON (default: this checkout's
//                     commit, "+ uncommitted changes" when src/ core/ or the manifests differ from it)
//   --serve           only serve the page and print its URL (open it in a browser yourself)
//   --scale           the queries-at-scale benchmark instead (bench/scale.js, issue 19): 100,000 docs
//                     by default (--docs N), --reps N timed runs per query, --only as above
//                     (ferrosync,raw,dexie; ferrosync-alt with --alt DIR), --writes N timed writes into
//                     each live query (default 30 into the window, 10 into the 2/3 query: their
//                     p50 and p95 are read from that few); writes bench/results-scale.json
//   --first-sync      the first-sync benchmark instead (bench/first-sync.js, issue 17): starts a release
//                     ferrosync-server on SQLite on a free port (--server-bin PATH, default
//                     target/release/ferrosync-server), seeds --docs N (default 100,000) ~1 KB
//                     documents, then ferrosync's db.sync() into an empty database against
//                     hand-written IndexedDB pulling the same pages, alternating, --reps N rounds
//                     (default 3), --limit N changes per page (default 500); with --alt DIR the
//                     second build runs too (--only ferrosync,ferrosync-alt,raw; the diagnostic
//                     raw-pipelined runs only when named); --no-watch leaves
//                     out the live query open during ferrosync's sync; writes bench/results-first-sync.json
import { createReadStream, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import { cpus, totalmem } from "node:os";
import { dirname, extname, join, normalize, resolve, sep } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { execFileSync } from "node:child_process";
import { readdirSync } from "node:fs";
import { getPriority, setPriority } from "node:os";

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = resolve(HERE, "..");
const TOOLS = join(ROOT, "tools", "node_modules");

const CHROMIUM = process.env.FERROSYNC_BENCH_CHROMIUM || "/usr/bin/chromium";
const CHROMIUM_ARGS = [
  "--headless=new",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-dev-shm-usage",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--no-first-run",
  // Lets the page collect garbage between phases, so one library's garbage is not collected on
  // another's clock.
  "--js-flags=--expose-gc",
];

function parseArgs(argv) {
  const o = { reps: 5, only: null, pkg: join(HERE, ".pkg", "web"), out: join(HERE, "results.json") };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const val = () => {
      if (i + 1 >= argv.length) throw new Error(`${a} needs a value`);
      return argv[++i];
    };
    if (a === "--reps") {
      o.reps = Number(val());
      o.repsGiven = true;
    } else if (a === "--only") o.only = val().split(",");
    else if (a === "--phases") o.phases = val().split(",");
    else if (a === "--pkg") {
      o.pkg = resolve(val());
      o.pkgGiven = o.pkg !== join(HERE, ".pkg", "web");
    }
    else if (a === "--out") {
      o.out = resolve(val());
      o.outGiven = true;
    }
    else if (a === "--quick") o.quick = true;
    else if (a === "--profile") o.profile = true;
    else if (a === "--boundary") o.boundary = true;
    else if (a === "--serve") o.serve = true;
    else if (a === "--nice") o.nice = Number(val());
    else if (a === "--source") o.source = val();
    else if (a === "--alt") o.alt = resolve(val());
    else if (a === "--scale") o.scale = true;
    else if (a === "--docs") o.docs = Number(val());
    else if (a === "--first-sync") o.firstSync = true;
    else if (a === "--server-bin") o.serverBin = resolve(val());
    else if (a === "--limit") o.limit = Number(val());
    else if (a === "--no-watch") o.noWatch = true;
    else if (a === "--settle") o.settle = Number(val());
    else if (a === "--writes") o.writes = Number(val());
    else throw new Error(`unknown option ${a} (see the header of bench/run.mjs)`);
  }
  if (!Number.isInteger(o.reps) || o.reps < 1) throw new Error("--reps must be a positive integer");
  if (o.settle !== undefined && !(Number.isInteger(o.settle) && o.settle >= 0))
    throw new Error("--settle must be a whole number of ms");
  return o;
}

const TYPES = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".mjs": "text/javascript; charset=utf-8",
  ".json": "application/json",
  ".map": "application/json",
  ".wasm": "application/wasm",
  ".ts": "text/plain; charset=utf-8",
};

/** Static files: / -> bench/, /pkg/ -> the package, /boundary/ -> its build, /vendor/ -> Dexie. */
function serve(opts) {
  const mounts = [
    ["/pkg/", opts.pkg],
    ["/pkg-alt/", opts.alt ?? join(HERE, ".no-alt")],
    ["/boundary-pkg/", join(HERE, ".boundary-pkg")],
    ["/vendor/", join(TOOLS, "dexie", "dist")],
    ["/", HERE],
  ];
  const server = createServer((req, res) => {
    const url = new URL(req.url, "http://x");
    let file = null;
    for (const [prefix, dir] of mounts) {
      if (!url.pathname.startsWith(prefix)) continue;
      const rel = decodeURIComponent(url.pathname.slice(prefix.length)) || "index.html";
      const full = normalize(join(dir, rel));
      if (full === dir || full.startsWith(dir + sep)) file = full;
      break;
    }
    if (!file || !existsSync(file) || !statSync(file).isFile()) {
      res.writeHead(404, { "content-type": "text/plain" });
      res.end("not found");
      return;
    }
    res.writeHead(200, {
      "content-type": TYPES[extname(file)] || "application/octet-stream",
      "cache-control": "no-store",
      // Cross-origin isolation: performance.now() at 5 µs instead of 100 µs resolution.
      "cross-origin-opener-policy": "same-origin",
      "cross-origin-embedder-policy": "require-corp",
    });
    createReadStream(file).pipe(res);
  });
  return new Promise((ok) => server.listen(0, "127.0.0.1", () => ok(server)));
}

const loadavg = () => {
  try {
    return readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ");
  } catch {
    return null;
  }
};

/** The commit of this checkout and whether the library's sources differ from it. */
function checkoutSource() {
  try {
    const git = (...a) => execFileSync("git", ["-C", ROOT, ...a], { encoding: "utf8" }).trim();
    const commit = git("rev-parse", "--short", "HEAD");
    const dirty = git("status", "--porcelain", "--", "src", "core", "Cargo.toml", "Cargo.lock") !== "";
    return dirty ? `${commit} + uncommitted changes in src/, core/ or the manifests` : commit;
  } catch {
    return null;
  }
}

function machine(browserVersion, loadAtStart) {
  const c = cpus();
  let os = process.platform;
  try {
    os = readFileSync("/etc/os-release", "utf8").match(/PRETTY_NAME="([^"]+)"/)[1];
  } catch {}
  let rustc = null;
  try {
    rustc = execFileSync("rustc", ["--version"], { encoding: "utf8" }).trim();
  } catch {}
  return {
    cpu: `${c[0]?.model ?? "unknown"} (${c.length} logical cores)`,
    memory: `${Math.round(totalmem() / 2 ** 30)} GiB`,
    os,
    browser: browserVersion,
    node: process.version,
    rustc,
    loadAverageAtStart: loadAtStart,
    loadAverageAtEnd: loadavg(),
  };
}

/** Sets niceness `n` on every thread of every descendant process of this one (Linux /proc). Chromium
 * sets some of its threads' priorities itself, so this is re-applied rather than remembered. */
function reniceDescendants(n) {
  const parents = new Map();
  for (const d of readdirSync("/proc")) {
    if (!/^[0-9]+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, "utf8");
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      parents.set(Number(d), ppid);
    } catch {}
  }
  const mine = new Set([process.pid]);
  let grew = true;
  while (grew) {
    grew = false;
    for (const [pid, ppid] of parents) {
      if (!mine.has(pid) && mine.has(ppid)) {
        mine.add(pid);
        grew = true;
      }
    }
  }
  mine.delete(process.pid);
  for (const pid of mine) {
    let tids = [];
    try {
      tids = readdirSync(`/proc/${pid}/task`).map(Number);
    } catch {}
    for (const tid of tids) {
      try {
        if (getPriority(tid) !== n) setPriority(tid, n);
      } catch {}
    }
  }
}

const fmt = (v, digits = 1) => (v === null || v === undefined ? "n/a" : v.toFixed(digits));

function table(result) {
  const keys = Object.keys(result.median);
  const c = result.config;
  const n = (x) => x.toLocaleString("en-US");
  const rows = [
    [`bulk insert ${n(c.docs)} docs (ms)`, "bulk"],
    [`${n(c.puts)} single puts (ms)`, "put"],
    [`${n(c.gets)} gets by id (ms)`, "get"],
    [`indexed find, 1% of ${n(c.docs)} (ms per find)`, "find"],
    [`watch ${n(c.docs / 10)} docs: write->callback p50 (ms)`, "watchP50"],
    [`watch ${n(c.docs / 10)} docs: write->callback p95 (ms)`, "watchP95"],
    [`watch ${n(c.docs / 10)} docs: first result (ms)`, "watchFirst"],
  ];
  const head = ["", ...keys.map((k) => result.labels[k])];
  const has = (k) => keys.includes(k);
  if (has("ferrosync") && has("raw")) head.push("ferrosync/raw");
  if (has("ferrosync") && has("dexie")) head.push("ferrosync/Dexie");
  if (has("ferrosync") && has("layout")) head.push("ferrosync/layout");
  const lines = [head];
  for (const [label, m] of rows) {
    if (keys.every((k) => result.median[k][m] === null)) continue;
    const line = [label, ...keys.map((k) => fmt(result.median[k][m], m === "find" ? 2 : 1))];
    const f = result.median.ferrosync?.[m];
    if (has("ferrosync") && has("raw")) line.push(f && result.median.raw[m] ? fmt(f / result.median.raw[m], 2) + "x" : "");
    if (has("ferrosync") && has("dexie")) line.push(f && result.median.dexie[m] ? fmt(f / result.median.dexie[m], 2) + "x" : "");
    if (has("ferrosync") && has("layout")) line.push(f && result.median.layout[m] ? fmt(f / result.median.layout[m], 2) + "x" : "");
    lines.push(line);
  }
  const widths = head.map((_, i) => Math.max(...lines.map((l) => String(l[i]).length)));
  const pad = (l) => "| " + l.map((c, i) => (i === 0 ? String(c).padEnd(widths[i]) : String(c).padStart(widths[i]))).join(" | ") + " |";
  return [pad(lines[0]), "|" + widths.map((w, i) => (i === 0 ? "-".repeat(w + 2) : "-".repeat(w + 1) + ":")).join("|") + "|", ...lines.slice(1).map(pad)].join("\n");
}

function verdicts(result) {
  const m = result.median;
  if (!m.ferrosync) return [];
  const out = [];
  if (m.raw) {
    const r = m.ferrosync.bulk / m.raw.bulk;
    out.push(`${r <= 1.3 ? "MET " : "MISS"} bulk insert within 1.3x of raw IndexedDB: ${r.toFixed(2)}x`);
  }
  if (m.ferrosync.watchP95 !== null) {
    out.push(`${m.ferrosync.watchP95 < 16 ? "MET " : "MISS"} watch p95 under 16 ms: ${m.ferrosync.watchP95.toFixed(1)} ms`);
  }
  if (m.dexie) {
    const worse = ["bulk", "put", "get", "find", "watchP50", "watchP95"].filter(
      (k) => m.ferrosync[k] !== null && m.dexie[k] !== null && m.ferrosync[k] > m.dexie[k],
    );
    const how = worse.map((k) => `${k} (${(m.ferrosync[k] / m.dexie[k]).toFixed(2)}x)`);
    out.push(`${worse.length === 0 ? "MET " : "MISS"} no worse than Dexie on any row${worse.length ? ": slower on " + how.join(", ") : ""}`);
  }
  return out;
}

/** Writes the CPU profiles into bench/profiles/ and prints each one's top self-time functions. */
function printProfiles(profiles) {
  const dir = join(HERE, "profiles");
  mkdirSync(dir, { recursive: true });
  for (const p of profiles) {
    writeFileSync(join(dir, `${p.title}.cpuprofile`), JSON.stringify(p.profile));
    const { total, top } = topSelf(p.profile);
    console.log(`\nprofile ${p.title}: ${total.toFixed(1)} ms sampled; top self time:`);
    for (const [k, ms] of top) console.log(`  ${ms.toFixed(1).padStart(8)} ms  ${(100 * ms / total).toFixed(1).padStart(5)}%  ${k}`);
  }
  console.log(`\nprofiles written to ${dir} (open in Chrome DevTools > Performance)`);
}

/** Top self-time functions of a CPU profile. */
function topSelf(profile, n = 15) {
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const self = new Map();
  const dt = profile.timeDeltas;
  let total = 0;
  for (let i = 0; i < profile.samples.length; i++) {
    const node = byId.get(profile.samples[i]);
    const d = (dt[i] ?? 0) / 1000;
    total += d;
    const cf = node.callFrame;
    const file = cf.url ? cf.url.split("/").slice(-1)[0] : "";
    const key = `${cf.functionName || "(anonymous)"} ${file}${cf.url ? ":" + (cf.lineNumber + 1) : ""}`;
    self.set(key, (self.get(key) ?? 0) + d);
  }
  return {
    total,
    top: [...self.entries()].sort((a, b) => b[1] - a[1]).slice(0, n),
  };
}

const SCALE_ROWS = [
  ["first 50 of 1% (ms)", "first50"],
  ["last 50 of 1% (id descending) (ms)", "last50"],
  ["all of 1% (ms)", "all"],
  ["first 50 of 1% by title (compound index) (ms)", "byTitle"],
  ["first 50 of 1% by an unindexed field (ms)", "unindexed"],
  ["page 10 of 1% by title, offset (ms)", "page10"],
  ["page 10 of 1% by title, after (ms)", "page10After"],
  ["live top-50 window: write->callback p50 (ms)", "winP50"],
  ["live top-50 window: write->callback p95 (ms)", "winP95"],
  ["live top-50 window: write outside it (ms per write)", "outsideWriteMs"],
  ["live top-50 window: callbacks for 10 writes outside it", "outsideCalls"],
  ["live 2/3 of docs: write->callback p50 (ms)", "bigP50"],
  ["live 2/3 of docs: write->callback p95 (ms)", "bigP95"],
  ["fill (bulkPut in batches) (ms)", "fill"],
];

function scaleTable(result) {
  const r = result.results;
  const keys = Object.keys(r);
  const head = ["", ...keys.map((k) => r[k].label)];
  if (r.ferrosync && r.raw) head.push("ferrosync/raw");
  if (r.ferrosync && r.dexie) head.push("ferrosync/Dexie");
  const alt = r["ferrosync-alt"];
  if (r.ferrosync && alt) head.push("alt/ferrosync");
  const lines = [head];
  for (const [label, m] of SCALE_ROWS) {
    const digits = m === "outsideCalls" ? 0 : m === "fill" ? 0 : 2;
    const line = [label, ...keys.map((k) => fmt(r[k][m], digits))];
    const f = r.ferrosync?.[m];
    const ratio = (o) => (m !== "outsideCalls" && f && o?.[m] ? fmt(f / o[m], 2) + "x" : "");
    if (r.ferrosync && r.raw) line.push(ratio(r.raw));
    if (r.ferrosync && r.dexie) line.push(ratio(r.dexie));
    if (r.ferrosync && alt) line.push(m !== "outsideCalls" && f && alt[m] ? fmt(alt[m] / f, 2) + "x" : "");
    lines.push(line);
  }
  const widths = head.map((_, i) => Math.max(...lines.map((l) => String(l[i]).length)));
  const pad = (l) => "| " + l.map((c, i) => (i === 0 ? String(c).padEnd(widths[i]) : String(c).padStart(widths[i]))).join(" | ") + " |";
  return [pad(lines[0]), "|" + widths.map((w, i) => (i === 0 ? "-".repeat(w + 2) : "-".repeat(w + 1) + ":")).join("|") + "|", ...lines.slice(1).map(pad)].join("\n");
}

async function runScale(page, browser, opts, loadAtStart, base, profiles) {
  await page.goto(base + "/scale.html");
  await page.waitForFunction(() => window.benchReady === true);
  const options = { docs: opts.docs ?? 100000 };
  if (opts.repsGiven) options.reps = opts.reps;
  if (opts.only) options.only = opts.only;
  if (opts.quick) Object.assign(options, { docs: 2000, reps: 1, writes: 3, bigWrites: 2, batch: 1000 });
  if (opts.profile) Object.assign(options, { profile: true, bigWrites: 40 });
  if (opts.writes) Object.assign(options, { writes: opts.writes, bigWrites: opts.writes });
  console.log(`scale benchmark in ${await browser.version()} (${JSON.stringify(options)}), load ${loadavg()}`);
  const result = await page.evaluate((o) => window.scale.run(o), options);
  result.date = new Date().toISOString();
  const stamp = join(opts.pkg, "..", "SOURCE");
  result.source = opts.source ?? (existsSync(stamp) ? readFileSync(stamp, "utf8").trim() : checkoutSource());
  result.machine = machine(`Chromium ${browser.version()}`, loadAtStart);
  console.log("\n" + scaleTable(result) + "\n");
  if (opts.profile) {
    printProfiles(profiles);
    return;
  }
  if (!opts.quick) {
    const out = opts.outGiven ? opts.out : join(HERE, "results-scale.json");
    writeFileSync(out, JSON.stringify(result, null, 2) + "\n");
    console.log(`wrote ${out}`);
  }
}

async function runFirstSync(page, browser, opts, loadAtStart, base) {
  const { startServer, seed, firstSyncTable, docId } = await import("./first-sync.mjs");
  const docs = opts.quick ? 2000 : (opts.docs ?? 100000);
  const server = await startServer(opts.serverBin ?? join(ROOT, "target", "release", "ferrosync-server"));
  try {
    const token = `first-sync-${Date.now()}`;
    const t0 = Date.now();
    await seed(server.url, token, docs);
    console.log(`seeded ${docs} documents into ${server.url} in ${Date.now() - t0} ms`);
    await page.goto(base + "/first-sync.html");
    await page.waitForFunction(() => window.benchReady === true);
    const options = {
      server: server.url,
      token,
      docs,
      reps: opts.quick ? 1 : opts.repsGiven ? opts.reps : 3,
      limit: opts.limit ?? 500,
      alt: Boolean(opts.alt),
      only: opts.only,
      watch: opts.noWatch ? null : docId(Math.floor(docs / 2)),
    };
    if (opts.profile) options.reps = 1;
    console.log(`first-sync benchmark in ${await browser.version()} (${JSON.stringify(options)}), load ${loadavg()}`);
    // --profile: one CPU profile of the whole run (use with --only ferrosync --reps 1).
    const cdp = opts.profile ? await page.context().newCDPSession(page) : null;
    if (cdp) {
      await cdp.send("Profiler.enable");
      await cdp.send("Profiler.setSamplingInterval", { interval: 200 });
      await cdp.send("Profiler.start");
    }
    const result = await page.evaluate((o) => window.firstSync.run(o), options);
    if (cdp) {
      const { profile } = await cdp.send("Profiler.stop");
      const dir = join(HERE, "profiles");
      mkdirSync(dir, { recursive: true });
      writeFileSync(join(dir, "first-sync.cpuprofile"), JSON.stringify(profile));
      const { total, top } = topSelf(profile, 30);
      console.log(`\nprofile: ${total.toFixed(1)} ms sampled; top self time (bench/profiles/first-sync.cpuprofile):`);
      for (const [k, ms] of top) console.log(`  ${ms.toFixed(1).padStart(8)} ms  ${(100 * ms / total).toFixed(1).padStart(5)}%  ${k}`);
    }
    result.date = new Date().toISOString();
    const stamp = join(opts.pkg, "..", "SOURCE");
    result.source = opts.source ?? (existsSync(stamp) ? readFileSync(stamp, "utf8").trim() : checkoutSource());
    if (opts.alt) {
      const altStamp = join(opts.alt, "..", "SOURCE");
      result.altSource = existsSync(altStamp) ? readFileSync(altStamp, "utf8").trim() : opts.alt;
    }
    result.machine = machine(`Chromium ${browser.version()}`, loadAtStart);
    console.log("\n" + firstSyncTable(result) + "\n");
    console.log(`load average ${loadAtStart} at start, ${loadavg()} at end`);
    if (!opts.quick && !opts.profile) {
      const out = opts.outGiven ? opts.out : join(HERE, "results-first-sync.json");
      writeFileSync(out, JSON.stringify(result, null, 2) + "\n");
      console.log(`wrote ${out}`);
    }
  } finally {
    server.stop();
  }
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  if (!existsSync(join(opts.pkg, "ferrosync.js"))) {
    throw new Error(`no built package in ${opts.pkg} (run bash bench/run.sh, which builds it)`);
  }
  const loadAtStart = loadavg();
  const server = await serve(opts);
  const base = `http://127.0.0.1:${server.address().port}`;
  if (opts.serve) {
    console.log(`benchmark page: ${base}/   (Ctrl-C to stop)`);
    return;
  }
  const { chromium } = await import(pathToFileURL(join(TOOLS, "playwright-core", "index.mjs")).href);
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, headless: true });
  let renicer = null;
  if (opts.nice !== undefined) {
    reniceDescendants(opts.nice);
    renicer = setInterval(() => reniceDescendants(opts.nice), 200);
  }
  const exit = async (code) => {
    if (renicer) clearInterval(renicer);
    await browser.close().catch(() => {});
    server.close();
    process.exit(code);
  };
  try {
    const context = await browser.newContext();
    const page = await context.newPage();
    const errors = [];
    page.on("pageerror", (e) => errors.push(String(e)));
    page.on("console", (m) => {
      if (m.type() === "error") errors.push(m.text());
      else if (m.type() === "log") console.log("  " + m.text());
    });
    let cdp = null;
    const profiles = [];
    if (opts.profile) {
      cdp = await context.newCDPSession(page);
      await cdp.send("Profiler.enable");
      await cdp.send("Profiler.setSamplingInterval", { interval: 100 });
      cdp.on("Profiler.consoleProfileFinished", (ev) => profiles.push(ev));
    }
    if (opts.firstSync) {
      await runFirstSync(page, browser, opts, loadAtStart, base);
      await exit(0);
      return;
    }
    if (opts.scale) {
      await runScale(page, browser, opts, loadAtStart, base, profiles);
      await exit(0);
      return;
    }
    await page.goto(base + "/");
    await page.waitForFunction(() => window.benchReady === true);
    const options = { reps: opts.reps };
    if (opts.only) options.only = opts.only;
    if (opts.phases) options.phases = ["bulk", ...opts.phases.filter((p) => p !== "bulk")];
    if (opts.settle !== undefined) options.settle = opts.settle;
    if (opts.quick) Object.assign(options, { reps: 1, docs: 1000, gets: 100, puts: 100, finds: 3, watchWrites: 5, watchWarmup: 1 });
    if (opts.profile) Object.assign(options, { reps: 1, profile: true });
    console.log(`benchmark: ${base}/ in ${await browser.version()} (${JSON.stringify(options)})`);
    const result = await page.evaluate((o) => window.bench.run(o), options);
    if (errors.length) throw new Error("the page reported errors:\n" + errors.join("\n"));
    result.date = new Date().toISOString();
    const stamp = join(opts.pkg, "..", "SOURCE"); // written by run.sh when it builds
    result.source =
      opts.source ?? (existsSync(stamp) ? readFileSync(stamp, "utf8").trim() : opts.pkgGiven ? null : checkoutSource());
    result.machine = machine(`Chromium ${browser.version()}`, loadAtStart);
    result.machine.browserNiceness = opts.nice ?? null;
    if (opts.boundary) {
      const { runBoundary } = await import("./boundary/run.mjs");
      result.boundary = await runBoundary(page, opts.pkg, console.log);
    }
    if (opts.profile) {
      printProfiles(profiles);
      await exit(0);
      return;
    }
    console.log("\n" + table(result) + "\n");
    for (const v of verdicts(result)) console.log(v);
    if (!opts.quick) {
      writeFileSync(opts.out, JSON.stringify(result, null, 2) + "\n");
      console.log(`\nwrote ${opts.out}`);
    }
    await exit(0);
  } catch (e) {
    console.error(e.stack || String(e));
    await exit(1);
  }
}

main().catch((e) => {
  console.error(e.stack || String(e));
  process.exit(1);
});
