// First sync (issue 17): ferrosync's `db.sync()` into an empty database against a hand-written
// IndexedDB client pulling the same pages from the same server, in this one page, alternating.
// Driven by bench/first-sync.mjs (through `bash bench/run.sh --first-sync`), which starts the
// server and seeds the namespace.
//
// Each run measures: wall time from `Database.open` (or `indexedDB.open`) to the last page stored,
// docs/s, the longest gap of a 4 ms timer heartbeat (a main-thread stall: headless Chromium's
// longtask observer reports nothing), the peak JS heap (`performance.memory`, sampled by the
// heartbeat) and WASM memory, and a check that the database holds every document.

import { req, done, RELAXED } from "./idb.js";

const del = (name) =>
  new Promise((ok) => {
    const r = indexedDB.deleteDatabase(name);
    r.onsuccess = r.onerror = r.onblocked = () => ok();
  });

/** A 4 ms heartbeat: the longest gap between ticks, and the peak of `usedJSHeapSize`. */
function heartbeat() {
  let last = performance.now();
  let worst = 0;
  let heap = performance.memory ? performance.memory.usedJSHeapSize : 0;
  const t = setInterval(() => {
    const now = performance.now();
    worst = Math.max(worst, now - last);
    last = now;
    if (performance.memory) heap = Math.max(heap, performance.memory.usedJSHeapSize);
  }, 4);
  return {
    stop() {
      clearInterval(t);
      return { stallMs: worst, heapMB: heap / 2 ** 20 };
    },
  };
}

/** ferrosync from the package under `base` (`/pkg` or `/pkg-alt`). */
function ferrosync(base, label) {
  let loaded;
  const load = () =>
    (loaded ??= import(`${base}/ferrosync.js`).then(async (m) => {
      const exports = await m.default();
      return { Database: m.Database, memory: exports.memory };
    }));
  return {
    label,
    async run({ server, token, name, docs, limit, watch }) {
      const { Database, memory } = await load();
      await Database.destroy(name);
      const beat = heartbeat();
      const t0 = performance.now();
      const db = await Database.open({
        name,
        collections: { docs: { indexes: ["category"] } },
        sync: { url: server + "/v1", token, intervalMs: 0, events: false, pullLimit: limit },
      });
      // A live query open during the first sync (issue 17): it must not run again for pages
      // that do not touch its result. Its result is one document no page but one holds.
      let calls = 0;
      let sub = null;
      if (watch) {
        sub = db.collection("docs").watch({ where: { id: watch } }, () => calls++);
      }
      const report = await db.sync();
      const ms = performance.now() - t0;
      const { stallMs, heapMB } = beat.stop();
      const wasmMB = memory.buffer.byteLength / 2 ** 20;
      const stored = await db.collection("docs").count();
      const callsAtEnd = calls;
      if (sub) sub.unsubscribe();
      db.close();
      await Database.destroy(name);
      if (stored !== docs) throw new Error(`${label}: stored ${stored} of ${docs} documents`);
      return { ms, stallMs, heapMB, wasmMB, stored, pulled: report.pulled, watchCalls: watch ? callsAtEnd : null };
    },
  };
}

/**
 * Hand-written IndexedDB, as a careful client would write it: `fetch` of the next page started as
 * soon as a page arrives (so the network overlaps the writes), one readwrite transaction per page
 * holding its records and its cursor, one index (`category`, on the document).
 *
 * `pipelined` (the diagnostic `raw-pipelined`, issue 17): the next page's transaction is created and
 * its puts issued while the previous one still commits (IndexedDB runs them in creation order), at
 * most one commit outstanding, instead of awaiting each commit: what overlapping the page's work
 * with the commits is worth.
 */
function handWritten(pipelined) {
  const label = pipelined ? "raw-pipelined" : "raw";
  return {
    label: pipelined ? "hand-written IndexedDB, pipelined" : "hand-written IndexedDB",
    async run({ server, token, name, docs, limit }) {
      await del(name);
      const beat = heartbeat();
      const t0 = performance.now();
      const open = indexedDB.open(name, 1);
      open.onupgradeneeded = () => {
        const st = open.result.createObjectStore("docs", { keyPath: "id" });
        st.createIndex("category", "doc.category");
        open.result.createObjectStore("meta");
      };
      const db = await req(open);
      const headers = { Authorization: `Bearer ${token}` };
      const get = (cursor) => {
        const q = new URLSearchParams({ limit: String(limit) });
        if (cursor) q.set("cursor", cursor);
        return fetch(`${server}/v1/pull?${q}`, { headers, cache: "no-store" }).then((r) => {
          if (!r.ok) throw new Error(`pull: HTTP ${r.status}`);
          return r.json();
        });
      };
      let next = get(null);
      let pulled = 0;
      let last = null;
      for (;;) {
        const page = await next;
        if (page.hasMore) next = get(page.cursor);
        const tx = db.transaction(["docs", "meta"], "readwrite", RELAXED);
        const st = tx.objectStore("docs");
        for (const c of page.changes) {
          if (c.deleted) st.delete(c.id);
          else st.put({ id: c.id, hlc: c.hlc, doc: c.doc });
        }
        tx.objectStore("meta").put(page.cursor, "cursor");
        if (!pipelined) await done(tx);
        else {
          if (last) await last;
          last = done(tx);
        }
        pulled += page.changes.length;
        if (!page.hasMore) break;
      }
      if (last) await last;
      const ms = performance.now() - t0;
      const { stallMs, heapMB } = beat.stop();
      const stored = await req(db.transaction("docs").objectStore("docs").count());
      db.close();
      await del(name);
      if (stored !== docs) throw new Error(`${label}: stored ${stored} of ${docs} documents`);
      return { ms, stallMs, heapMB, wasmMB: null, stored, pulled, watchCalls: null };
    },
  };
}

const raw = handWritten(false);
const rawPipelined = handWritten(true);

const median = (a) => {
  const s = a.slice().sort((x, y) => x - y);
  return s.length % 2 ? s[s.length >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

/**
 * `opts`: { server, token, docs, reps, limit, alt, only, watch }. Runs every library once per round,
 * the order rotating each round; returns per-library runs and medians.
 */
export async function run(opts, log) {
  const libs = { ferrosync: ferrosync("/pkg", "ferrosync"), raw };
  // A diagnostic, run only when named (--only raw,raw-pipelined).
  if (opts.only && opts.only.includes("raw-pipelined")) libs["raw-pipelined"] = rawPipelined;
  if (opts.alt) libs["ferrosync-alt"] = ferrosync("/pkg-alt", "ferrosync (alt build)");
  const names = Object.keys(libs).filter((k) => !opts.only || opts.only.includes(k));
  const runs = Object.fromEntries(names.map((k) => [k, []]));
  for (let round = 0; round < opts.reps; round++) {
    const order = names.map((_, i) => names[(i + round) % names.length]);
    for (const k of order) {
      if (window.gc) window.gc();
      await new Promise((ok) => setTimeout(ok, 200));
      const r = await libs[k].run({ ...opts, name: `first-sync-${k}` });
      runs[k].push(r);
      log(
        `round ${round + 1} ${k}: ${r.ms.toFixed(0)} ms, ${Math.round((opts.docs / r.ms) * 1000)} docs/s, ` +
          `stall ${r.stallMs.toFixed(0)} ms, JS heap ${r.heapMB.toFixed(1)} MB` +
          (r.wasmMB !== null ? `, wasm ${r.wasmMB.toFixed(1)} MB` : "") +
          (r.watchCalls !== null ? `, live query callbacks ${r.watchCalls}` : ""),
      );
    }
  }
  const results = {};
  for (const k of names) {
    const ms = median(runs[k].map((r) => r.ms));
    results[k] = {
      label: libs[k].label,
      ms,
      docsPerSec: Math.round((opts.docs / ms) * 1000),
      stallMs: Math.max(...runs[k].map((r) => r.stallMs)),
      heapMB: Math.max(...runs[k].map((r) => r.heapMB)),
      wasmMB: runs[k][0].wasmMB === null ? null : Math.max(...runs[k].map((r) => r.wasmMB)),
      watchCalls: runs[k][0].watchCalls,
      runs: runs[k],
    };
  }
  // Ratio per round (side by side), and of the medians.
  const ratios = {};
  for (const k of names.filter((n) => n !== "raw")) {
    if (!runs.raw) break;
    ratios[k] = {
      perRound: runs[k].map((r, i) => runs.raw[i].ms / r.ms),
      ofMedians: results.raw.ms / results[k].ms,
    };
  }
  return { options: opts, results, ratios };
}
