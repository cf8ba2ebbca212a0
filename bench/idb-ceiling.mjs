// How fast can IndexedDB itself store documents on this machine? Hand-written IndexedDB, no library,
// writing 10,000 of bench/docs.js's ~1 KB documents the way a sync pull does (transactions of 500
// records, each committed before the next), in several record shapes, from ferrosync's own record
// down to records holding nothing but their key. It is the ceiling any IndexedDB store (ferrosync's
// pull, its bulkPut, Dexie) can reach here, and how much of it is per record and how much per byte.
//
//   node bench/idb-ceiling.mjs [--n 10000] [--page 500] [--reps 3]
//
// Needs /usr/bin/chromium and tools/node_modules/playwright-core (bash scripts/setup.sh installs both).
// Prints one line per shape: median docs/s over the repetitions (shapes alternate within a round).
import { createReadStream, existsSync } from "node:fs";
import { createServer } from "node:http";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { loadavg } from "node:os";

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = resolve(HERE, "..");
const PLAYWRIGHT = join(ROOT, "tools", "node_modules", "playwright-core", "index.mjs");

const opts = { n: 10000, page: 500, reps: 3 };
for (let i = 2; i < process.argv.length; i += 2) {
  const key = process.argv[i].replace(/^--/, "");
  const value = Number(process.argv[i + 1]);
  if (!(key in opts) || !Number.isInteger(value) || value <= 0) {
    console.error(`usage: node bench/idb-ceiling.mjs [--n N] [--page N] [--reps N] (bad: ${process.argv[i]})`);
    process.exit(2);
  }
  opts[key] = value;
}
if (!existsSync(PLAYWRIGHT)) {
  console.error(`missing ${PLAYWRIGHT}: run 'bash scripts/setup.sh' first`);
  process.exit(2);
}
const { chromium } = await import(pathToFileURL(PLAYWRIGHT).href);

const PAGE = `<!doctype html><meta charset="utf-8"><title>IndexedDB ceiling</title>
<script type="module">
import { makeDocs, avgJsonBytes } from "/docs.js";
window.ceiling = async ({ n, page, reps }) => {
  const docs = makeDocs(0, n);
  const hlc = "0001764028800000-0000-device-a"; // as long as a real HLC string
  // [label, record of a document, indexes (key paths) of the store]
  const shapes = [
    ["ferrosync pulled record {id, hlc, doc, ix}, 1 index", (d) => ({ id: d.id, hlc, doc: d, ix: { category: [3, d.category] } }), ["ix.category"]],
    ["same record, no index", (d) => ({ id: d.id, hlc, doc: d, ix: { category: [3, d.category] } }), []],
    ["the document alone, no index", (d) => d, []],
    ["~100-byte record {id, hlc, title}, 1 index", (d) => ({ id: d.id, hlc, title: d.title, ix: { category: [3, d.category] } }), ["ix.category"]],
    ["the key alone {id}", (d) => ({ id: d.id }), []],
  ];
  const del = (name) => new Promise((ok) => { const r = indexedDB.deleteDatabase(name); r.onsuccess = r.onerror = r.onblocked = () => ok(); });
  const open = (name, indexes) => new Promise((ok, fail) => {
    const r = indexedDB.open(name, 1);
    r.onupgradeneeded = () => {
      const s = r.result.createObjectStore("docs", { keyPath: "id" });
      indexes.forEach((p, i) => s.createIndex("i" + i, p));
    };
    r.onsuccess = () => ok(r.result);
    r.onerror = () => fail(r.error);
  });
  const times = shapes.map(() => []);
  for (let round = 0; round < reps; round++) {
    for (let s = 0; s < shapes.length; s++) {
      const [, record, indexes] = shapes[s];
      const name = "ceiling-" + s;
      await del(name);
      const db = await open(name, indexes);
      const t0 = performance.now();
      for (let from = 0; from < n; from += page) {
        const tx = db.transaction("docs", "readwrite", { durability: "relaxed" });
        const store = tx.objectStore("docs");
        for (let i = from; i < Math.min(n, from + page); i++) store.put(record(docs[i]));
        await new Promise((ok, fail) => { tx.oncomplete = ok; tx.onabort = () => fail(tx.error); });
      }
      times[s].push(performance.now() - t0);
      db.close();
      await del(name);
    }
  }
  const median = (a) => a.slice().sort((x, y) => x - y)[a.length >> 1];
  return {
    docBytes: avgJsonBytes(docs),
    rows: shapes.map(([label, record], s) => ({
      label,
      recordBytes: JSON.stringify(record(docs[0])).length,
      ms: times[s].map(Math.round),
      docsPerSec: Math.round((n / median(times[s])) * 1000),
    })),
  };
};
window.ready = true;
</script>`;

const server = createServer((req, res) => {
  if (req.url === "/docs.js") {
    res.writeHead(200, { "content-type": "text/javascript" });
    createReadStream(join(HERE, "docs.js")).pipe(res);
  } else {
    res.writeHead(200, { "content-type": "text/html" });
    res.end(PAGE);
  }
});
await new Promise((ok) => server.listen(0, "127.0.0.1", ok));
const browser = await chromium.launch({
  executablePath: process.env.FERROSYNC_BENCH_CHROMIUM || "/usr/bin/chromium",
  args: ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
    "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"],
});
try {
  const page = await browser.newPage();
  await page.goto(`http://127.0.0.1:${server.address().port}/`);
  await page.waitForFunction(() => window.ready === true);
  const before = loadavg()[0].toFixed(2);
  const out = await page.evaluate((o) => window.ceiling(o), opts);
  console.log(`IndexedDB ceiling: ${opts.n} documents (~${out.docBytes} bytes of JSON each), transactions of ${opts.page}, ` +
    `${opts.reps} rounds, Chromium ${browser.version()}, load ${before} -> ${loadavg()[0].toFixed(2)}`);
  for (const r of out.rows) {
    console.log(`${r.label.padEnd(52)} ${String(r.docsPerSec).padStart(6)} docs/s  (record ~${r.recordBytes} B; ms per round ${r.ms.join(", ")})`);
  }
} finally {
  await browser.close();
  server.close();
}
