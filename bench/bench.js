// The benchmark itself, run in the page (bench/index.html) by bench/run.mjs through `window.bench.run`.
//
// One repetition of one library, on a database created for it and deleted after it:
//   bulk    bulkPut of N ~1 KB documents in one call (the library's batch API, one transaction)
//   get     G gets by id, one after the other (ids in a shuffled order)
//   find    an equality on an indexed field selecting 1% of the N documents (F finds, per-find time)
//   put     S single puts of new documents, one after the other (each awaited: one transaction each)
//   watch   a live query whose result is 1,000 documents (bucket 3 of the N); then W writes to a
//           document in that result, one at a time, each timed from just before the write call to the
//           entry of the callback that shows the new content (p50/p95 per repetition)
// Libraries (adapters/): ferrosync, raw IndexedDB, Dexie, and diagnostics that are not competitors:
// `layout` (hand-written IndexedDB doing ferrosync's storage work) and its variants, `dexie-nocache`,
// `ferrosync-nobc`; see each adapter's header. Watch samples also record how often the callback came
// before the write's promise settled (an optimistic, pre-commit update).
// Every result is checked (counts, ids, the find's documents, the watched content) so a fast wrong
// answer fails the run instead of winning it. Libraries run in a rotating order per repetition so
// drift on a shared machine does not favour one of them; repetition 0 is a warm-up and not reported.

import { avgJsonBytes, category, docId, makeDoc, makeDocs, shuffled } from "./docs.js";

const now = () => performance.now();
const gc = () => (typeof globalThis.gc === "function" ? globalThis.gc() : undefined);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function check(cond, what) {
  if (!cond) throw new Error("check failed: " + what);
}

export function median(xs) {
  const a = xs.filter((x) => typeof x === "number").sort((x, y) => x - y);
  if (a.length === 0) return null;
  const m = a.length >> 1;
  return a.length % 2 ? a[m] : (a[m - 1] + a[m]) / 2;
}

/** Nearest-rank percentile. */
export function percentile(xs, p) {
  const a = xs.slice().sort((x, y) => x - y);
  if (a.length === 0) return null;
  return a[Math.min(a.length - 1, Math.max(0, Math.ceil((p / 100) * a.length) - 1))];
}

/** Calls `cb` in a watch until it sees document `id` with `title`; resolves with the entry time. */
function watcher() {
  let want = null;
  let calls = 0;
  let initial = null;
  const onDocs = (docs) => {
    const t = now();
    calls++;
    if (initial) {
      const i = initial;
      initial = null;
      i.resolve({ t, docs });
      return;
    }
    if (want === null) return;
    const w = want;
    const d = docs.find((x) => x.id === w.id);
    if (d !== undefined && d.title === w.title) {
      want = null;
      if (docs.length !== w.size) w.reject(new Error(`watch result has ${docs.length} docs, expected ${w.size}`));
      else w.resolve(t);
    }
  };
  return {
    onDocs,
    calls: () => calls,
    first() {
      return new Promise((resolve, reject) => (initial = { resolve, reject }));
    },
    expect(id, title, size) {
      return new Promise((resolve, reject) => (want = { id, title, size, resolve, reject }));
    },
  };
}

function withTimeout(p, ms, what) {
  let timer;
  return Promise.race([
    p,
    new Promise((_, reject) => (timer = setTimeout(() => reject(new Error(`timed out: ${what}`)), ms))),
  ]).finally(() => clearTimeout(timer));
}

async function oneRep(key, adapter, rep, cfg) {
  const name = `bench-${key}-${rep}-${Date.now()}`;
  const out = {};
  // CPU profiles of the phases (bench/run.mjs --profile): console.profile reaches CDP's Profiler.
  const profiling = cfg.profile && rep > 0;
  const begin = (phase) => profiling && console.profile(`${key}-${phase}`);
  const end = (phase) => profiling && console.profileEnd(`${key}-${phase}`);
  await adapter.destroy(name);
  gc();
  const h = await adapter.open(name);
  try {
    // bulk insert
    const docs = makeDocs(0, cfg.docs);
    gc();
    await sleep(cfg.settle);
    begin("bulk");
    let t0 = now();
    await h.bulkPut(docs);
    out.bulk = now() - t0;
    end("bulk");
    check((await h.count()) === cfg.docs, `${key}: count after bulkPut`);

    const want = (phase) => cfg.phases.includes(phase);
    if (want("get")) {
    // gets by id
    const ids = shuffled(Array.from({ length: cfg.docs }, (_, i) => docId(i)), 11 + rep).slice(0, cfg.gets);
    const got = new Array(ids.length);
    gc();
    await sleep(cfg.settle);
    begin("get");
    t0 = now();
    for (let i = 0; i < ids.length; i++) got[i] = await h.get(ids[i]);
    out.get = now() - t0;
    end("get");
    for (let i = 0; i < ids.length; i++) check(got[i] && got[i].id === ids[i], `${key}: get ${ids[i]}`);
    check((await h.get("no-such-id")) === undefined, `${key}: get of a missing id`);
    }

    if (want("find")) {
    // indexed find, 1% selectivity
    const per = [];
    gc();
    await sleep(cfg.settle);
    begin("find");
    for (let k = 0; k < cfg.finds; k++) {
      const cat = category(k * 7 + rep);
      t0 = now();
      const found = await h.findCategory(cat);
      per.push(now() - t0);
      check(found.length === cfg.docs / 100, `${key}: find ${cat} returned ${found.length}`);
      check(found.every((d) => d.category === cat), `${key}: find ${cat} content`);
    }
    end("find");
    out.find = median(per);
    }

    if (want("put")) {
    // single puts of new documents (bucket 99: outside the watched result)
    const singles = [];
    for (let i = 0; i < cfg.puts; i++) singles.push({ ...makeDoc(cfg.docs + i), bucket: 99 });
    gc();
    await sleep(cfg.settle);
    begin("put");
    t0 = now();
    for (let i = 0; i < singles.length; i++) await h.put(singles[i]);
    out.put = now() - t0;
    end("put");
    check((await h.count()) === cfg.docs + cfg.puts, `${key}: count after single puts`);
    }

    if (want("watch")) {
    // write -> watch callback, 1,000 documents under watch
    const size = cfg.docs / 10;
    const w = watcher();
    gc();
    await sleep(cfg.settle);
    const first = w.first();
    t0 = now();
    const unwatch = h.watchBucket(3, w.onDocs);
    try {
      const initial = await withTimeout(first, 10000, `${key}: first watch callback`);
      out.watchFirst = initial.t - t0;
      check(initial.docs.length === size, `${key}: first watch result has ${initial.docs.length} docs`);
      await sleep(50);
      const samples = [];
      // Callbacks that came before the write's promise settled: an optimistic update (Dexie 4 patches
      // cached results before the commit) rather than a committed change.
      let beforeSettled = 0;
      begin("watch");
      for (let k = 0; k < cfg.watchWarmup + cfg.watchWrites; k++) {
        const i = 3 + 10 * ((k * 37) % size); // a document of bucket 3
        const doc = { ...makeDoc(i), title: `edit ${rep}/${k}` };
        const seen = w.expect(doc.id, doc.title, size);
        t0 = now();
        let settled = false;
        const written = h.put(doc).then(() => (settled = true));
        const t1 = await withTimeout(seen, 10000, `${key}: watch callback for write ${k}`);
        const early = !settled;
        await written;
        if (k >= cfg.watchWarmup) {
          samples.push(t1 - t0);
          if (early) beforeSettled++;
        }
        // Let the library settle (a late re-run, Dexie's post-commit emission) between writes.
        await sleep(cfg.watchGap);
      }
      end("watch");
      out.watchP50 = percentile(samples, 50);
      out.watchP95 = percentile(samples, 95);
      out.watchCalls = w.calls();
      out.watchBeforeWriteSettled = beforeSettled / samples.length;
    } finally {
      unwatch();
    }
    }
  } finally {
    h.close();
    await sleep(10);
    await adapter.destroy(name);
  }
  return out;
}

async function loadAdapters(only) {
  const all = {
    ferrosync: () => import("./adapters/ferrosync.js"),
    raw: () => import("./adapters/raw.js"),
    dexie: () => import("./adapters/dexie.js"),
    layout: () => import("./adapters/layout.js"),
  };
  const out = {};
  for (const k of only) {
    if (all[k]) {
      out[k] = await all[k]();
      continue;
    }
    if (k === "ferrosync-alt") {
      const f = await import("./adapters/ferrosync.js");
      out[k] = f.make("/pkg-alt", "ferrosync (alt build)");
      continue;
    }
    if (k === "ferrosync-nobc") {
      // Diagnostic: ferrosync with BroadcastChannel.postMessage made a no-op (no cross-tab notices),
      // to measure what the per-write notice to other tabs costs.
      const f = await import("./adapters/ferrosync.js");
      const post = BroadcastChannel.prototype.postMessage;
      const quiet = (fn) => async (...a) => {
        BroadcastChannel.prototype.postMessage = function () {};
        try {
          return await fn(...a);
        } finally {
          BroadcastChannel.prototype.postMessage = post;
        }
      };
      out[k] = {
        label: "ferrosync, no BroadcastChannel posts",
        destroy: f.destroy,
        async open(name) {
          const h = await f.open(name);
          return { ...h, bulkPut: quiet(h.bulkPut), put: quiet(h.put) };
        },
      };
      continue;
    }
    let found = false;
    for (const mod of [await import("./adapters/layout.js"), await import("./adapters/dexie.js")]) {
      const v = mod.variants[k];
      if (v) {
        out[k] = { label: v.label, open: (name) => mod.open(name, v), destroy: mod.destroy };
        found = true;
      }
    }
    if (!found) throw new Error(`unknown library ${k}`);
  }
  return out;
}

/** Runs everything; `log` gets progress lines. */
export async function run(options = {}, log = console.log) {
  const cfg = {
    reps: 5,
    docs: 10000,
    gets: 1000,
    finds: 40,
    puts: 1000,
    watchWrites: 40,
    watchWarmup: 5,
    watchGap: 30,
    settle: 20,
    only: ["ferrosync", "raw", "dexie", "layout"],
    phases: ["bulk", "get", "find", "put", "watch"],
    ...options,
  };
  const adapters = await loadAdapters(cfg.only);
  const keys = Object.keys(adapters);
  const runs = Object.fromEntries(keys.map((k) => [k, []]));
  for (let rep = 0; rep <= cfg.reps; rep++) {
    const order = keys.map((_, i) => keys[(i + rep) % keys.length]);
    for (const key of order) {
      const started = now();
      const r = await oneRep(key, adapters[key], rep, cfg);
      log(`${rep === 0 ? "warm-up" : "rep " + rep} ${key}: ${Object.entries(r).map(([k, v]) => `${k}=${Math.round(v * 100) / 100}`).join(" ")} (${Math.round(now() - started)} ms)`);
      if (rep > 0) runs[key].push(r);
    }
  }
  const metrics = ["bulk", "put", "get", "find", "watchP50", "watchP95", "watchFirst"];
  const median_ = {};
  for (const key of keys) {
    median_[key] = {};
    for (const m of metrics) median_[key][m] = median(runs[key].map((r) => r[m]));
  }
  return {
    config: cfg,
    labels: Object.fromEntries(keys.map((k) => [k, adapters[k].label])),
    docBytes: avgJsonBytes(makeDocs(0, 200)),
    crossOriginIsolated: globalThis.crossOriginIsolated === true,
    runs,
    median: median_,
  };
}
